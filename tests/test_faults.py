"""Fault injection: bad input, broken models and interrupted or concurrent runs through the command line.

Every case here (and every test marked ``fault`` elsewhere: download, prepare and configuration
errors) feeds the suite one fault and checks the three promises of the reliability page
(docs/reliability.md): a non-zero exit with a message that names what was wrong and how to fix it, no partial
file where a later stage would read one, and no record lost or corrupted (an interrupted run,
resumed, ends with the records of an uninterrupted one). ``pytest -m fault`` runs them all; the
reliability page (docs/reliability.md) states their number, and
:func:`test_reliability_page_states_the_number_of_faults_tried` keeps it true.

Training faults run on a small synthetic data set (2,000 rows, 8 features) with a model file of
the test's own, ``faulty.py``: a shared-bottom model that, when the environment asks it to, sends
its own process a signal (SIGINT, SIGKILL) or returns an infinite output after a given number of
training batches, or raises in its forward: a fault at an exactly known point.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from replication.aggregate import aggregate
from replication.cli import main
from replication.config import ConfigError
from replication.data.synthetic import SyntheticConfig, generate_synthetic
from replication.io import write_json
from replication.records import without_timings
from replication import runfolder
from replication.runfolder import SeedCheckpoint, lock_path
from tests.conftest import REPO

pytestmark = pytest.mark.fault

EPOCHS = 4  # every seed runs exactly this many epochs (patience is larger)
BATCHES_PER_EPOCH = 7  # 1,600 training rows in batches of 256
FAULTY_MODEL = '''
import os, signal, time
from pathlib import Path
import torch
from models.shared_bottom import SharedBottom


class Faulty(SharedBottom):
    """Shared bottom that misbehaves in training batch number FAULT_AFTER (of the process), as FAULT
    says; with FAULT_PIDS, each training process first leaves its pid and its parent's there."""

    model_name = "faulty"
    batches = 0

    def forward(self, x_cat, x_num):
        out = super().forward(x_cat, x_num)
        if self.training and torch.is_grad_enabled() and os.environ.get("FAULT"):
            Faulty.batches += 1
            if Faulty.batches == 1 and os.environ.get("FAULT_PIDS"):
                (Path(os.environ["FAULT_PIDS"]) / str(os.getpid())).write_text(str(os.getppid()))
            if Faulty.batches == int(os.environ["FAULT_AFTER"]):
                fault = os.environ["FAULT"]
                if fault == "raise":
                    raise RuntimeError("the model broke")  # the line the error must name
                if fault == "infinite":
                    out.outputs[self.tasks[0].name] = out.outputs[self.tasks[0].name] * float("inf")
                elif fault == "slow":
                    time.sleep(3)
                elif fault == "hang":  # a batch that never ends, while something outside acts
                    (Path(os.environ["FAULT_PIDS"]) / "hanging").write_text(str(os.getpid()))
                    time.sleep(600)
                elif fault.endswith("_PARENT"):
                    os.kill(os.getppid(), getattr(signal, fault.removesuffix("_PARENT")))
                else:
                    os.kill(os.getpid(), getattr(signal, fault))
        return out
'''
PARAMS = {
    "train": {"lr": 0.01, "batch_size": 256, "max_epochs": EPOCHS, "patience": EPOCHS, "device": "cpu",
              "seed_workers": 1, "num_threads": 1, "eval_batch_size": 4096},
    "model_common": {"embedding_dim": 4},
    "models": {"faulty": {"bottom_units": [16], "tower_units": [8]}},
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic data, the faulty model and a parameter file, in one folder."""
    root = tmp_path_factory.mktemp("faults")
    generate_synthetic(SyntheticConfig(correlation=0.5, rows=2000, dim=8, validation_fraction=0.1,
                                       test_fraction=0.1), root / "data")
    (root / "faulty.py").write_text(FAULTY_MODEL, encoding="utf-8")
    (root / "params.yaml").write_text(json.dumps(PARAMS), encoding="utf-8")  # JSON is YAML
    return root


def train_args(workspace: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(workspace / "data"), "--model", f"{workspace / 'faulty.py'}:Faulty",
            "--params", str(workspace / "params.yaml"), "--out", str(out), "--checkpoints", str(out.parent / "ck"),
            "--checkpoint-seconds", "0", "--seeds", "0-2", *extra]


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m replication ARGS`` in a fresh process (a signal there does not reach pytest), with
    SIGINT's and SIGHUP's default dispositions: a shell runs background jobs with SIGINT ignored, and
    Python then never turns SIGINT into KeyboardInterrupt, which the SIGINT case needs; and a suite
    run under nohup would have the command leave its starter's lifetime alone."""
    return subprocess.run([sys.executable, "-m", "replication", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600, preexec_fn=default_signals)


def default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def records_without_seconds(folder: Path) -> dict[str, dict]:
    """Each record of ``folder`` less its wall-clock time, which an interruption changes."""
    out = {}
    for path in sorted(folder.glob("seed_*.json")):
        out[path.name] = without_timings(json.loads(path.read_text(encoding="utf-8")))
    return out


def predictions(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npz"))}


@pytest.fixture(scope="module")
def uninterrupted(workspace: Path) -> Path:
    """The three seeds trained without a fault: what every interrupted run must end with."""
    out = workspace / "reference" / "faulty"
    result = run_cli(train_args(workspace, out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"seed_{s}{suffix}" for s in range(3)
                                                     for suffix in (".json", ".test_predictions.npz")]
    assert all(r["epochs_run"] == EPOCHS for r in records_without_seconds(out).values())
    assert not (workspace / "reference" / "ck").exists()  # checkpoints are removed once every seed is written
    return out


# ------------------------------------------------------------------------------------- interruptions

@pytest.mark.parametrize("fault, returncode", [("SIGKILL", -signal.SIGKILL), ("SIGINT", 130)])
def test_an_interrupted_run_resumes_and_ends_with_the_uninterrupted_records(
        workspace: Path, uninterrupted: Path, fault: str, returncode: int) -> None:
    """Killed in seed 1's third epoch: seed 0 is written, seed 1 has a checkpoint after its second
    epoch. The rerun restores seed 0 without training it, resumes seed 1 from epoch 3, trains seed 2,
    and every record and prediction file equals the uninterrupted run's (wall-clock time aside)."""
    out = workspace / fault / "faulty"
    after = EPOCHS * BATCHES_PER_EPOCH + 2 * BATCHES_PER_EPOCH + 3  # seed 1, epoch 3, batch 3
    first = run_cli(train_args(workspace, out), env={"FAULT": fault, "FAULT_AFTER": str(after)})
    assert first.returncode == returncode, first.stderr
    if fault == "SIGINT":
        assert "interrupted" in first.stderr and "run the same command again to resume" in first.stderr
    assert sorted(p.name for p in out.glob("seed_*")) == ["seed_0.json", "seed_0.test_predictions.npz"]
    # A killed process cannot remove its lock file (the system has released the lock itself); the
    # rerun takes it over. It lies beside the run folder; .dvcignore and .gitignore leave it out.
    assert lock_path(out).exists() == (fault == "SIGKILL")
    seed_0 = (out / "seed_0.json").read_bytes()
    [checkpoint] = (workspace / fault / "ck").glob("faulty-seed1-*/epoch.pt")
    assert checkpoint.is_file()

    second = run_cli(train_args(workspace, out))
    assert second.returncode == 0, second.stderr
    assert "faulty seed 0: finished before the interruption; restored" in second.stderr
    assert "faulty seed 1: resuming after epoch 2" in second.stderr
    # Restored, not retrained: byte for byte, even its time; the model's source (file, class, SHA-256)
    # is in the record from the moment it is written, not added when the command ends.
    assert (out / "seed_0.json").read_bytes() == seed_0
    assert json.loads(seed_0)["model_source"]["class"] == "Faulty"
    assert records_without_seconds(out) == records_without_seconds(uninterrupted)
    assert predictions(out) == predictions(uninterrupted)
    assert not (workspace / fault / "ck").exists()
    assert not lock_path(out).exists()


def test_an_interrupted_ensemble_resumes_and_ends_with_the_uninterrupted_records(workspace: Path) -> None:
    """Three seeds trained together (train.ensemble=3), killed in their third epoch: the rerun resumes
    the ensemble from its checkpoint after epoch 2 and ends with the records of an uninterrupted
    ensemble run (an ensemble's seeds do not bit-match lone runs, so the reference is an ensemble)."""
    reference = workspace / "ensemble_reference" / "faulty"
    assert run_cli(train_args(workspace, reference, "--set", "train.ensemble=3")).returncode == 0
    out = workspace / "ensemble_killed" / "faulty"
    first = run_cli(train_args(workspace, out, "--set", "train.ensemble=3"),
                    env={"FAULT": "SIGKILL", "FAULT_AFTER": str(2 * BATCHES_PER_EPOCH + 3)})
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert not list(out.glob("seed_*"))
    [checkpoint] = (workspace / "ensemble_killed" / "ck").glob("faulty-seeds0_1_2-*/epoch.pt")
    second = run_cli(train_args(workspace, out, "--set", "train.ensemble=3"))
    assert second.returncode == 0, second.stderr
    assert "faulty seeds [0, 1, 2]: resuming after epoch 2" in second.stderr
    assert records_without_seconds(out) == records_without_seconds(reference)
    assert predictions(out) == predictions(reference)
    assert not checkpoint.exists()


def test_a_killed_worker_process_is_resumed_too(workspace: Path, uninterrupted: Path) -> None:
    """Two worker processes: SIGKILL in one of them (its sixth batch) stops the command with a
    clear message; the rerun completes every seed with the uninterrupted records."""
    out = workspace / "workers" / "faulty"
    first = run_cli(train_args(workspace, out, "--set", "train.seed_workers=2"), env={"FAULT": "SIGKILL",
                                                                                      "FAULT_AFTER": "13"})
    assert first.returncode == 1, first.stderr
    assert "a worker process died" in first.stderr and "Run the same command again to resume" in first.stderr
    second = run_cli(train_args(workspace, out, "--set", "train.seed_workers=2"))
    assert second.returncode == 0, second.stderr
    assert "resuming after epoch 1" in second.stderr
    assert_two_worker_records_equal(out, uninterrupted)


def assert_two_worker_records_equal(out: Path, uninterrupted: Path) -> None:
    """The records and predictions of ``out``, trained with two worker processes, are the uninterrupted
    run's (wall-clock time aside; the records also differ in train.seed_workers, which changes no number)."""
    assert records_without_seconds(out).keys() == records_without_seconds(uninterrupted).keys()
    for name, record in records_without_seconds(out).items():
        expected = records_without_seconds(uninterrupted)[name]
        assert record["train"] == {**expected["train"], "seed_workers": 2}
        assert {k: v for k, v in record.items() if k != "train"} == {k: v for k, v in expected.items() if k != "train"}
    assert predictions(out) == predictions(uninterrupted)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def gone_within(pids: list[int], seconds: float) -> bool:
    """Whether every process of ``pids`` has ended within ``seconds``."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def training_pids(folder: Path) -> list[int]:
    """The processes that trained (left by the faulty model under FAULT_PIDS) and their parents."""
    return sorted({int(n) for p in folder.iterdir() if p.name.isdigit() for n in (p.name, p.read_text())})


def test_sigterm_with_several_workers_ends_them_all_and_resumes(workspace: Path, uninterrupted: Path,
                                                                  tmp_path: Path) -> None:
    """SIGTERM to a `train` with two worker processes (sent by a worker in its ninth batch): the command
    ends its workers, answers like Ctrl-C with exit 143 and no traceback, releases its lock, and keeps
    its checkpoints; no worker goes on training; the rerun ends with the uninterrupted records."""
    out = workspace / "sigterm" / "faulty"
    first = run_cli(train_args(workspace, out, "--set", "train.seed_workers=2"),
                    env={"FAULT": "SIGTERM_PARENT", "FAULT_AFTER": "9", "FAULT_PIDS": str(tmp_path)})
    assert first.returncode == 143, first.stderr
    assert "terminated (SIGTERM)" in first.stderr and "run the same command again to resume" in first.stderr
    assert "Traceback" not in first.stderr
    assert gone_within(training_pids(tmp_path), 5)
    assert not lock_path(out).exists()
    assert list((workspace / "sigterm" / "ck").glob("faulty-seed*/epoch.pt"))
    second = run_cli(train_args(workspace, out, "--set", "train.seed_workers=2"))
    assert second.returncode == 0, second.stderr
    assert_two_worker_records_equal(out, uninterrupted)


def test_workers_die_with_a_killed_train_process(workspace: Path, tmp_path: Path) -> None:
    """kill -9 of `train` (by a worker, in its ninth batch) leaves no worker running: each has the
    parent-death signal, so none writes a record after its parent has gone."""
    out = workspace / "parent_killed" / "faulty"
    first = run_cli(train_args(workspace, out, "--set", "train.seed_workers=2"),
                    env={"FAULT": "SIGKILL_PARENT", "FAULT_AFTER": "9", "FAULT_PIDS": str(tmp_path)})
    assert first.returncode == -signal.SIGKILL, first.stderr
    assert gone_within(training_pids(tmp_path), 5)
    assert not list(out.glob("seed_*"))


def test_kill_9_of_dvc_repro_leaves_no_process_and_the_rerun_completes(workspace: Path, uninterrupted: Path,
                                                                        tmp_path: Path) -> None:
    """As `dvc repro` runs a stage: a parent process runs `train` through a shell. kill -9 of that
    parent leaves the shell orphaned, alive, waiting on `train`; `train` sees its grandparent gone and
    ends within seconds, workers included, releasing its lock; an immediate rerun completes with
    the uninterrupted records."""
    out = workspace / "dvc_killed" / "faulty"
    command = " ".join(map(shlex.quote, [sys.executable, "-m", "replication",
                                         *train_args(workspace, out, "--set", "train.seed_workers=2")]))
    runner = "import subprocess, sys; subprocess.run(['sh', '-c', sys.argv[1] + '; true'])"
    dvc = subprocess.Popen([sys.executable, "-c", runner, command], cwd=REPO, stderr=subprocess.DEVNULL,
                           preexec_fn=default_signals,
                           env={**os.environ, "FAULT": "hang", "FAULT_AFTER": "9", "FAULT_PIDS": str(tmp_path)})
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "hanging").exists():
            assert time.monotonic() < deadline and dvc.poll() is None, "the training never reached its ninth batch"
            time.sleep(0.1)
        dvc.kill()
        dvc.wait()
        assert gone_within(training_pids(tmp_path), 10)
    finally:
        dvc.kill()
    assert not lock_path(out).exists()
    second = run_cli(train_args(workspace, out, "--set", "train.seed_workers=2"))
    assert second.returncode == 0, second.stderr
    assert_two_worker_records_equal(out, uninterrupted)


def test_a_slow_model_shows_progress_after_its_first_slow_batch(workspace: Path) -> None:
    """A batch that takes seconds is named on stderr as soon as it ends, long before its epoch does;
    the first batch is not timed (its time holds the set-up)."""
    out = workspace / "slow" / "faulty"
    result = run_cli(train_args(workspace, out, "--seeds", "0", "--set", "train.max_epochs=1"),
                     env={"FAULT": "slow", "FAULT_AFTER": "2"})
    assert result.returncode == 0, result.stderr
    [line] = [l for l in result.stderr.splitlines() if "training batch" in l]
    seconds = re.fullmatch(r"faulty seed\(s\) 0: training batch 2 took ([\d.]+) s; the epoch's progress .*", line)
    assert seconds is not None and float(seconds.group(1)) >= 3  # its sleep
    assert "training batch 3" not in result.stderr  # the other batches are fast: no more lines


# ------------------------------------------------------------------------------------- checkpoints

def test_a_truncated_checkpoint_is_moved_aside_and_its_seed_restarts(workspace: Path, uninterrupted: Path) -> None:
    """Killed in seed 1's third epoch, then its checkpoint cut in half: the rerun names the file,
    moves it aside, trains seed 1 from its first epoch, and ends with the uninterrupted records."""
    out = workspace / "truncated" / "faulty"
    after = EPOCHS * BATCHES_PER_EPOCH + 2 * BATCHES_PER_EPOCH + 3
    assert run_cli(train_args(workspace, out), env={"FAULT": "SIGKILL", "FAULT_AFTER": str(after)}).returncode != 0
    [checkpoint] = (workspace / "truncated" / "ck").glob("faulty-seed1-*/epoch.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:checkpoint.stat().st_size // 2])
    second = run_cli(train_args(workspace, out))
    assert second.returncode == 0, second.stderr
    assert f"checkpoint {checkpoint} cannot be read" in second.stderr
    assert "this seed restarts from its first epoch" in second.stderr and "resuming" not in second.stderr
    [aside] = (workspace / "truncated" / "ck").glob(f"{checkpoint.parent.name}.epoch.pt.corrupt-*")
    assert str(aside) in second.stderr
    assert records_without_seconds(out) == records_without_seconds(uninterrupted)
    assert predictions(out) == predictions(uninterrupted)


def test_a_second_writer_of_the_same_run_folder_is_refused(workspace: Path, capsys) -> None:
    """While one process holds a run folder, a second train into it exits 2 naming the holder, and
    writes nothing; once the first has gone, the folder is free again."""
    out = workspace / "locked" / "faulty"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from replication.runfolder import run_folder_lock
        with run_folder_lock(Path({str(out)!r})):
            print("locked", flush=True)
            sys.stdin.read()
    """)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(train_args(workspace, out, "--seeds", "0")) == 2
        message = capsys.readouterr().err
        assert f"{out} is being written by process {holder.pid}" in message and "pass another --out" in message
        assert not any(out.iterdir()) and lock_path(out).is_file()
    finally:
        holder.communicate("", timeout=60)
    assert not out.exists() or not any(out.iterdir())
    assert main(train_args(workspace, out, "--seeds", "0", "--set", "train.max_epochs=1")) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed_0.json", "seed_0.test_predictions.npz"]


UNSAVABLE = [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device (ENOSPC)"),
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied (EACCES)"),
    (RuntimeError("[enforce fail at inline_container.cc:778] . unexpected pos 1036288 vs 1036176"), "most likely a full disk"),
]


@pytest.mark.parametrize("error, reason", UNSAVABLE, ids=["disk full", "permission", "torch's disk full"])
def test_a_checkpoint_that_cannot_be_saved_is_named_and_the_previous_one_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, error: BaseException, reason: str) -> None:
    """A save that fails half way (the disk fills, a permission) says which file and why, training
    goes on, the previous checkpoint is intact and no temporary file is left behind."""
    mark = SeedCheckpoint(tmp_path / "seed0")
    mark.save_epoch({"epoch": 1})
    saved = mark.epoch_file.read_bytes()

    def fail(state, handle) -> None:
        handle.write(b"half a checkpoint")
        raise error
    monkeypatch.setattr(runfolder.torch, "save", fail)
    mark.save_epoch({"epoch": 2})
    message = capsys.readouterr().err
    assert f"could not save checkpoint {mark.epoch_file}: " in message and reason in message
    assert "the previous checkpoint (if any) is intact and training goes on" in message
    assert mark.epoch_file.read_bytes() == saved and mark.load_epoch() == {"epoch": 1}
    assert sorted(p.name for p in mark.folder.iterdir()) == ["epoch.pt"]


# ------------------------------------------------------------------------------------ broken models

def test_a_diverging_seed_is_recorded_as_failed_and_tabled_as_missing(workspace: Path) -> None:
    """Seed 1's loss becomes infinite in its second epoch: its record says failed, when and why, it
    has no predictions, the other seeds are trained, and the table shows seed 1 as missing."""
    out = workspace / "diverged" / "faulty"
    result = run_cli(train_args(workspace, out),
                     env={"FAULT": "infinite", "FAULT_AFTER": str(EPOCHS * BATCHES_PER_EPOCH + BATCHES_PER_EPOCH + 1)})
    assert result.returncode == 0, result.stderr
    assert "1 of 3 seeds failed" in result.stderr
    failed = json.loads((out / "seed_1.json").read_text(encoding="utf-8"))
    assert failed["status"] == "failed" and failed["failure"]["epoch"] == 2
    assert failed["failure"]["reason"] in ("training loss became inf", "training loss became nan")
    assert not (out / "seed_1.test_predictions.npz").exists()
    # The fault strikes once: seed 2 trains normally.
    assert json.loads((out / "seed_2.json").read_text(encoding="utf-8"))["status"] == "ok"

    write_json(out.parent / "single_task" / "seed_0.json", {**json.loads((out / "seed_0.json").read_text()),
                                                             "model": "single_task"})
    for seed in (1, 2):
        write_json(out.parent / "single_task" / f"seed_{seed}.json",
                   {**json.loads((out / "seed_2.json").read_text()), "model": "single_task", "seed": seed})
    table = aggregate(out.parent, workspace / "diverged_table").set_index(["model", "task"])
    row = table.loc[("faulty", "task1")]
    assert row["n_seeds"] == 2 and row["seeds"] == "0 2" and row["missing_seeds"] == "1"
    values = [json.loads((out / f"seed_{s}.json").read_text())["test"]["task1"]["mse"] for s in (0, 2)]
    assert row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    markdown = (workspace / "diverged_table.md").read_text(encoding="utf-8")
    assert "| 2 (missing 1) |" in markdown
    assert "faulty seed 1, epoch 2: training loss became" in markdown


def test_a_model_that_raises_in_forward_is_named_with_its_file_and_line(workspace: Path) -> None:
    out = workspace / "raising" / "faulty"
    result = run_cli(train_args(workspace, out, "--seeds", "0"), env={"FAULT": "raise", "FAULT_AFTER": "3"})
    assert result.returncode == 2
    message = result.stderr
    line = FAULTY_MODEL.splitlines().index(next(l for l in FAULTY_MODEL.splitlines() if "the model broke" in l)) + 1
    assert f"faulty seed(s) 0: training failed at {workspace / 'faulty.py'}, line {line}" in message
    assert "RuntimeError: the model broke" in message
    assert not list(out.glob("seed_*"))


@pytest.mark.parametrize("source, error", [
    ("def broken(:\n", "line 1"),
    ("import os\nraise ImportError('no such dependency')\n", "line 2: ImportError: no such dependency"),
])
def test_a_model_file_that_fails_to_import_is_named_with_its_line(workspace: Path, capsys, source: str,
                                                                   error: str) -> None:
    model = workspace / f"broken_{len(source)}.py"
    model.write_text(source, encoding="utf-8")
    out = workspace / "broken" / "x"
    args = train_args(workspace, out)
    args[args.index("--model") + 1] = f"{model}:Broken"
    assert main(args) == 2
    message = capsys.readouterr().err
    assert str(model) in message and error in message
    assert not out.exists()


# ---------------------------------------------------------------------------------- bad configuration

BAD_CONFIGURATIONS = [
    (["--set", "train.epochs=5"], ["train.epochs", "allowed keys", "max_epochs"]),
    (["--set", "train.max_epochs=-1"], ["train.max_epochs = -1", "must be >= 1"]),
    (["--set", "train.lr=fast"], ["train.lr = 'fast'", "expected float"]),
    (["--set", "train.selection=best"], ["train.selection = 'best'", "'mean', 'main_task'"]),
    (["--set", "train.patience=0"], ["train.patience = 0", "must be >= 1"]),
    (["--set", "train.device=tpu"], ["train.device = 'tpu'", "use auto, cpu"]),
    (["--set", "train.executor=spark"], ["train.executor = 'spark'", "'local', 'ray'"]),
    (["--set", "train.loss_weights.task1=-1"], ["train.loss_weights.task1 = -1", "must be >= 0"]),
    (["--set", "train.loss_weights.ctr=2"], ["ctr", "not in the data", "task1"]),
    (["--seeds", ""], ["--seeds ''", "e.g. 0-9"]),
    (["--seeds", "3-1"], ["--seeds '3-1'", "increasing ranges"]),
    (["--seeds", "1,1"], ["each seed may appear once"]),
    (["--set", "trian.lr=1"], ["'trian'", "unknown section", "train"]),
    (["--profile", "gpu"], ["profiles.gpu", "no profiles.gpu"]),
    (["--checkpoint-seconds", "-5"], ["--checkpoint-seconds -5"]),
    (["--set", "models.faulty.bottom_unit=[8]"], ["unknown hyperparameter(s) ['bottom_unit']", "bottom_units="]),
    (["--set", "model_common.embedding_dim=0"], ["embedding_dim"]),
]


@pytest.mark.parametrize("extra, phrases", BAD_CONFIGURATIONS, ids=[" ".join(c[0]) for c in BAD_CONFIGURATIONS])
def test_a_bad_training_configuration_is_refused_before_any_work(workspace: Path, capsys, extra: list[str],
                                                                  phrases: list[str]) -> None:
    out = workspace / "bad_config" / "faulty"
    assert main(train_args(workspace, out, *extra)) == 2
    message = capsys.readouterr().err
    assert message.startswith("error: ")
    for phrase in phrases:
        assert phrase in message
    assert not out.exists()


def test_an_unknown_key_in_the_parameter_file_is_refused(workspace: Path, capsys) -> None:
    params = workspace / "typo.yaml"
    params.write_text(json.dumps({**PARAMS, "train": {**PARAMS["train"], "learning_rate": 0.1}}), encoding="utf-8")
    out = workspace / "typo" / "faulty"
    args = train_args(workspace, out)
    args[args.index("--params") + 1] = str(params)
    assert main(args) == 2
    message = capsys.readouterr().err
    assert "train.learning_rate" in message and "allowed keys" in message and "lr" in message
    assert not out.exists()


def test_train_reads_its_seeds_from_the_parameter_file(workspace: Path, tmp_path: Path) -> None:
    """Without --seeds, `train` trains params.yaml's `seeds` (the ones `compare` and dvc use)."""
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({**PARAMS, "seeds": "1-2", "train": {**PARAMS["train"], "max_epochs": 1}}),
                      encoding="utf-8")
    args = train_args(workspace, tmp_path / "faulty")
    args[args.index("--params") + 1] = str(params)
    del args[args.index("--seeds"):args.index("--seeds") + 2]
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "faulty").glob("*.json")) == ["seed_1.json", "seed_2.json"]


def test_a_parameter_file_that_is_not_yaml_is_named_with_its_line(workspace: Path, tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  lr: 0.01\n  batch_size: [256\n", encoding="utf-8")
    args = train_args(workspace, tmp_path / "faulty")
    args[args.index("--params") + 1] = str(params)
    assert main(args) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: {params} is not valid YAML at line 4, column 1: ") and "fix that line" in message
    assert len(message.splitlines()) == 1 and not (tmp_path / "faulty").exists()


def _drop_split(data: Path) -> None:
    (data / "validation.npz").unlink()


def _cut_split(data: Path) -> None:
    (data / "train.npz").write_bytes((data / "train.npz").read_bytes()[:1000])


def _miscount_rows(data: Path) -> None:
    schema = json.loads((data / "schema.json").read_text(encoding="utf-8"))
    schema["splits"]["train"]["rows"] -= 1
    write_json(data / "schema.json", schema)


def _break_schema(data: Path) -> None:
    (data / "schema.json").write_text('{"splits": ', encoding="utf-8")


BAD_DATA = [
    (_drop_split, "split file {data}/validation.npz is missing"),
    (_cut_split, "split file {data}/train.npz cannot be read"),
    (_miscount_rows, "split file {data}/train.npz does not match {data}/schema.json: x_cat has shape (1600, 0), the "
                     "schema says (1599, 0); x_num has shape (1600, 8), the schema says (1599, 8); y has shape (1600, 2)"),
    (_break_schema, "{data}/schema.json is not valid JSON"),
]


@pytest.mark.parametrize("damage, phrase", BAD_DATA, ids=["missing split", "truncated split", "row count", "schema"])
def test_processed_data_that_disagrees_with_its_schema_is_refused_before_training(
        workspace: Path, tmp_path: Path, capsys, damage, phrase: str) -> None:
    """A processed data set is checked against its schema (files, row counts, columns, dtypes) before
    any training: one line naming the file and how to recreate it, exit 2, nothing written."""
    data = tmp_path / "data"
    shutil.copytree(workspace / "data", data)
    damage(data)
    args = train_args(workspace, tmp_path / "faulty")
    args[args.index("--data") + 1] = str(data)
    assert main(args) == 2
    message = capsys.readouterr().err
    assert message.startswith("error: " + phrase.format(data=data)) and "create it again (`dvc repro`" in message
    assert len(message.splitlines()) == 1 and not (tmp_path / "faulty").exists()


@pytest.mark.parametrize("extra, phrase", [
    (["--correlation", "1.5"], "synth.correlation = 1.5: must lie in [-1, 1]"),
    (["--correlation", "0.5", "--n", "0"], "synth.rows"),
    (["--correlation", "0.5", "--test-fraction", "0.7", "--validation-fraction", "0.7"], "fraction"),
])
def test_a_bad_synthetic_configuration_is_refused(tmp_path: Path, capsys, extra: list[str], phrase: str) -> None:
    assert main(["synth", *extra, "--out", str(tmp_path / "out")]) == 2
    assert phrase in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ tables

def test_records_of_different_training_protocols_are_refused_in_one_table(workspace: Path,
                                                                          uninterrupted: Path) -> None:
    runs = workspace / "protocols"
    for model, lr in (("single_task", 0.01), ("faulty", 0.1)):
        for path in uninterrupted.glob("seed_*.json"):
            record = json.loads(path.read_text(encoding="utf-8"))
            write_json(runs / model / path.name, {**record, "model": model, "train": {**record["train"], "lr": lr}})
    with pytest.raises(ConfigError, match=r"different protocols.*train\.lr: 0\.1 vs 0\.01"):
        aggregate(runs, workspace / "protocols_table")
    assert not list(workspace.glob("protocols_table*"))


# ------------------------------------------------------------------------------------------ README

def test_reliability_page_states_the_number_of_faults_tried() -> None:
    """docs/reliability.md gives the number of fault cases; `pytest -m fault` counts them."""
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "fault", "tests"],
                               cwd=REPO, capture_output=True, text=True, timeout=600)
    count = int(re.search(r"(\d+)/\d+ tests collected", collected.stdout).group(1))
    page = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    stated = re.search(r"(\d+) bad inputs and faults", page)
    assert stated is not None, "docs/reliability.md must state how many bad inputs and faults the suite tries"
    assert int(stated.group(1)) == count
