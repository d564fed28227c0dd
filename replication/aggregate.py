"""Aggregate run records into the results table: test metrics over seeds, beside the paper's values.

Reads ``RUNS/<model>/seed_*.json``; writes ``OUT.csv`` (tidy, one row per model and task) and
``OUT.md``. Records of different processed data (hash) or split seed are never put in one table.
The papers' printed numbers come only from ``paper_values.yaml`` and sit in columns of their own.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from replication.config import ConfigError
from replication.io import write_text
from replication.metrics import METRIC_FOR_TASK_TYPE

PROTOCOL_KEYS = ("dataset", "task_group", "split_seed", "data_hash")
# Rounding slack when checking a printed gain against the printed metrics (4 printed decimals).
PRINTED_ROUNDING = 0.00015


def load_records(runs_dir: Path) -> list[dict]:
    files = sorted(Path(runs_dir).glob("*/seed_*.json"))
    if not files:
        raise ConfigError(f"no run records (*/seed_*.json) under {runs_dir}; run `python -m replication train` first")
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def check_protocol(records: list[dict]) -> dict:
    """The protocol all records share; refuses a mix (different data, split or task group)."""
    protocols = {tuple(r[k] for k in PROTOCOL_KEYS) for r in records}
    if len(protocols) > 1:
        listing = "; ".join(", ".join(f"{k}={v}" for k, v in zip(PROTOCOL_KEYS, p)) for p in sorted(protocols))
        raise ConfigError(f"run records from different protocols cannot share a table: {listing}")
    return dict(zip(PROTOCOL_KEYS, protocols.pop()))


def tidy(records: list[dict]) -> pd.DataFrame:
    """One row per (model, seed, task) with the test metric and its direction."""
    rows = []
    for r in records:
        for task in r["tasks"]:
            metric = METRIC_FOR_TASK_TYPE[task["type"]]
            rows.append({
                "model": r["model"], "seed": r["seed"], "task": task["name"], "metric": metric.name,
                "higher_is_better": metric.higher_is_better, "value": r["test"][task["name"]][metric.name],
                "n_parameters": r["n_parameters"], "epochs": r["best_epoch"][task["name"]],
            })
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Mean, std and seeds per model and task, and the MTL gain against ``reference`` (PLE Eq. 11)."""
    if reference not in set(runs["model"]):
        raise ConfigError(f"reference model {reference!r} has no runs; found {sorted(set(runs['model']))}")
    keys = ["model", "task", "metric", "higher_is_better"]
    summary = runs.groupby(keys, sort=False).agg(
        n_seeds=("seed", "size"), seeds=("seed", lambda s: " ".join(map(str, sorted(s)))),
        mean=("value", "mean"), std=("value", lambda v: v.std(ddof=1) if len(v) > 1 else np.nan),
        n_parameters=("n_parameters", "first"), mean_best_epoch=("epochs", "mean"),
    ).reset_index()
    ref = summary[summary["model"] == reference].set_index("task")["mean"]
    sign = np.where(summary["higher_is_better"], 1.0, -1.0)
    summary["mtl_gain"] = sign * (summary["mean"] - summary["task"].map(ref).to_numpy())
    order = [reference] + sorted(set(summary["model"]) - {reference})
    summary["model"] = pd.Categorical(summary["model"], categories=order, ordered=True)
    return summary.sort_values(["model", "task"]).reset_index(drop=True)


def paper_values() -> tuple[pd.DataFrame, dict]:
    """The papers' printed values (tidy) and their sources, from ``paper_values.yaml``."""
    text = resources.files("replication").joinpath("paper_values.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return pd.DataFrame(data["values"], columns=data["columns"]), data["sources"]


def attach_paper(summary: pd.DataFrame, task_group: str) -> pd.DataFrame:
    """Add the papers' columns (``paper_<source>_<statistic>``) and flag printed gains that do not add up."""
    values, _ = paper_values()
    values = values[values["task_group"] == task_group]
    out = summary.copy()
    for (source, statistic), group in values.groupby(["source", "statistic"], sort=False):
        column = group.set_index(["model", "task"])["value"]
        out[f"paper_{source}_{statistic}"] = [column.get((m, t), np.nan) for m, t in zip(out["model"], out["task"])]
    out["paper_note"] = _printed_gain_notes(values, out)
    return out


def _printed_gain_notes(values: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """A note where a printed MTL gain differs from the printed metric minus the printed reference."""
    reported = values[values["statistic"] == "reported"].set_index(["source", "model", "task"])["value"]
    gains = values[values["statistic"] == "mtl_gain"]
    notes = {}
    for g in gains.itertuples():
        ref = reported.get((g.source, "single_task", g.task))
        own = reported.get((g.source, g.model, g.task))
        if ref is not None and own is not None and abs((own - ref) - g.value) > PRINTED_ROUNDING:
            notes[(g.model, g.task)] = (
                f"{g.source}: printed gain {g.value:+.4f} is inconsistent with the printed AUCs "
                f"({own:.4f} - {ref:.4f} = {own - ref:+.4f})"
            )
    return [notes.get((m, t), "") for m, t in zip(rows["model"], rows["task"])]


def to_markdown(table: pd.DataFrame, protocol: dict, reference: str) -> str:
    _, sources = paper_values()
    lines = [
        f"# {protocol['dataset']}, task group {protocol['task_group']}: test metrics over seeds",
        "",
        f"Generated by `python -m replication aggregate` from run records; do not edit. "
        f"Split seed {protocol['split_seed']}, processed data {protocol['data_hash'][:12]}. "
        f"Mean ± sample std over seeds; model selection on validation only. "
        f"MTL gain = mean minus {reference}'s mean (PLE Eq. 11; positive is better).",
        "",
    ]
    paper_cols = [c for c in table.columns if c.startswith("paper_") and c != "paper_note"]
    header = ["model", "task", "metric", "seeds", "mean ± std", "MTL gain", "params"] + [
        c.removeprefix("paper_") + " (paper)" for c in paper_cols
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        cells = [
            str(row.model), row.task, row.metric, str(row.n_seeds),
            f"{row.mean:.4f} ± {row.std:.4f}" if not np.isnan(row.std) else f"{row.mean:.4f}",
            f"{row.mtl_gain:+.4f}", f"{row.n_parameters:,}",
        ] + [_cell(getattr(row, c), c.endswith("mtl_gain")) for c in paper_cols]
        if row.paper_note:
            cells[-1] += " (!)"
        lines.append("| " + " | ".join(cells) + " |")
    notes = [n for n in table["paper_note"] if n]
    if notes:
        lines += ["", *[f"(!) {n}." for n in notes]]
    used = {c.removeprefix("paper_").rsplit("_", 1)[0] for c in paper_cols}
    used = {s for s in sources if any(c.removeprefix("paper_").startswith(s) for c in paper_cols)} or used
    lines += ["", "Paper columns (printed values, never ours):"]
    lines += [f"- {s}: {sources[s]['citation']} DOI {sources[s]['doi']}" for s in sorted(used) if s in sources]
    return "\n".join(lines) + "\n"


def _cell(value: float, signed: bool) -> str:
    if value is None or np.isnan(value):
        return ""
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def aggregate(runs_dir: Path, out: Path, reference: str = "single_task") -> pd.DataFrame:
    records = load_records(runs_dir)
    protocol = check_protocol(records)
    table = attach_paper(summarize(tidy(records), reference), protocol["task_group"])
    write_text(out.with_suffix(".csv"), table.to_csv(index=False, float_format="%.6f"))
    write_text(out.with_suffix(".md"), to_markdown(table, protocol, reference))
    return table
