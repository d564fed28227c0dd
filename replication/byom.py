"""Bring your own model: check it, train it under the benchmark's protocol, rank it against the cached
runs of the models already trained (which are read, never retrained).

``python -m replication compare --model PATH.py:ClassName`` (or ``package.module:ClassName``) runs
:func:`compare_model`. Everything that can be refused is refused before any output is written: the
data folder, the output folder, the cached runs, their protocol (it must equal the protocol hash the
new runs will have, :func:`replication.protocol.protocol_hash`) and the model's contract on the real
data (:func:`replication.contract.check_contract`). Then the model is trained over the seeds with
:func:`replication.train.train_model`, into ``OUT/runs/<name>/``, and ``OUT`` gets its leaderboard row
(``leaderboard_row.csv``), its comparison with every cached model (``comparisons.csv``: gain per task
paired by seed, paired t-test, Holm over that family, unpaired seeds) and ``summary.md``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from models.registry import ModelError
from replication.config import ConfigError
from replication.data.processed import Processed, load_processed
from replication.data.validate import check_processed
from replication.io import write_together
from replication.leaderboard import (
    REFERENCE, by_protocol, compare_with_every_model, markdown_table, protocol_header, protocol_rows,
    reference_entry, tasks_of, unpaired_notes,
)
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.progress import log
from replication.protocol import protocol_differences, protocol_hash
from replication.records import load_records
from replication.train import RECORD_FORMAT, TrainConfig, train_model

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


def planned_record(data: Processed, cfg: TrainConfig) -> dict[str, Any]:
    """The protocol fields a run of ``cfg`` on ``data`` will record (as :func:`replication.train.train_seed`
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


def _run_folders(runs: Sequence[Path] | None) -> list[Path]:
    if runs:
        return [Path(r) for r in runs]
    found = [r for r in DEFAULT_RUNS if r.is_dir()]
    if not found:
        raise ConfigError(f"no cached runs to compare with: none of {', '.join(map(str, DEFAULT_RUNS))} exists; "
                          f"run `dvc repro` first, or pass --runs with folders of run records")
    return found


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
                  reference: str = REFERENCE) -> ComparisonResult:
    """Check, train and rank model ``name`` (a :class:`models.registry.ModelSpec`); see the module docstring."""
    data = _load_data(Path(data_dir))
    out = Path(out) if out is not None else DEFAULT_OUT / name
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"output folder {out} is not empty; delete it or pass another --out (compare never mixes "
                          f"the runs of two invocations)")
    folders = _run_folders(runs)
    cached = load_records(folders)
    if name in {r["model"] for r in cached}:
        raise ConfigError(f"the cached runs already hold a model named {name!r} "
                          f"({next(r['source'] for r in cached if r['model'] == name)}); set model_name = \"...\" "
                          f"on your class to give it another name")
    planned = planned_record(data, cfg)
    _check_protocol(planned, cached, name)
    reference_entry(cached, reference)  # refuses cached runs without the reference

    started = time.perf_counter()
    existed = out.exists()
    try:
        records = train_model(name, hparams, data, cfg, seeds, out / "runs" / name)  # checks the contract first
        failed = [r for r in records if r["status"] != "ok"]
        if failed:
            raise ModelError("; ".join(f"{name} seed {r['seed']}: {r['failure']['reason']} in epoch {r['failure']['epoch']}"
                                       for r in failed) + "; nothing was written. Lower train.lr (--set train.lr=...) "
                             "or check the model for operations that overflow")
    except BaseException:
        shutil.rmtree(out / "runs" if existed else out, ignore_errors=True)  # out was empty: leave no half set of runs
        raise
    seconds = time.perf_counter() - started
    records = load_records([out / "runs", *folders])
    stray = {protocol_hash(r) for r in records if r["model"] == name} - {protocol_hash(planned)}
    if stray:
        raise RuntimeError(f"the new runs have protocol hash(es) {sorted(stray)}, not the planned "
                           f"{protocol_hash(planned)}: planned_record no longer matches what train_seed records")

    table = protocol_rows(records, reference)
    row = table[table["model"] == name]
    comparisons = compare_with_every_model(records, name)
    tasks = tasks_of(records[0])
    printed = "\n".join(markdown_table(row, tasks) + [""] + comparisons_markdown(comparisons)) + "\n"
    summary = summary_markdown(name, table, comparisons, records, reference, seeds, seconds)
    write_together({out / "leaderboard_row.csv": row.to_csv(index=False, float_format="%.6g"),
                    out / "comparisons.csv": comparisons.to_csv(index=False, float_format="%.6g"),
                    out / "summary.md": summary})
    log(f"{name}: {len(seeds)} seeds trained in {seconds:.0f} s; wrote {out}/leaderboard_row.csv, comparisons.csv, "
        f"summary.md")
    return ComparisonResult(row, comparisons, printed, out, seconds)


def comparisons_markdown(comparisons: pd.DataFrame) -> list[str]:
    lines = ["| model | against | loss weighting | task | pairs | unpaired seeds | gain [95% CI] | t p (Holm) | "
             "P(improve) | significant |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in comparisons.to_dict("records"):
        gain = "" if pd.isna(r["gain"]) else f"{r['gain']:+.4f} [{r['gain_low']:+.4f}, {r['gain_high']:+.4f}]"
        p = "" if pd.isna(r["t_pvalue_holm"]) else f"{r['t_pvalue_holm']:.3g}"
        improve = "" if pd.isna(r["probability_of_improvement"]) else f"{r['probability_of_improvement']:.2f}"
        lines.append(f"| {r['model']} | {r['reference']} | {r['reference_loss_weighting']} | {r['task']} | "
                     f"{r['n_pairs']} | {r['unpaired_seeds']} | {gain} | {p} | {improve} | "
                     f"{'yes' if r['significant'] else 'no'} |")
    return lines


def summary_markdown(name: str, table: pd.DataFrame, comparisons: pd.DataFrame, records: list[dict],
                     reference: str, seeds: list[int], seconds: float) -> str:
    new = next(r for r in records if r["model"] == name)
    lines = [
        f"# {name} against the cached runs",
        "",
        f"Generated by `python -m replication compare`; do not edit. {name} was trained over seeds "
        f"{' '.join(map(str, seeds))} in {seconds:.0f} s (wall) under the protocol of the cached runs, which "
        f"were read, not retrained. The whole leaderboard of this protocol, {name} in bold (gain against "
        f"{reference}, `*` = significant after Holm over the section's comparisons; rank by Δm):",
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
        f"lacks are unpaired and left out of that comparison.",
        "",
        *comparisons_markdown(comparisons),
    ]
    return "\n".join(lines) + "\n"
