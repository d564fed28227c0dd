"""The ray executor (``--executor ray``, ``train.executor``; ``replication.executors``): the same records
as the local executor, a worker killed in the middle of a seed retried and resumed from the seed's
checkpoint, a model's error surfacing as it does locally, and clear refusals.

One Ray instance of 2 CPUs serves the whole module (a train command finds it running and uses it,
as it would use a cluster's); it is shut down at the end, and the test checks that none of its
processes is left behind. Training runs on a small synthetic data set (2,000 rows, 8 features) with
one thread per process, so the same code gives the same numbers whichever executor runs it.

``killer.py`` is a shared-bottom model of the module's own that appends its process id to
``batches.log`` in every training batch (so a test can count the batches trained, and see in which
processes), and misbehaves when a file asks it to: ``arm`` makes the first process to reach its
seventeenth training batch of a seed (epoch 3, batch 3) claim the file (an atomic rename to
``fired``, so that exactly one process does) and SIGKILL itself; the retry then runs clean. ``raise``
makes every training batch raise.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest
import ray
import torch

from replication.cli import main
from replication.data.synthetic import SyntheticConfig, generate_synthetic
from replication.executors import MAX_RETRIES
from replication.records import without_timings
from tests.conftest import REPO

EPOCHS = 4  # every seed runs exactly this many epochs (patience is as long)
BATCHES_PER_EPOCH = 7  # 1,600 training rows in batches of 256
KILL_AT = 2 * BATCHES_PER_EPOCH + 3  # a seed's epoch 3, batch 3; its checkpoint holds epoch 2
SEEDS = (0, 1, 2)
KILLER_MODEL = '''
import os
import signal
from pathlib import Path

import torch
from models.shared_bottom import SharedBottom

FOLDER = Path({folder!r})


class Killer(SharedBottom):
    """Shared bottom that logs its training batches and, as the module docstring of test_ray says, dies or raises."""

    model_name = "killer"

    def forward(self, x_cat, x_num):
        out = super().forward(x_cat, x_num)
        if self.training and torch.is_grad_enabled():
            self.batches = getattr(self, "batches", 0) + 1
            with open(FOLDER / "batches.log", "a", encoding="utf-8") as log:
                log.write(f"{{os.getpid()}}\\n")
            if (FOLDER / "raise").exists():
                raise RuntimeError("the model broke")  # the line the error must name
            if self.batches == {kill_at}:
                try:
                    os.rename(FOLDER / "arm", FOLDER / "fired")  # one process claims the fault
                except FileNotFoundError:
                    return out
                (FOLDER / "fired").write_text(str(os.getpid()), encoding="utf-8")
                os.kill(os.getpid(), signal.SIGKILL)
        return out
'''
SMALL = {"bottom_units": [16], "tower_units": [8]}
PARAMS = {
    "train": {"lr": 0.01, "batch_size": 256, "max_epochs": EPOCHS, "patience": EPOCHS, "device": "cpu",
              "seed_workers": 1, "num_threads": 1, "eval_batch_size": 4096},
    "model_common": {"embedding_dim": 4},
    "models": {"shared_bottom": SMALL, "mmoe": {"n_experts": 2, "expert_units": [8], "tower_units": [8]},
               "killer": SMALL},
}


@pytest.fixture(scope="module")
def ray_instance():
    """A Ray instance of 2 CPUs for the module, on this machine whatever RAY_ADDRESS says; afterwards
    every process it started has ended, and the torch threads of this process are as they were."""
    saved = {key: os.environ.get(key) for key in ("RAY_ADDRESS", "RAY_USAGE_STATS_ENABLED")}
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    threads = torch.get_num_threads()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        ray.shutdown()
        torch.set_num_threads(threads)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _, alive = psutil.wait_procs(started, timeout=60)
        assert started and not alive, f"Ray processes left behind: {[p.pid for p in alive]}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic data, the killer model and a parameter file, in one folder."""
    root = tmp_path_factory.mktemp("ray")
    generate_synthetic(SyntheticConfig(correlation=0.5, rows=2000, dim=8, validation_fraction=0.1,
                                       test_fraction=0.1), root / "data")
    (root / "killer.py").write_text(KILLER_MODEL.format(folder=str(root), kill_at=KILL_AT), encoding="utf-8")
    (root / "params.yaml").write_text(json.dumps(PARAMS), encoding="utf-8")  # JSON is YAML
    return root


def train_args(workspace: Path, model: str, out: Path, *extra: str) -> list[str]:
    model = f"{workspace / 'killer.py'}:Killer" if model == "killer" else model
    return ["train", "--data", str(workspace / "data"), "--model", model, "--params", str(workspace / "params.yaml"),
            "--out", str(out), "--checkpoints", str(out.parent / "ck"), "--checkpoint-seconds", "0",
            "--seeds", ",".join(map(str, SEEDS)), *extra]


def records(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("seed_*.json"))}


def comparable(record: dict) -> dict:
    """A record less what may differ between two runs of the same seeds: wall-clock times and the executor."""
    return {**without_timings(record), "train": {k: v for k, v in record["train"].items() if k != "executor"}}


def predictions(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npz"))}


def expected_files() -> list[str]:
    return sorted(f"seed_{s}{suffix}" for s in SEEDS for suffix in (".json", ".test_predictions.npz"))


def batch_log(workspace: Path) -> list[int]:
    path = workspace / "batches.log"
    return [int(line) for line in path.read_text(encoding="utf-8").split()] if path.exists() else []


# (run name, model, extra options): lone seeds of two models, and three seeds trained together.
RUNS = [("shared_bottom", "shared_bottom", []), ("mmoe", "mmoe", []),
        ("mmoe_ensemble", "mmoe", ["--set", "train.ensemble=3"]), ("killer", "killer", [])]


@pytest.fixture(scope="module")
def local_runs(workspace: Path) -> Path:
    """Every run of RUNS trained by the local executor (in this process): the reference."""
    runs = workspace / "local"
    for name, model, extra in RUNS:
        assert main(train_args(workspace, model, runs / name, "--executor", "local", *extra)) == 0
        assert sorted(p.name for p in (runs / name).iterdir()) == expected_files()
        assert all(r["epochs_run"] == EPOCHS and r["train"]["executor"] == "local"
                   for r in records(runs / name).values())
    return runs


@pytest.mark.parametrize("name, model, extra", RUNS[:3], ids=[run[0] for run in RUNS[:3]])
def test_the_ray_executor_writes_the_records_of_the_local_executor(workspace: Path, ray_instance, local_runs: Path,
                                                                   name: str, model: str, extra: list[str]) -> None:
    """Each seed (or ensemble of seeds) a Ray task on the module's instance: the same files, records
    equal field for field (the executor and wall-clock time aside; the environment too, host and device
    included) and byte-identical predictions."""
    out = workspace / "ray" / name
    assert main(train_args(workspace, model, out, "--executor", "ray", *extra)) == 0
    assert sorted(p.name for p in out.iterdir()) == expected_files()
    by_ray, by_local = records(out), records(local_runs / name)
    for file, record in by_ray.items():
        assert record["train"]["executor"] == "ray"
        assert record["environment"]["host"] == socket.gethostname()
        assert comparable(record) == comparable(by_local[file])
    assert predictions(out) == predictions(local_runs / name)
    assert not (out.parent / "ck").exists()  # checkpoints are removed once every seed is written


TUNE_SPACE = {"common": {"train.lr": {"log": [1.0e-3, 3.0e-2]}},
              "models": {"mmoe": {"n_experts": {"int": [2, 3]}, "expert_units": {"units": [8, 16], "count": [1, 1]}}}}
TUNE = {"trials": 4, "startup_trials": 2, "eta": 2, "min_epochs": 1, "parallel_trials": 2, "searches": 1,
        "small_budget": 2}


def test_a_search_on_ray_runs_the_trials_of_the_local_one(workspace: Path, ray_instance) -> None:
    """`tune --executor ray` trains each batch's trials as Ray tasks in parallel: the same trials,
    scores and chosen configuration as the local executor's."""
    (workspace / "tune_params.yaml").write_text(json.dumps({**PARAMS, "tune": TUNE}), encoding="utf-8")
    (workspace / "space.yaml").write_text(json.dumps(TUNE_SPACE), encoding="utf-8")
    tables = {}
    for executor in ("local", "ray"):
        out = workspace / f"tune_{executor}"
        assert main(["tune", "--data", str(workspace / "data"), "--model", "mmoe", "--params",
                     str(workspace / "tune_params.yaml"), "--space", str(workspace / "space.yaml"), "--out", str(out),
                     "--executor", executor]) == 0
        tables[executor] = pd.read_csv(out / "trials.csv").drop(columns=["seconds"])
        assert len(tables[executor]) == TUNE["trials"]
    pd.testing.assert_frame_equal(tables["ray"], tables["local"])
    assert (workspace / "tune_ray" / "best_full.yaml").read_text() == (workspace / "tune_local" / "best_full.yaml").read_text()


@pytest.mark.fault
def test_a_ray_worker_killed_mid_seed_is_retried_and_resumes_from_the_checkpoint(workspace: Path, ray_instance,
                                                                                local_runs: Path) -> None:
    """SIGKILL in the Ray worker training one seed, in its epoch 3: Ray runs the task again in another
    process, which resumes the seed after epoch 2 (so only the 3 batches of the cut epoch are trained
    twice), and the command ends with every record and prediction file present once, complete, and
    equal to those of the uninterrupted local run."""
    out = workspace / "killed" / "killer"
    (workspace / "batches.log").unlink(missing_ok=True)
    (workspace / "arm").write_text("", encoding="utf-8")
    assert main(train_args(workspace, "killer", out, "--executor", "ray")) == 0
    assert not (workspace / "arm").exists()
    killed = int((workspace / "fired").read_text(encoding="utf-8"))
    trained_in = batch_log(workspace)
    assert os.getpid() not in trained_in  # every batch in Ray's worker processes
    assert killed in trained_in and len(set(trained_in)) >= 2  # the retry ran in another process
    assert len(trained_in) == len(SEEDS) * EPOCHS * BATCHES_PER_EPOCH + KILL_AT - 2 * BATCHES_PER_EPOCH
    assert sorted(p.name for p in out.iterdir()) == expected_files()  # once each, no temporary file left
    assert {name: comparable(r) for name, r in records(out).items()} == \
           {name: comparable(r) for name, r in records(local_runs / "killer").items()}
    assert predictions(out) == predictions(local_runs / "killer")
    assert not (out.parent / "ck").exists()


@pytest.mark.fault
def test_a_model_error_in_a_ray_task_is_not_retried_and_names_its_line(workspace: Path, ray_instance,
                                                                      capsys) -> None:
    """A model that raises in its forward fails its task once (no retry: one batch trained in all)
    and the command exits 2 with the local executor's message: the model's file and line."""
    out = workspace / "raising" / "killer"
    (workspace / "batches.log").unlink(missing_ok=True)
    (workspace / "raise").write_text("", encoding="utf-8")
    try:
        assert main(train_args(workspace, "killer", out, "--executor", "ray", "--seeds", "0")) == 2
    finally:
        (workspace / "raise").unlink()
    message = capsys.readouterr().err
    line = KILLER_MODEL.splitlines().index(next(l for l in KILLER_MODEL.splitlines() if "the model broke" in l)) + 1
    assert f"error: killer seed(s) 0: training failed at {workspace / 'killer.py'}, line {line}" in message
    assert "RuntimeError: the model broke" in message and "ray::" not in message
    assert len(batch_log(workspace)) == 1 and MAX_RETRIES > 0
    assert not list(out.glob("seed_*"))


@pytest.mark.fault
@pytest.mark.parametrize("device, phrase", [
    ("cuda", "train.device = 'cuda', but a Ray instance on this machine (1 node(s), 2 CPUs, 0 GPUs) has no GPU"),
    ("cuda:1", "train.device = 'cuda:1': with the ray executor use cuda or auto"),
])
def test_a_gpu_the_ray_cluster_lacks_is_refused_before_any_work(workspace: Path, ray_instance, capsys, device: str,
                                                                phrase: str) -> None:
    out = workspace / "no_gpu" / "mmoe"
    assert main(train_args(workspace, "mmoe", out, "--executor", "ray", "--set", f"train.device={device}")) == 2
    assert phrase in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.fault
def test_a_ray_address_nothing_answers_at_is_refused_at_once(workspace: Path) -> None:
    """RAY_ADDRESS naming a port nothing listens at: exit 2 within seconds (ray.init alone would wait
    minutes for the cluster), saying how to start one or run without it. In a process of its own, since
    this one holds the module's Ray instance."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed
    out = workspace / "no_cluster" / "mmoe"
    args = train_args(workspace, "mmoe", out, "--executor", "ray")
    result = subprocess.run([sys.executable, "-m", "replication", *args], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "RAY_ADDRESS": f"127.0.0.1:{port}"})
    assert result.returncode == 2, result.stderr
    assert f"error: RAY_ADDRESS=127.0.0.1:{port}: nothing answers there" in result.stderr
    assert "ray start --head" in result.stderr and "unset RAY_ADDRESS" in result.stderr
    assert not out.exists()


@pytest.mark.fault
def test_the_ray_executor_without_ray_installed_says_how_to_install_it(workspace: Path, monkeypatch,
                                                                     capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as without the package
    out = workspace / "no_ray" / "mmoe"
    assert main(train_args(workspace, "mmoe", out, "--executor", "ray")) == 2
    message = capsys.readouterr().err
    assert "train.executor = 'ray' needs Ray, which is not installed" in message
    assert "pip install -e '.[distributed]'" in message and "--executor local" in message
    assert not out.exists()
