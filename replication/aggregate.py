"""Aggregate run records into the results table: test metrics over seeds, beside the paper's values.

Reads ``RUNS/<model>/seed_*.json``; writes ``OUT.csv`` (tidy, one row per model and task) and
``OUT.md``. Records of different processed data (hash) or split seed are never put in one table.
The papers' printed numbers come only from ``paper_values.yaml`` and sit in columns of their own.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import yaml

from replication.compare import (
    ALPHA, compare_to_reference, delong_by_seed, delong_summary, delta_m_by_model, per_model,
)
from replication.config import ConfigError
from replication.io import write_together
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.protocol import protocol_differences, protocol_hash
from replication.records import failed_runs, failure_note, finished_runs, load_all_records, load_records  # noqa: F401 (also imported from here)

PROTOCOL_KEYS = ("dataset", "task_group", "split_seed", "data_hash")
# Rounding slack when checking a printed gain against the printed metrics (4 printed decimals).
PRINTED_ROUNDING = 0.00015


def check_protocol(records: list[dict]) -> dict:
    """The data protocol all records share (:data:`PROTOCOL_KEYS`); records of more than one
    protocol hash (:mod:`replication.protocol`: data, tasks and training configuration) are refused,
    with what differs between them."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(protocol_hash(r), []).append(r)
    if len(groups) > 1:
        listing = "; ".join(f"{h} ({', '.join(sorted({r['model'] for r in g}))})" for h, g in sorted(groups.items()))
        (_, first), (_, second) = sorted(groups.items())[:2]
        raise ConfigError(f"run records of different protocols cannot share a table: {listing}. The first two differ "
                          f"in: {'; '.join(protocol_differences(first[0], second[0]))}. Train them alike or table "
                          f"them apart (`leaderboard` gives each protocol a table of its own)")
    return {k: records[0][k] for k in PROTOCOL_KEYS}


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


def summarize(runs: pd.DataFrame, reference: str, expected_seeds: Sequence[int] = ()) -> pd.DataFrame:
    """Mean, std and seeds per model and task, joined with the comparison against ``reference``:
    MTL gain (PLE Eq. 11) paired by seed with its 95% CI, Holm-adjusted p-value and significance.
    ``missing_seeds`` lists the ``expected_seeds`` a model has no finished run for."""
    if reference not in set(runs["model"]):
        raise ConfigError(f"reference model {reference!r} has no runs; found {sorted(set(runs['model']))}")
    keys = ["model", "task", "metric", "higher_is_better"]
    summary = runs.groupby(keys, sort=False).agg(
        n_seeds=("seed", "size"), seeds=("seed", lambda s: " ".join(map(str, sorted(s)))),
        mean=("value", "mean"), std=("value", lambda v: v.std(ddof=1) if len(v) > 1 else np.nan),
        n_parameters=("n_parameters", "first"), mean_best_epoch=("epochs", "mean"),
    ).reset_index()
    summary["missing_seeds"] = [" ".join(map(str, sorted(set(expected_seeds) - set(map(int, seeds.split())))))
                                for seeds in summary["seeds"]]
    comparisons = compare_to_reference(runs, reference)
    columns = ["model", "task", "n_pairs", "gain", "gain_low", "gain_high", "t_pvalue_holm", "significant"]
    summary = summary.merge(comparisons.reindex(columns=columns), on=["model", "task"], how="left")
    summary = summary.rename(columns={"gain": "mtl_gain", "gain_low": "mtl_gain_low", "gain_high": "mtl_gain_high",
                                      "t_pvalue_holm": "pvalue_holm"})
    summary["significant"] = summary["significant"].astype("boolean").fillna(False).astype(bool)
    summary = summary.merge(delta_m_by_model(runs, reference)[["model", "delta_m_percent"]], on="model")
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


def to_markdown(table: pd.DataFrame, protocol: dict, reference: str, failures: Sequence[dict] = ()) -> str:
    _, sources = paper_values()
    lines = [
        f"# {protocol['dataset']}, task group {protocol['task_group']}: test metrics over seeds",
        "",
        f"Generated by `python -m replication aggregate` from run records; do not edit. "
        f"Split seed {protocol['split_seed']}, processed data {protocol['data_hash'][:12]}. "
        f"Model selection on validation only. Mean ± sample std over seeds. MTL gain (PLE Eq. 11; "
        f"positive is better) against {reference}, paired by seed, with its 95% t interval; "
        f"`*` = significant at {ALPHA} after Holm's correction over every (model, task) comparison "
        f"(paired t-test over seeds; p (Holm) is the adjusted p-value). DeLong: seeds whose test AUC "
        f"differs from {reference}'s on the same rows at p < {ALPHA} (per seed, uncorrected), of seeds tested.",
        "",
    ]
    paper_cols = [c for c in table.columns if c.startswith("paper_") and c != "paper_note"]
    header = ["model", "task", "metric", "seeds", "mean ± std", "MTL gain [95% CI]", "p (Holm)", "DeLong",
              "params"] + [c.removeprefix("paper_") + " (paper)" for c in paper_cols]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        cells = [
            str(row.model), row.task, row.metric,
            f"{row.n_seeds} (missing {row.missing_seeds.replace(' ', ', ')})" if row.missing_seeds else str(row.n_seeds),
            f"{row.mean:.4f} ± {row.std:.4f}" if not np.isnan(row.std) else f"{row.mean:.4f}",
            _gaincell(row), cell(row.pvalue_holm, "{:.3g}"),
            f"{row.delong_significant_seeds}/{row.delong_seeds}" if row.delong_seeds else "",
            f"{row.n_parameters:,}",
        ] + [cell(getattr(row, c), "{:+.4f}" if c.endswith("mtl_gain") else "{:.4f}") + (
            " (!)" if row.paper_note and c.endswith("mtl_gain") else "") for c in paper_cols]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [n for n in table["paper_note"] if n]
    if notes:
        lines += ["", *[f"(!) {n}." for n in notes]]
    if failures:
        lines += ["", "Failed runs, left out of every statistic (their seeds are shown as missing): " + "; ".join(
            failure_note(r) for r in sorted(failures, key=lambda r: (r["model"], r["seed"]))) + "."]
    delta = table.drop_duplicates("model")[["model", "delta_m_percent"]]
    lines += ["", f"Δm (Maninis et al. 2019: mean over tasks of the signed relative change against {reference}):", ""]
    lines += ["| model | Δm (%) |", "|---|---|"]
    lines += [f"| {r.model} | {r.delta_m_percent:+.3f} |" for r in delta.itertuples(index=False)]
    used = sorted(s for s in sources if any(c.startswith(f"paper_{s}_") for c in paper_cols))
    lines += ["", "Paper columns (printed values, never ours):"]
    lines += [f"- {s}: {sources[s]['citation']} DOI {sources[s]['doi']}" for s in used]
    return "\n".join(lines) + "\n"


def _gaincell(row) -> str:
    if np.isnan(row.mtl_gain):
        return ""
    interval = "" if np.isnan(row.mtl_gain_low) else f" [{row.mtl_gain_low:+.4f}, {row.mtl_gain_high:+.4f}]"
    return f"{row.mtl_gain:+.4f}{interval}{'*' if row.significant else ''}"


def cell(value: float | None, fmt: str) -> str:
    """A table cell: ``value`` formatted by ``fmt`` (e.g. ``"{:.4f}"``), empty when missing (None or NaN)."""
    return "" if value is None or pd.isna(value) else fmt.format(value)


def aggregate(runs: Path | Sequence[Path], out: Path, reference: str = "single_task") -> pd.DataFrame:
    everything = load_all_records(runs)
    records = finished_runs(everything, runs)
    protocol = check_protocol(records)
    summary = summarize(tidy(records), reference, expected_seeds=sorted({r["seed"] for r in everything}))
    delong = delong_summary(delong_by_seed(records, reference))
    summary = summary.merge(delong, on=["model", "task"], how="left")
    summary[["delong_seeds", "delong_significant_seeds"]] = (
        summary[["delong_seeds", "delong_significant_seeds"]].fillna(0).astype(int))
    table = attach_paper(summary, protocol["task_group"])
    write_together({out.with_suffix(".csv"): table.to_csv(index=False, float_format="%.6g"),
                    out.with_suffix(".md"): to_markdown(table, protocol, reference, failed_runs(everything)),
                    out.with_suffix(".json"): metrics_json(table)})
    return table


def metrics_json(table: pd.DataFrame) -> str:
    """The table's test metrics as DVC metrics (``dvc metrics show/diff``, ``dvc exp show``):
    ``{model: {task: {metric: mean, "std": ..., "seeds": n, "mtl_gain": ...}}}``, at the CSV's
    precision (6 significant digits), so that a diff shows changes of the results, not of rounding."""
    def number(value) -> float | None:
        return None if pd.isna(value) else float(f"{value:.6g}")

    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for row in table.to_dict("records"):
        out.setdefault(str(row["model"]), {})[row["task"]] = {
            row["metric"]: number(row["mean"]), "std": number(row["std"]), "seeds": int(row["n_seeds"]),
            "mtl_gain": number(row["mtl_gain"])}
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


def write_stats(runs: Path | Sequence[Path], out_dir: Path, references: Sequence[str] = ("single_task",)) -> dict[str, pd.DataFrame]:
    """The statistics layer's full output for one protocol, as tidy CSVs and a Markdown summary:
    ``per_model.csv`` (mean, std, t and bootstrap 95% intervals), ``comparisons.csv`` (paired gain,
    its interval, t and Wilcoxon p-values raw and Holm-adjusted, probability of improvement),
    ``delong.csv`` (per seed), ``delta_m.csv`` and ``summary.md``. Every model is compared with
    each reference in turn (a ``reference`` column); Holm's family is one reference's comparisons."""
    records = load_records(runs)
    protocol = check_protocol(records)
    scores = tidy(records)
    missing = [r for r in references if r not in set(scores["model"])]
    if missing:
        raise ConfigError(f"reference model(s) {missing} have no runs; found {sorted(set(scores['model']))}")
    parts = {
        reference: {
            "comparisons": compare_to_reference(scores, reference),
            "delong": delong_by_seed(records, reference),
            "delta_m": delta_m_by_model(scores, reference),
        }
        for reference in references
    }
    tables = {"per_model": per_model(scores)} | {
        name: pd.concat([parts[r][name] for r in references], ignore_index=True)
        for name in ("comparisons", "delong", "delta_m")
    }
    files = {Path(out_dir) / f"{name}.csv": table.to_csv(index=False, float_format="%.6g")
             for name, table in tables.items()}
    files[Path(out_dir) / "summary.md"] = "\n".join(stats_markdown(parts[r], protocol, r) for r in references)
    write_together(files)
    return tables


def stats_markdown(tables: dict[str, pd.DataFrame], protocol: dict, reference: str) -> str:
    comparisons = tables["comparisons"].merge(delong_summary(tables["delong"]), on=["model", "task"], how="left")
    lines = [
        f"# Statistics: {protocol['dataset']}, {protocol['task_group']}, against {reference}",
        "",
        "Generated by `python -m replication stats`; do not edit. Paired by seed (same split seed "
        f"{protocol['split_seed']} and data {protocol['data_hash'][:12]}). Holm's correction over all "
        f"{len(comparisons)} (model, task) comparisons; significant = Holm-adjusted paired t-test p < {ALPHA}.",
        "",
        "| model | task | pairs | gain [95% CI] | t p (Holm) | Wilcoxon p (Holm) | min Wilcoxon p | P(improve) | DeLong | significant |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in comparisons.itertuples(index=False):
        delong = "" if pd.isna(r.delong_seeds) else f"{int(r.delong_significant_seeds)}/{int(r.delong_seeds)}"
        lines.append(
            f"| {r.model} | {r.task} | {r.n_pairs} | {r.gain:+.4f} [{r.gain_low:+.4f}, {r.gain_high:+.4f}] | "
            f"{r.t_pvalue_holm:.3g} | {r.wilcoxon_pvalue_holm:.3g} | {r.wilcoxon_min_pvalue:.3g} | "
            f"{r.probability_of_improvement:.2f} | {delong} | {'yes' if r.significant else 'no'} |"
        )
    notes = sorted({n for n in comparisons["note"].dropna() if n})
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"
