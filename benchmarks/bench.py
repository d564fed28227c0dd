"""`make bench`: seconds per epoch, test AUC and peak memory of this project's trainer against
torch-rechub and deepctr-torch on the full census training set, and how this project's epoch time
grows with the number of rows. ``benchmarks/README.md`` states the protocol and its caveats.

    python -m benchmarks.bench [--sections peers,scaling] [--timed-epochs 4] [--out benchmarks/results]

The report is a list of sections (:data:`SECTIONS`), each a function from the run's context to a
Markdown block and tidy CSV rows; a new measurement is one more entry there. Every measurement runs
in its own subprocess (this module with ``--job``), so each peak RSS is one library's and one model's.
The tables go to stdout and, with the machine and the date, to ``<out>/bench.md`` and ``bench.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import importlib.util
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from benchmarks import core
from models import list_models

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "processed" / "census_income_marital"
DEFAULT_PARAMS = REPO / "params.yaml"
DEFAULT_OUT = REPO / "benchmarks" / "results"
DEFAULT_RUNS = REPO / "results" / "runs" / "census_income_marital"
PEER_MODULES = {core.TORCH_RECHUB: "torch_rechub", core.DEEPCTR_TORCH: "deepctr_torch"}
SYNTHETIC_CORRELATION = 0.5
BUSY_LOAD = 1.0  # a 1-minute load average from which the bench warns that the cores are shared


class BenchError(RuntimeError):
    """A benchmark that cannot run; the message says what to do."""


# ---------------------------------------------------------------------------------------------------
# Parameters (params.yaml, read as the training commands read it)


FAST_PROFILE = "fast"  # params.yaml's fastest configuration (bf16 autocast): measured by default where the CPU has bf16


def emulated_bf16(params_file: Path, profile: str) -> str | None:
    """The trainer's warning where ``profile`` trains in bf16 on a CPU that only emulates it; None otherwise
    (or where params.yaml has no such profile: the peers section says so)."""
    from replication.provenance import cpu_flags, slow_bf16_warning

    try:
        train, _ = training_setup(params_file, next(iter(core.MODELS)), profile=profile)
    except ValueError:
        return None
    return slow_bf16_warning(str(train.get("precision", "fp32")), str(train.get("device", "auto")), cpu_flags())


def project_profiles(named: list[str] | None, params_file: Path) -> list[str]:
    """This project's runs in the peers section: those named, each warned about where it trains in
    emulated bf16; by default the default and the fast profile, the fast one only where this CPU has
    bfloat16 instructions (elsewhere it would take hours, and measure the emulation)."""
    profiles = list(named) if named is not None else [core.DEFAULT_PROFILE, FAST_PROFILE]
    for profile in [p for p in profiles if p != core.DEFAULT_PROFILE]:
        warning = emulated_bf16(params_file, profile)
        if warning and named is None:
            profiles.remove(profile)
            print(f"bench: leaving out profiles.{profile} ({warning.removeprefix('warning: ')})", file=sys.stderr)
        elif warning:
            print(f"bench: profiles.{profile}: {warning}", file=sys.stderr)
    return profiles


def training_setup(params_file: Path, model: str, profile: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(train section, model hyperparameters)`` as ``python -m replication train`` reads them:
    the profile merged first, then ``model_common`` under the model's own section."""
    from replication.config import apply_profile, load_params, section

    params = load_params(params_file)
    if profile:
        params = apply_profile(params, profile)
    hparams = {**section(params, "model_common"), **(section(params, "models").get(model) or {})}
    return dict(section(params, "train")), hparams


def synthetic_section(params_file: Path) -> dict[str, Any]:
    from replication.config import load_params, section

    return dict(section(load_params(params_file), "synthetic"))


# ---------------------------------------------------------------------------------------------------
# Jobs: one measurement in one subprocess


def run_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Run one measurement in this process (the subprocess's side of :meth:`Context.measure`)."""
    from benchmarks import runners
    from replication.config import from_mapping
    from replication.training import TrainConfig

    runners.set_up_process(int(job["threads"]))
    cfg = from_mapping(TrainConfig, job["train"], "train")
    data = load_job_data(job)
    if job["kind"] == "peers":
        runner = runners.RUNNERS[job["library"]]
        out = runner(job["model"], job["hparams"], data, cfg, job["warmup"], job["timed"], job["seed"],
                     select=job.get("select", True))
        return {**out, "profile": job.get("profile", core.DEFAULT_PROFILE)}
    if job["kind"] == "together":
        return runners.run_project_together(job["model"], job["hparams"], data, cfg, job["warmup"], job["timed"],
                                            job["seed"], int(job["together"]))
    if job["kind"] == "scaling":
        return runners.run_project_scaling(job["model"], job["hparams"], data, cfg, job["warmup"], job["timed"],
                                           job["seed"], job["label"])
    raise BenchError(f"unknown job kind {job['kind']!r}")


def load_job_data(job: Mapping[str, Any]):
    """The census arrays (training rows cut to ``rows`` if given) or synthetic training rows."""
    from replication.data.processed import Processed, load_processed

    if job.get("synthetic") is None:
        data = load_processed(job["data"], verify=False)  # the parent process verified the hash once
        if job.get("rows"):
            data = Processed(data.schema, {**data.splits, "train": data.splits["train"].head(int(job["rows"]))})
        return data
    return synthetic_training_data(**job["synthetic"])


def synthetic_training_data(train_rows: int, dim: int, **generator: Any):
    """``train_rows`` training rows of the MMoE paper's generator (``replication.data.synthetic``),
    built in memory: the first rows of a data set whose training split has exactly that size."""
    import torch

    from replication.data.processed import Processed, Split
    from replication.data.synthetic import TASKS, SyntheticConfig, generate_arrays, task_group

    def config(rows: int) -> SyntheticConfig:
        return SyntheticConfig(rows=rows, dim=dim, **generator)

    total = core.total_rows_for_train(train_rows, generator.get("validation_fraction", 0.1),
                                      generator.get("test_fraction", 0.1), lambda n: config(n).split_rows())
    x, y, _ = generate_arrays(config(total))
    x, y = x[:train_rows], y[:train_rows]  # the training split is the first block
    schema = {
        "dataset": "synthetic", "task_group": task_group(generator["correlation"]), "split_seed": generator.get("seed", 0),
        "data_hash": "", "main_task": TASKS[0],
        "features": {"categorical": [], "numeric": [f"x{i}" for i in range(dim)]},
        "tasks": [{"name": t, "type": "regression"} for t in TASKS],
    }
    train = Split(torch.zeros((train_rows, 0), dtype=torch.int64), torch.from_numpy(x), torch.from_numpy(y), y)
    return Processed(schema, {"train": train})


# ---------------------------------------------------------------------------------------------------
# Sections


@dataclass
class Context:
    """What every section reads: the command line, and a way to run one measurement in a subprocess."""

    args: argparse.Namespace
    schema: dict[str, Any]
    log: Callable[[str], None] = print

    def measure(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``job`` in a fresh Python process and return its result. A run during which other
        processes kept more than ``--max-other-cores`` cores busy is repeated, after waiting for a
        quiet machine, up to ``--retries`` times; the last attempt is reported, with its load and
        the number of attempts."""
        job = {"threads": self.args.threads, "seed": self.args.seed, "warmup": self.args.warmup_epochs,
               "timed": self.args.timed_epochs, "data": str(self.args.data), **job}
        for attempt in range(1, self.args.retries + 2):
            out = self._measure_once(job)
            out["attempts"] = attempt
            others = out["others_cores"]
            if others is None or others <= self.args.max_other_cores or attempt > self.args.retries:
                return out
            self.log(f"  other jobs kept {others:.2f} cores busy (more than {self.args.max_other_cores}): waiting for "
                     f"a quiet machine, then measuring {describe(job)} again")
            wait_for_quiet(self.args.max_other_cores, self.log)
        raise AssertionError("unreachable")

    def _measure_once(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """Run ``job`` in a fresh Python process; return its result, or raise with its output's tail."""
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            job_file, result_file, log_file = (Path(tmp) / name for name in ("job.json", "result.json", "log.txt"))
            job_file.write_text(json.dumps(job), encoding="utf-8")
            busy, own, started = machine_busy_seconds(), children_cpu_seconds(), time.perf_counter()
            with open(log_file, "wb") as log:
                done = subprocess.run([sys.executable, "-m", "benchmarks.bench", "--job", str(job_file),
                                       "--result", str(result_file)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, check=False)
            wall = time.perf_counter() - started
            after = machine_busy_seconds()
            others = None if busy is None or after is None else core.others_cores(
                after - busy, children_cpu_seconds() - own, wall)
            if done.returncode != 0 or not result_file.is_file():
                tail = log_file.read_text(encoding="utf-8", errors="replace")[-4000:]
                raise BenchError(f"the measurement {describe(job)} failed (exit {done.returncode}); its output ended:\n{tail}")
            out = {**json.loads(result_file.read_text(encoding="utf-8")), "others_cores": others}
        median = core.median_seconds(out["epoch_seconds"])
        self.log(f"  {describe(job)}: {median:.2f} s/epoch (timed {', '.join(f'{s:.2f}' for s in out['epoch_seconds'])}), "
                 f"peak RSS {out['peak_rss_mb']:.0f} MB, {wall:.0f} s in all" +
                 ("" if others is None else f", other jobs {others:.2f} cores"))
        return out


def wait_for_quiet(max_cores: float, log: Callable[[str], None], window: float = 10.0, patience: float = 600.0) -> None:
    """Wait until other processes keep at most ``max_cores`` cores busy over a ``window`` of seconds
    (this process is idle meanwhile), or ``patience`` seconds have passed."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        before = machine_busy_seconds()
        time.sleep(window)
        after = machine_busy_seconds()
        if before is None or after is None or (after - before) / window <= max_cores:
            return
    log(f"  the machine stayed busy for {patience:.0f} s; measuring anyway")


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy; None where /proc/stat is missing (not Linux)."""
    try:
        return core.cpu_busy_seconds(Path("/proc/stat").read_text(encoding="utf-8"))
    except OSError:
        return None


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def describe(job: Mapping[str, Any]) -> str:
    what = f"{job.get('library', core.PROJECT)} {core.MODELS.get(job['model'], job['model'])}"
    return what + (f" on {job['label']}" if job.get("label") else "")


@dataclass(frozen=True)
class SectionResult:
    markdown: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    name: str
    run: Callable[[Context], SectionResult]
    default: bool = True  # run when --sections is not given


def peer_comparison(ctx: Context) -> SectionResult:
    """Seconds per epoch, test AUC and peak memory: this project, torch-rechub and deepctr-torch on
    the full census training split, for every model all three have."""
    args = ctx.args
    missing = [lib for lib in args.libraries if lib in PEER_MODULES and importlib.util.find_spec(PEER_MODULES[lib]) is None]
    if missing:
        raise BenchError(f"{', '.join(missing)} not installed in this environment; `make bench` installs them "
                         f"(pyproject.toml's `bench` extra: pip install -c requirements.lock -e '.[bench]')")
    for profile in args.project_profiles:
        if profile != core.DEFAULT_PROFILE:
            try:
                training_setup(args.params, args.models[0], profile=profile)
            except ValueError as error:  # ConfigError: no such profile in params.yaml
                raise BenchError(f"--project-profiles: {error}") from None
    results = []
    for process in range(args.processes):  # the first round trains to selection; later rounds time only
        for model in args.models:
            for library in args.libraries:
                for profile in args.project_profiles if library == core.PROJECT else [core.DEFAULT_PROFILE]:
                    train, hparams = training_setup(args.params, model,
                                                    profile=None if profile == core.DEFAULT_PROFILE else profile)
                    results.append(ctx.measure({"kind": "peers", "library": library, "model": model, "train": train,
                                                "hparams": hparams, "profile": profile, "select": process == 0}))
    rows = core.comparison_rows(results)
    tasks = [t["name"] for t in ctx.schema["tasks"]]
    train_rows = ctx.schema["splits"]["train"]["rows"]
    test_rows = ctx.schema["splits"]["test"]["rows"]
    patience = training_setup(args.params, args.models[0])[0]["patience"]
    text = (
        f"## Seconds per epoch and test AUC: this project, torch-rechub and deepctr-torch\n\n"
        f"Census income + marital, the full training split ({train_rows:,} rows; test {test_rows:,} rows), batch size "
        f"{training_setup(args.params, args.models[0])[0]['batch_size']}, Adam, "
        f"sizes from `params.yaml`. One epoch is one pass over the training rows (forward, loss, backward, optimizer "
        f"step), validation excluded for everyone; the median of {args.timed_epochs} timed epochs after "
        f"{args.warmup_epochs} warm-up epoch(s), in each of {args.processes} separate processes, run in turns (every "
        f"row's first process, then every row's second, ...); the row's time is the median of the processes' medians, "
        f"because the same measurement varies more between processes than within one. In its first process every "
        f"library goes on training under this project's model selection "
        f"(seed {args.seed}, one seed): after each epoch (untimed) the mean validation AUC over tasks; stop after "
        f"{patience} epochs without a better one; the test AUC is read at the selected epoch, by this project's AUC "
        f"on each library's own test predictions. `peer / ours` is the row's median epoch time over this project's "
        f"default run of the same model"
        + "".join(f"; `peer / ours ({p})` over its `profiles.{p}` run" for p in args.project_profiles
                  if p != core.DEFAULT_PROFILE) +
        f". Each row ran in its own process with {args.threads} torch threads "
        f"and denormals flushed to zero; peak RSS is that process's (data, library and model); tensors: this project's "
        f"data splits, parameters, gradients and Adam state; other jobs: the mean number of cores that other processes "
        f"kept busy while that row ran (about 0 on an idle machine; more means slower, noisier epochs); a row above "
        f"{args.max_other_cores} was measured again, up to {args.retries} times, after waiting for a quiet machine (the "
        f"CSV's `attempts`). The profiles and the differences between the libraries' models: "
        f"`benchmarks/README.md`.\n\n" + core.comparison_markdown(rows, tasks))
    return SectionResult(text, rows)


def scaling(ctx: Context) -> SectionResult:
    """This project's epoch time for MMoE and PLE as the training rows grow: census slices and the
    synthetic generator at the PLE paper's row count."""
    args = ctx.args
    full = ctx.schema["splits"]["train"]["rows"]
    results = []
    generator = {k: v for k, v in synthetic_section(args.params).items()
                 if k in ("scale", "n_sines", "noise_std", "seed", "validation_fraction", "test_fraction")}
    for model in args.scaling_models:
        train, hparams = training_setup(args.params, model)
        for rows in args.census_rows:
            n = min(rows or full, full)
            results.append(ctx.measure({"kind": "scaling", "model": model, "train": train, "hparams": hparams,
                                        "rows": n, "label": "census"}))
        if args.synthetic_rows:
            train, hparams = training_setup(args.params, model, profile="synthetic")
            results.append(ctx.measure({
                "kind": "scaling", "model": model, "train": train, "hparams": hparams,
                "label": f"synthetic d={args.synthetic_dim}",
                "synthetic": {"train_rows": args.synthetic_rows, "dim": args.synthetic_dim,
                              "correlation": SYNTHETIC_CORRELATION, **generator}}))
    rows = core.scaling_rows(results)
    text = (
        "## Scaling: this project's seconds per epoch as the rows grow\n\n"
        f"MMoE and PLE with this project's trainer, {args.threads} torch threads, median of {args.timed_epochs} timed "
        f"epochs after {args.warmup_epochs} warm-up. Census rows are the first rows of the training split, with the "
        f"census sizes of `params.yaml`. Synthetic rows come from `replication.data.synthetic` (task correlation "
        f"{SYNTHETIC_CORRELATION}, d = {args.synthetic_dim}, the other generator settings of `params.yaml`), built in "
        f"memory, with the `synthetic` profile's sizes (smaller models: 16-unit experts, 8-unit towers). The PLE paper's "
        f"d = 512 at 1.4 million rows is 2.9 GB of float32 (`--synthetic-dim 512` measures it); d = 100 is the MMoE "
        f"paper's and this project's default. Tensors: the training rows plus parameters, gradients and Adam state "
        f"(census rows also hold the validation and test splits). Other jobs: as in the table above.\n\n" + core.scaling_markdown(rows))
    return SectionResult(text, rows)


def together(ctx: Context) -> SectionResult:
    """Seeds trained together (``train.ensemble``): epoch time of S seeds as one batched computation
    against S lone runs, on the full census training split."""
    args = ctx.args
    results = []
    for model in args.together_models:
        train, hparams = training_setup(args.params, model)
        for count in args.together:
            for _ in range(args.lone_processes if count == 1 else 1):
                out = ctx.measure({"kind": "together", "model": model, "train": train, "hparams": hparams,
                                   "together": count, "threads": args.together_threads})
                results.append({**out, "threads": args.together_threads})
    rows = core.together_rows(results)
    text = (
        "## Seeds trained together: one batched computation against lone runs\n\n"
        f"Census, the full training split, sizes from `params.yaml`; S seeds of a model as one ensemble "
        f"(`train.ensemble: S`, `replication/training/steps.py`: the trainer's `StackedStep`), one process with "
        f"{args.together_threads} torch thread(s) (the trainer runs its seeds one process per core, one thread each, "
        f"and would run ensembles the same way), the median of {args.timed_epochs} timed epochs after "
        f"{args.warmup_epochs} warm-up epoch(s), validation excluded. S = 1 is a lone run (`train_seed`'s epoch), "
        f"measured in {args.lone_processes} separate processes: the row gives the median of their medians, because a "
        f"lone run's epoch time varies between processes by more than within one. The speed-up is per seed: the lone "
        f"run's epoch time over the ensemble's epoch time divided by S (above 1: the ensemble trains "
        f"each seed faster than S lone runs one after another would). Fixed cost: each lone process also times "
        f"an epoch of as many steps of {core.FIXED_COST_BATCH} rows each, nearly all of it the per-step cost that does "
        f"not grow with the batch (Python, dispatch, autograd, the optimizer's launches). An ensemble that does each "
        f"seed's arithmetic as a lone run does can at best pay that part once instead of S times: its per-seed "
        f"speed-up is at most lone / (lone - fixed + fixed / S), the bound column. Only doing the arithmetic "
        f"itself faster (fused kernels, lower precision) goes beyond it.\n\n" + core.together_markdown(rows))
    return SectionResult(text, rows)


def weighting_cost(ctx: Context) -> SectionResult:
    """Seconds per training epoch of each loss weighting method (``train.weighting``) against equal
    weights (``static``) on the same model: the trainer's own epoch loop, as ``train`` runs it."""
    from replication.weighting import available_weightings

    args = ctx.args
    methods = args.weighting_methods or available_weightings()
    results = []
    for model in args.weighting_models:
        train, hparams = training_setup(args.params, model)
        for method in dict.fromkeys([core.EQUAL_WEIGHTING, *methods]):
            out = ctx.measure({"kind": "peers", "library": core.PROJECT, "model": model,
                               "train": {**train, "weighting": method, "weighting_params": {}},
                               "hparams": hparams, "select": False})
            results.append({**out, "weighting": method})
    rows = core.weighting_rows(results)
    text = (
        "## Loss weighting: each method's seconds per epoch against equal weights\n\n"
        f"Census, the full training split, sizes from `params.yaml`, one process per row with {args.threads} torch "
        f"threads: the trainer's own loop (`train_seed`, as `python -m replication train --set train.weighting=M` runs "
        f"it, each method with its default parameters), the median of {args.timed_epochs} timed epochs after "
        f"{args.warmup_epochs} warm-up epoch(s); training and the validation pass after each epoch timed apart by the "
        f"loop. Relative cost: the method's training seconds per epoch over `static`'s (equal weights) on the same "
        f"model; the gradient methods pay for one backward pass per task through the shared parameters the model "
        f"declares, and Nash-MTL also for solving its small convex problem every batch. Each row is one process, and "
        f"the same measurement varies from process to process (the peers section's 'each process's median' shows by "
        f"how much), so a ratio near 1.00x says the method costs about what equal weights cost, no more precisely."
        f"\n\n" + core.weighting_markdown(rows))
    return SectionResult(text, rows)


def run_command(ctx: Context, command: list[str], what: str) -> float:
    """Run a command (``python -m replication ...``) in the repository, logging it; returns its
    wall-clock seconds, or raises with the tail of its stderr."""
    ctx.log(f"  {what}: python " + " ".join(command[1:]))
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    ctx.log(f"    {seconds:.0f} s")
    return seconds


def profile_auc(ctx: Context) -> SectionResult:
    """Whether a profile (``profiles.fast``) keeps the test AUC: each model trained by the trainer
    (``python -m replication train --profile P``) on several seeds, to the epochs validation selects,
    against the default runs that ``dvc repro`` made (``--reference-runs``), paired by seed."""
    from replication.records import load_records
    from replication.protocol import protocol_hash

    args = ctx.args
    profiles = [p for p in args.project_profiles if p != core.DEFAULT_PROFILE]
    rows: list[dict[str, Any]] = []
    for profile in profiles:
        for model in args.models:
            reference_dir = args.reference_runs / model
            if not reference_dir.is_dir():
                raise BenchError(f"no default runs of {model} in {reference_dir} to compare the {profile!r} profile "
                                 f"with; create them with `dvc repro train` (or `dvc pull`)")
            reference = [r for r in load_records(args.reference_runs) if r["model"] == model]
            with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
                command = [sys.executable, "-m", "replication", "train", "--data", str(args.data), "--model", model,
                           "--seeds", args.profile_seeds, "--params", str(args.params), "--profile", profile,
                           "--out", str(Path(tmp) / model), "--no-checkpoints"]
                run_command(ctx, command, f"{model}, profiles.{profile}, seeds {args.profile_seeds}")
                records = load_records(Path(tmp))
            hashes = {protocol_hash(r) for r in reference} | {protocol_hash(r) for r in records}
            if len(hashes) != 1:
                raise BenchError(f"the {profile!r} runs of {model} and the default runs in {reference_dir} were trained "
                                 f"under different protocols ({', '.join(sorted(hashes))}); run `dvc repro train` so "
                                 f"the default runs match params.yaml")
            rows += core.profile_auc_rows(reference, records, profile)
    runs = args.reference_runs.resolve()
    where = runs.relative_to(REPO) if runs.is_relative_to(REPO) else runs
    text = (
        "## Profiles: test AUC against the default runs\n\n"
        f"Each model trained by the trainer itself (`python -m replication train --profile P`, seeds "
        f"{args.profile_seeds}, its default worker processes, validation selecting the epoch) against the default "
        f"runs of `dvc repro` in `{where}`, "
        f"paired by seed. A profile's runs do not bit-match the default's (other rounding), so seed k of each is a "
        f"different draw: the question is whether the AUCs' distributions agree. Difference: the mean over seeds of "
        f"profile - default, with its 95% t interval; p: the paired t-test. Training seconds: the run records' "
        f"`seconds` (training, validation and test prediction), summed over the seeds; the default runs may come "
        f"from another machine (their records' `environment`).\n\n" + core.profile_auc_markdown(rows))
    return SectionResult(text, rows)


def leaderboard(ctx: Context) -> SectionResult:
    """Wall-clock time of the whole census leaderboard and of the synthetic sweep, trained by the
    trainer itself (``python -m replication train``, as ``dvc repro``'s train stages run it), with a
    params.yaml profile (``--leaderboard-profile``, e.g. ``paper``) and ``--leaderboard-set``
    overrides. Meant for a GPU: on this project's 2-core CPU it takes hours."""
    import yaml

    from replication.records import load_records
    from replication.config import apply_profile, load_params, section

    args = ctx.args
    params = load_params(args.params)
    if args.leaderboard_profile:
        params = apply_profile(params, args.leaderboard_profile)
    seeds = args.leaderboard_seeds or str(params["seeds"])
    synthetic = section(params, "synthetic")
    correlations = args.sweep_correlations or list(synthetic["correlations"])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-leaderboard-") as tmp:
        params_file = Path(tmp) / "params.yaml"
        params_file.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        settings = [arg for pair in args.leaderboard_set for arg in ("--set", pair)]

        def train(data: Path, model: str, part: str, correlation: float | None, extra: list[str]) -> None:
            runs = Path(tmp) / "runs" / str(len(rows))  # one folder per command, holding its model's folder
            command = [sys.executable, "-m", "replication", "train", "--data", str(data), "--model", model,
                       "--seeds", seeds, "--params", str(params_file), "--out", str(runs / model), "--no-checkpoints",
                       *extra, *settings]
            label = f"{part}{'' if correlation is None else f' p={correlation}'} {model}"
            seconds = run_command(ctx, command, label)
            rows.append(core.leaderboard_row(part, model, correlation, seconds, load_records(runs)))

        if "census" in args.leaderboard_parts:
            for model in args.leaderboard_models:
                train(args.data, model, "census", None, [])
        if "sweep" in args.leaderboard_parts:
            for p in correlations:
                data = Path(tmp) / "synthetic" / f"p{p}"
                generate = [sys.executable, "-m", "replication", "synth", "--correlation", str(p),
                            "--n", str(synthetic["rows"]), "--dim", str(synthetic["dim"]), "--scale", str(synthetic["scale"]),
                            "--n-sines", str(synthetic["n_sines"]), "--noise-std", str(synthetic["noise_std"]),
                            "--seed", str(synthetic["seed"]),
                            "--validation-fraction", str(synthetic["validation_fraction"]),
                            "--test-fraction", str(synthetic["test_fraction"]), "--out", str(data)]
                rows.append(core.leaderboard_row("sweep data", "", p, run_command(ctx, generate, f"synthetic data p={p}"), []))
                for model in synthetic["models"]:
                    train(data, model, "sweep", p, ["--profile", "synthetic"])
                shutil.rmtree(data)  # at the papers' sizes each correlation's data is 2.9 GB
    overrides = ", ".join(f"`{pair}`" for pair in args.leaderboard_set) or "none"
    text = (
        "## The leaderboard's time: every model trained to selection\n\n"
        f"Wall-clock seconds of `python -m replication train` (as `dvc repro`'s train stages run it: seeds {seeds}, "
        f"validation selecting each seed's epoch, test predictions written), per model; params.yaml"
        f"{f' with profiles.{args.leaderboard_profile}' if args.leaderboard_profile else ''}, overrides: {overrides}. "
        f"The census leaderboard uses the processed census data; the sweep generates each correlation's synthetic data "
        f"({synthetic['rows']} rows, d = {synthetic['dim']}, timed as its own row) and trains "
        f"{', '.join(synthetic['models'])} with the `synthetic` profile. Device: as the run records name it. Seconds "
        f"include starting Python and loading the data; training seconds are the records' own (training, validation "
        f"and test prediction), summed over seeds.\n\n" + core.leaderboard_markdown(rows))
    return SectionResult(text, rows)


# The report's sections, in order; the default ones run unless --sections names others.
SECTIONS: tuple[Section, ...] = (Section("peers", peer_comparison), Section("profile_auc", profile_auc),
                                 Section("scaling", scaling), Section("together", together),
                                 Section("weighting", weighting_cost),
                                 Section("leaderboard", leaderboard, default=False))


# ---------------------------------------------------------------------------------------------------
# The report


def machine_description() -> dict[str, Any]:
    """replication.provenance.environment() plus the CPU model, memory and the peers' versions."""
    from importlib import metadata

    from replication.provenance import environment
    from replication.training.config import cpu_cores

    env = environment("cpu")
    cpu = platform.processor() or platform.machine()
    memory = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
        memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    versions = dict(env["versions"])
    for name in (core.TORCH_RECHUB, core.DEEPCTR_TORCH, "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {**env, "versions": versions, "cpu": cpu, "cores": cpu_cores(), "memory": memory}


def report(sections: Sequence[tuple[str, SectionResult]], machine: Mapping[str, Any], started: str,
           load: tuple[tuple[float, ...], tuple[float, ...]], seconds: float) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    head = (
        "# Benchmark: this project's trainer against torch-rechub and deepctr-torch\n\n"
        f"Generated by `make bench` (`python -m benchmarks.bench`) on {started}; the protocol and caveats are in "
        f"[`benchmarks/README.md`](../README.md).\n\n"
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']} memory; {machine['platform']}; "
        f"host {machine['host']}\n"
        f"- Software: {versions}\n"
        f"- Commit: {machine['git_commit']}\n"
        f"- Load average (1, 5, 15 min) at the start: {', '.join(f'{v:.2f}' for v in load[0])}; at the end: "
        f"{', '.join(f'{v:.2f}' for v in load[1])}. The bench took {seconds:.0f} s.\n")
    return head + "".join("\n" + result.markdown for _, result in sections)


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=core.csv_columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------
# Command line


def parse_counts(text: str) -> list[int]:
    """``1,4,10`` -> [1, 4, 10]: positive integers."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: use positive integers, comma-separated")
    return [int(part) for part in parts]


def parse_rows(text: str) -> list[int]:
    """``50000,100000,all`` -> [50000, 100000, 0] (0: the whole training split)."""
    out = []
    for part in text.split(","):
        part = part.strip().replace("_", "")
        if part == "all":
            out.append(0)
        elif part.isdigit() and int(part) > 0:
            out.append(int(part))
        else:
            raise argparse.ArgumentTypeError(f"{text!r}: use positive row counts and 'all', comma-separated")
    return out


def parse_floats(text: str) -> list[float]:
    """``0.5,0.9`` -> [0.5, 0.9]."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use numbers, comma-separated") from None


def parse_names(text: str) -> list[str]:
    """``default,fast`` -> ["default", "fast"]: non-empty names, duplicates dropped."""
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one name, comma-separated")
    return names


def parse_choice(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [p.strip() for p in text.split(",") if p.strip()]
        unknown = [p for p in items if p not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(allowed)}")
        return items
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", type=parse_choice([s.name for s in SECTIONS]),
                   default=[s.name for s in SECTIONS if s.default],
                   help=f"comma-separated (default: {','.join(s.name for s in SECTIONS if s.default)}; 'leaderboard', "
                        f"the whole leaderboard's time, only when named)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="processed census folder (dvc repro prepare)")
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where bench.md and bench.csv are written")
    p.add_argument("--models", type=parse_choice(list(core.MODELS)), default=list(core.MODELS))
    p.add_argument("--libraries", type=parse_choice(list(core.LIBRARIES)), default=list(core.LIBRARIES))
    p.add_argument("--project-profiles", type=parse_names, default=None,
                   help="this project's runs in the peers section: 'default' (params.yaml as it is) and params.yaml "
                        "profiles (profiles.NAME), comma-separated (default: default,fast; default alone on a CPU "
                        "without bfloat16 instructions, where the fast profile's bf16 is emulated)")
    p.add_argument("--processes", type=int, default=3,
                   help="separate processes timing each row of the peers section (the first also trains to selection); "
                        "the row's time is the median of their medians")
    p.add_argument("--reference-runs", type=Path, default=DEFAULT_RUNS,
                   help="the default run records the profile_auc section compares with (one folder per model)")
    p.add_argument("--profile-seeds", default="0-9", help="seeds of each profile's runs in the profile_auc section")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--timed-epochs", type=int, default=5, help=f"at least {core.MIN_TIMED_EPOCHS}; the median is reported")
    p.add_argument("--threads", type=int, default=2, help="torch threads in every measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-other-cores", type=float, default=0.25,
                   help="repeat a measurement during which other processes kept more cores than this busy")
    p.add_argument("--retries", type=int, default=2, help="how often such a measurement is repeated at most")
    p.add_argument("--scaling-models", type=parse_choice(["mmoe", "ple"]), default=["mmoe", "ple"])
    p.add_argument("--census-rows", type=parse_rows, default=[50_000, 100_000, 0],
                   help="census training rows for the scaling section ('all' = the whole split)")
    p.add_argument("--synthetic-rows", type=int, default=1_400_000, help="synthetic training rows (0: none)")
    p.add_argument("--synthetic-dim", type=int, default=100)
    p.add_argument("--together", type=parse_counts, default=[1, 4, 10],
                   help="seeds trained together, comma-separated (1: a lone run)")
    p.add_argument("--together-threads", type=int, default=1, help="torch threads of each seeds-together measurement")
    p.add_argument("--lone-processes", type=int, default=3,
                   help="separate processes measuring each model's lone run in the seeds-together section")
    p.add_argument("--together-models", type=parse_choice(list_models()), default=list_models(),
                   help="models of the seeds-together section (default: every registered model)")
    p.add_argument("--weighting-models", type=parse_choice(list(core.MODELS)), default=["mmoe", "ple"],
                   help="models of the weighting section")
    p.add_argument("--weighting-methods", type=parse_names, default=None,
                   help="loss weighting methods of the weighting section, besides static (default: every one in "
                        "replication/weighting/)")
    p.add_argument("--leaderboard-parts", type=parse_choice(["census", "sweep"]), default=["census", "sweep"],
                   help="what the leaderboard section trains: the census leaderboard, the synthetic sweep, or both")
    p.add_argument("--leaderboard-models", type=parse_choice(list_models()), default=list_models(),
                   help="census models of the leaderboard section (default: every registered model)")
    p.add_argument("--leaderboard-seeds", default=None, help="seeds of the leaderboard section (default: params.yaml's)")
    p.add_argument("--leaderboard-profile", default=None,
                   help="params.yaml profile the leaderboard section trains with (e.g. paper: its sizes, ensembles of 10)")
    p.add_argument("--leaderboard-set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override passed to every training command of the leaderboard section (repeatable)")
    p.add_argument("--sweep-correlations", type=parse_floats, default=None,
                   help="correlations of the leaderboard section's sweep (default: params.yaml's synthetic.correlations)")
    p.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.job is not None:  # a measurement subprocess
        from replication.io import write_json

        write_json(args.result, run_job(json.loads(args.job.read_text(encoding="utf-8"))))
        return 0
    if (args.timed_epochs < core.MIN_TIMED_EPOCHS or args.warmup_epochs < 0 or args.threads < 1 or args.retries < 0
            or args.max_other_cores < 0 or args.together_threads < 1 or args.lone_processes < 1 or args.processes < 1):
        print(f"need --timed-epochs >= {core.MIN_TIMED_EPOCHS}, --warmup-epochs >= 0, --threads >= 1, --retries >= 0, "
              f"--max-other-cores >= 0, --together-threads >= 1, --lone-processes >= 1 and --processes >= 1", file=sys.stderr)
        return 2
    if args.weighting_methods:
        from replication.weighting import available_weightings

        unknown = sorted(set(args.weighting_methods) - set(available_weightings()))
        if unknown:
            print(f"--weighting-methods: no method {', '.join(unknown)}; the methods are "
                  f"{', '.join(available_weightings())} (replication/weighting/)", file=sys.stderr)
            return 2
    args.project_profiles = project_profiles(args.project_profiles, args.params)
    if core.PROJECT not in args.libraries:
        args.libraries = [core.PROJECT, *args.libraries]  # every ratio is against this project's run
    try:
        return _run(args)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from replication.data.processed import DataError, data_hash
    from replication.io import write_text

    schema_file = args.data / "schema.json"
    if not schema_file.is_file():
        raise BenchError(f"{args.data} has no processed census data ({schema_file} is missing). Create it with "
                         f"`dvc repro prepare` (or `python -m replication prepare census --raw data/raw/census "
                         f"--out {args.data}`), then run the bench again")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    if data_hash(args.data) != schema["data_hash"]:
        raise BenchError(str(DataError(f"the arrays in {args.data} do not match the hash in its schema.json; "
                                       f"run `dvc repro prepare` again")))
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start, clock = os.getloadavg(), time.perf_counter()
    ctx = Context(args, schema)
    if load_start[0] >= BUSY_LOAD:
        ctx.log(f"warning: the load average is {load_start[0]:.2f}: other processes share the cores, so the epoch "
                f"times will be longer and noisier than on an idle machine (bench.md records the load)")
    done = []
    for section in (s for s in SECTIONS if s.name in args.sections):
        ctx.log(f"[{section.name}]")
        done.append((section.name, section.run(ctx)))
    text = report(done, machine_description(), started, (load_start, os.getloadavg()), time.perf_counter() - clock)
    write_text(args.out / "bench.md", text)
    write_text(args.out / "bench.csv", csv_text([row for _, result in done for row in result.rows]))
    print("\n" + text, end="")
    print(f"\nwritten: {args.out / 'bench.md'}, {args.out / 'bench.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
