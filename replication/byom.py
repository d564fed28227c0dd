"""Bring your own model: check it, train it under the benchmark's protocol, rank it against the cached
runs of the models already trained (which are read, never retrained).

``python -m replication compare --model PATH.py:ClassName`` (or ``package.module:ClassName``) runs
:func:`compare_model`. Everything that can be refused is refused before any output is written: the
data folder, the output folder, the cached runs, their protocol (it must equal the protocol hash the
new runs will have, :func:`replication.protocol.protocol_hash`) and the model's contract on the real
data (:func:`replication.contract.check_contract`). Then the model is trained over the seeds with
:func:`replication.runner.train_model`, into ``OUT/runs/<name>/``, and ``OUT`` gets its leaderboard row
(``leaderboard_row.csv``), its comparison with every cached model (``comparisons.csv``: gain per task
paired by seed, paired t-test, Holm over that family, unpaired seeds, DeLong per seed) and ``summary.md``.

The cached runs are the run folders when they exist, else the committed leaderboard snapshot
(:mod:`replication.snapshot`; :func:`references` says which): a fresh clone trains only the new model.
The snapshot holds no predictions, so DeLong is skipped against it and the output says so. A model
given as ``PATH.py:Class`` has its file, class and the file's SHA-256 added to each of its records
(``model_source``), so a leaderboard row traces to the exact code.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from models.registry import ModelError, ModelSpec
from replication.compare import ALPHA, delong_by_seed, delong_summary
from replication.config import ConfigError
from replication.data.processed import Processed, load_processed
from replication.data.validate import check_processed
from replication.io import sha256_file, write_together
from replication.leaderboard import (
    REFERENCE, by_protocol, compare_with_every_model, markdown_table, protocol_header, protocol_rows,
    reference_entry, tasks_of, unpaired_notes,
)
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.progress import log
from replication.protocol import loss_weighting, protocol_differences, protocol_hash
from replication.records import finished_runs, load_records
from replication.snapshot import DEFAULT_SNAPSHOT, check_snapshot, load_snapshot, snapshot_runs
from replication.runner import train_model
from replication.training import RECORD_FORMAT, TrainConfig

DEFAULT_DATA = Path("data/processed/census_income_marital")
DEFAULT_RUNS = (Path("results/runs/census_income_marital"), Path("results/runs/census_income_marital_zoo"))
DEFAULT_OUT = Path("results/compare")


@dataclass(frozen=True)
class ComparisonResult:
    row: pd.DataFrame  # the model's leaderboard row
    comparisons: pd.DataFrame  # the model against every cached model, per task
    markdown: str  # what the command prints: the row and the comparisons
    out: Path
    seconds: float  # wall time of the training
    skipped: list[str]  # tests not run on these references, each with its reason (DeLong on a snapshot)


def planned_record(data: Processed, cfg: TrainConfig) -> dict[str, Any]:
    """The protocol fields a run of ``cfg`` on ``data`` will record (as :func:`replication.training.train_seed`
    writes them), so that its protocol hash is known before training."""
    return {
        "format": RECORD_FORMAT, "dataset": data.schema["dataset"], "task_group": data.schema["task_group"],
        "split_seed": data.schema["split_seed"], "data_hash": data.schema["data_hash"],
        "tasks": [{"name": t.name, "type": t.type} for t in data.tasks],
        "test": {t.name: {METRIC_FOR_TASK_TYPE[t.type].name: None} for t in data.tasks},
        "train": asdict(cfg),
    }


def _load_data(data_dir: Path) -> Processed:
    if not (data_dir / "schema.json").is_file():
        raise ConfigError(f"processed data {data_dir} is missing; run `dvc repro prepare` to create it (or pass "
                          f"--data with a folder written by `python -m replication prepare`)")
    check_processed(data_dir)
    return load_processed(data_dir)


@dataclass(frozen=True)
class References:
    """The cached runs a new model is ranked against: read from run folders, or (on a fresh clone,
    where those DVC outputs are absent) from a snapshot, which holds no predictions."""
    records: list[dict]  # finished runs only
    folders: list[Path]  # run folders read; empty when the records come from the snapshot
    snapshot: Path | None  # the snapshot read, when they do

    def skipped(self) -> list[str]:
        """What cannot be computed on these references, and why; empty for run folders."""
        if self.snapshot is None:
            return []
        return [f"DeLong per seed skipped: the cached runs come from the snapshot {self.snapshot}, which holds no "
                f"test predictions (only per-seed metrics); for it, compare against the run folders (`dvc repro`, "
                f"then --runs)"]


def references(runs: Sequence[Path] | None = None, snapshot: Path | None = None) -> References:
    """The cached runs ``compare`` ranks against. Run folders when given (``runs``) or, by default,
    those of :data:`DEFAULT_RUNS` that exist; else the snapshot (``snapshot``, default
    :data:`replication.snapshot.DEFAULT_SNAPSHOT`). A given ``snapshot`` with no ``runs`` is read even
    where default run folders exist. When run folders are read and the snapshot exists and was taken
    from one of them, it must match them (:func:`replication.snapshot.check_snapshot`): a stale
    snapshot is refused."""
    snapshot_file = Path(snapshot) if snapshot is not None else DEFAULT_SNAPSHOT
    folders = [Path(r) for r in runs] if runs else ([] if snapshot is not None else [r for r in DEFAULT_RUNS if r.is_dir()])
    if folders:
        if snapshot_file.is_file() and snapshot_runs(snapshot_file).resolve() in {f.resolve() for f in folders}:
            check_snapshot(snapshot_file)
        return References(load_records(folders), folders, None)
    if snapshot is None and not snapshot_file.is_file():
        raise ConfigError(f"no cached runs to compare with: none of {', '.join(map(str, DEFAULT_RUNS))} exists and "
                          f"there is no snapshot {snapshot_file}; restore the committed snapshot (`git checkout -- "
                          f"{DEFAULT_SNAPSHOT}`), pass --snapshot, or run `dvc repro` and pass --runs")
    why = "as --snapshot asks" if snapshot is not None else "the run folders are absent"
    log(f"comparing with the snapshot {snapshot_file} ({why})")
    return References(finished_runs(load_snapshot(snapshot_file), snapshot_file), [], snapshot_file)


def model_source(spec: ModelSpec) -> dict[str, str]:
    """The file and class a model given as ``PATH.py:Class`` (or ``package.module:Class``) comes from,
    with the SHA-256 of that file: what traces a record to the exact code that produced it."""
    target, _, class_name = spec.source.rpartition(":")
    found = None if target.endswith(".py") else importlib.util.find_spec(target)
    path = Path(target) if found is None else Path(found.origin)
    return {"file": str(path), "class": class_name, "sha256": sha256_file(path)}


def _check_protocol(planned: dict, cached: list[dict], name: str) -> None:
    """The cached runs must all have the protocol hash the new runs will have."""
    digest = protocol_hash(planned)
    groups = by_protocol(cached)
    other = {h: g for h, g in groups.items() if h != digest}
    if not other:
        return
    lines = []
    for h, group in other.items():
        differences = "; ".join(protocol_differences(group[0], planned))
        lines.append(f"  - protocol {h} ({', '.join(sorted({r['model'] for r in group}))}): differs in {differences}")
    raise ConfigError(
        f"{name} would be trained under protocol {digest}, but cached runs were trained under another "
        f"(cached value vs {name}'s):\n" + "\n".join(lines) + "\ncompare needs the same data and training parameters "
        f"as the cached runs: drop the --set/--params/--data choices that differ, or pass --runs with runs of "
        f"protocol {digest}")


def compare_model(name: str, data_dir: Path, cfg: TrainConfig, hparams: Mapping[str, Any], seeds: list[int],
                  runs: Sequence[Path] | None = None, out: Path | None = None,
                  reference: str = REFERENCE, snapshot: Path | None = None) -> ComparisonResult:
    """Check, train and rank model ``name`` (a :class:`models.registry.ModelSpec`) against the cached
    runs of :func:`references`; see the module docstring."""
    data = _load_data(Path(data_dir))
    out = Path(out) if out is not None else DEFAULT_OUT / name
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"output folder {out} is not empty; delete it or pass another --out (compare never mixes "
                          f"the runs of two invocations)")
    refs = references(runs, snapshot)
    cached = refs.records
    if name in {r["model"] for r in cached}:
        raise ConfigError(f"the cached runs already hold a model named {name!r} "
                          f"({next(r['source'] for r in cached if r['model'] == name)}); set model_name = \"...\" "
                          f"on your class to give it another name")
    planned = planned_record(data, cfg)
    _check_protocol(planned, cached, name)
    reference_entry(cached, reference)  # refuses cached runs without the reference
    source = model_source(name) if isinstance(name, ModelSpec) else None  # the code as imported, before training

    started = time.perf_counter()
    existed = out.exists()
    try:
        records = train_model(name, hparams, data, cfg, seeds, out / "runs" / name,  # checks the contract first
                              record_fields={} if source is None else {"model_source": source})
        failed = [r for r in records if r["status"] != "ok"]
        if failed:
            raise ModelError("; ".join(f"{name} seed {r['seed']}: {r['failure']['reason']} in epoch {r['failure']['epoch']}"
                                       for r in failed) + "; nothing was written. Lower train.lr (--set train.lr=...) "
                             "or check the model for operations that overflow")
    except BaseException:
        shutil.rmtree(out / "runs" if existed else out, ignore_errors=True)  # out was empty: leave no half set of runs
        raise
    seconds = time.perf_counter() - started
    records = load_records(out / "runs") + cached
    stray = {protocol_hash(r) for r in records if r["model"] == name} - {protocol_hash(planned)}
    if stray:
        raise RuntimeError(f"the new runs have protocol hash(es) {sorted(stray)}, not the planned "
                           f"{protocol_hash(planned)}: planned_record no longer matches what train_seed records")

    table = protocol_rows(records, reference)
    row = table[table["model"] == name]
    comparisons = compare_with_every_model(records, name).merge(
        delong_against(records, name), on=["reference", "reference_loss_weighting", "task"], how="left")
    tasks = tasks_of(records[0])
    skipped = refs.skipped()
    printed = "\n".join(markdown_table(row, tasks) + [""] + comparisons_markdown(comparisons)
                        + [f"\n{note}" for note in skipped]) + "\n"
    summary = summary_markdown(name, table, comparisons, records, reference, seeds, seconds, skipped)
    write_together({out / "leaderboard_row.csv": row.to_csv(index=False, float_format="%.6g"),
                    out / "comparisons.csv": comparisons.to_csv(index=False, float_format="%.6g"),
                    out / "summary.md": summary})
    log(f"{name}: {len(seeds)} seeds trained in {seconds:.0f} s; wrote {out}/leaderboard_row.csv, comparisons.csv, "
        f"summary.md")
    return ComparisonResult(row, comparisons, printed, out, seconds, skipped)


def delong_against(records: list[dict], name: str) -> pd.DataFrame:
    """DeLong's test of ``name`` against every other model of equal loss weighting, per seed and binary
    task, on the test predictions saved beside the records (:func:`replication.compare.delong_by_seed`),
    summarised per (reference, task): seeds tested, seeds with p < ALPHA, median p. Records read from a
    snapshot have no predictions and are left out (their rows stay empty)."""
    usable = [r for r in records if "snapshot" not in r and (r["model"] == name or loss_weighting(r) == "equal")]
    summary = delong_summary(delong_by_seed(usable, name))  # its "model" is the other model
    return summary.rename(columns={"model": "reference"}).assign(reference_loss_weighting="equal")


def comparisons_markdown(comparisons: pd.DataFrame) -> list[str]:
    lines = ["| model | against | loss weighting | task | pairs | unpaired seeds | gain [95% CI] | t p (Holm) | "
             "P(improve) | DeLong | significant |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in comparisons.to_dict("records"):
        gain = "" if pd.isna(r["gain"]) else f"{r['gain']:+.4f} [{r['gain_low']:+.4f}, {r['gain_high']:+.4f}]"
        p = "" if pd.isna(r["t_pvalue_holm"]) else f"{r['t_pvalue_holm']:.3g}"
        improve = "" if pd.isna(r["probability_of_improvement"]) else f"{r['probability_of_improvement']:.2f}"
        delong = "" if pd.isna(r["delong_seeds"]) else f"{int(r['delong_significant_seeds'])}/{int(r['delong_seeds'])}"
        lines.append(f"| {r['model']} | {r['reference']} | {r['reference_loss_weighting']} | {r['task']} | "
                     f"{r['n_pairs']} | {r['unpaired_seeds']} | {gain} | {p} | {improve} | {delong} | "
                     f"{'yes' if r['significant'] else 'no'} |")
    return lines


def summary_markdown(name: str, table: pd.DataFrame, comparisons: pd.DataFrame, records: list[dict],
                     reference: str, seeds: list[int], seconds: float, skipped: Sequence[str] = ()) -> str:
    new = next(r for r in records if r["model"] == name)
    source = new.get("model_source")
    cached = sorted({r.get("snapshot", str(Path(r["source"]).parent.parent)) for r in records if r["model"] != name})
    lines = [
        f"# {name} against the cached runs",
        "",
        f"Generated by `python -m replication compare`; do not edit. {name} was trained over seeds "
        f"{' '.join(map(str, seeds))} in {seconds:.0f} s (wall) under the protocol of the cached runs, which "
        f"were read, not retrained. The whole leaderboard of this protocol, {name} in bold (gain against "
        f"{reference}, `*` = significant after Holm over the section's comparisons; rank by Δm). Cached runs: "
        f"{', '.join(cached)}."
        + (f" {name}'s code: class {source['class']} of {source['file']} (SHA-256 `{source['sha256']}`)."
           if source else ""),
        "",
        *protocol_header(new),
        *markdown_table(table, tasks_of(new), mark=name),
    ]
    notes = unpaired_notes(table)
    lines += (["", "Unpaired seeds:", *notes] if notes else [])
    lines += [
        "",
        f"## {name} against every cached model",
        "",
        f"Gain of {name} over each model per task, paired by seed, with its 95% t interval; Holm's correction "
        f"over this family ({len(comparisons)} comparisons, paired t-test); seeds of {name} the other model "
        f"lacks are unpaired and left out of that comparison. DeLong: seeds whose test AUC differs from the "
        f"other model's on the same rows at p < {ALPHA} (per seed, uncorrected), of seeds tested.",
        "",
        *comparisons_markdown(comparisons),
        *[f"\n{note}" for note in skipped],
    ]
    return "\n".join(lines) + "\n"
