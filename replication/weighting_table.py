"""The loss weighting table and figure (``python -m replication weighting-table``): every (model,
weighting) entry of one protocol, against Single-Task and against the same model under equal
weights, with the cost of each method per epoch.

- Gains are PLE's MTL gain (Eq. 11) paired by seed, with 95% t intervals, as every table of this
  project computes them (:func:`replication.compare.compare_to_reference`). Two families, each
  Holm-corrected over all its (entry, task) comparisons: against Single-Task, and against the same
  model with equal weights (only entries of a method other than equal weights).
- Cost: each run's median training seconds per epoch (its history's ``train_seconds``), the median
  over an entry's seeds, and its ratio to the same model's equal-weights entry. Runs trained before
  records kept per-epoch seconds have none: the cell is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication.compare import ALPHA, compare_to_reference, per_model
from replication.config import ConfigError
from replication.figures import model_style, ordered_models
from replication.io import write_together
from replication.leaderboard import by_protocol, entry_scores, load_runs, reference_entry
from replication.protocol import loss_weighting
from replication.report.writer import figure_bytes
from replication.stats import holm

EQUAL = "equal"
FAMILIES = {"single_task": "against Single-Task", "equal": "against equal weights"}


def epoch_seconds(record: dict) -> float:
    """The median training seconds per epoch of one run (NaN where its history has none)."""
    seconds = [h["train_seconds"] for h in record.get("history", []) if "train_seconds" in h]
    return float(np.median(seconds)) if seconds else np.nan


def _family(scores: pd.DataFrame, pairs: Sequence[tuple[str, str]], family: str) -> pd.DataFrame:
    """Each (entry, reference) pair compared by seed, then Holm over the whole family."""
    parts = [compare_to_reference(scores[scores["model"].isin(pair)], pair[1]) for pair in pairs]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["model", "task", "reference", "gain", "gain_low", "gain_high", "t_pvalue"])
    table["pvalue_holm"] = holm(table["t_pvalue"].to_numpy(dtype=float)) if len(table) else []
    table["significant"] = table["pvalue_holm"] < ALPHA
    table["family"] = family
    return table


def weighting_table(records: list[dict], reference: str = "single_task") -> pd.DataFrame:
    """One row per (model, weighting, task): test metric mean ± std over seeds, gain against the
    reference and against the model's equal weights (95% CI, Holm p, significance), and cost."""
    protocols = by_protocol(records)
    if len(protocols) != 1:
        raise ConfigError(f"the weighting table compares runs of one protocol; these runs have {len(protocols)} "
                          f"({', '.join(protocols)}): pass one data set's runs")
    scores = entry_scores(records)
    entries = scores.drop_duplicates("model")[["model", "entry_model", "entry_weighting"]]
    ref = reference_entry(records, reference)
    names = set(entries["model"])
    against_ref = [(e, ref) for e in entries["model"] if e != ref]
    against_equal = [(e, f"{m} | {EQUAL}") for e, m, w in entries.itertuples(index=False)
                     if w != EQUAL and f"{m} | {EQUAL}" in names]
    comparisons = {"single_task": _family(scores, against_ref, FAMILIES["single_task"]),
                   "equal": _family(scores, against_equal, FAMILIES["equal"])}
    table = per_model(scores)[["model", "task", "metric", "n_seeds", "seeds", "mean", "std"]]
    for key, comparison in comparisons.items():
        cols = comparison[["model", "task", "gain", "gain_low", "gain_high", "pvalue_holm", "significant"]]
        table = table.merge(cols.rename(columns={c: f"{c}_vs_{key}" for c in cols.columns[2:]}),
                            on=["model", "task"], how="left")
    cost = pd.DataFrame([{"model": f"{r['model']} | {loss_weighting(r)}", "seconds": epoch_seconds(r)} for r in records])
    cost = cost.groupby("model")["seconds"].median().rename("epoch_seconds").reset_index()
    table = table.merge(cost, on="model", how="left")
    table = table.merge(entries, on="model", how="left")
    equal_cost = table[table["entry_weighting"] == EQUAL].drop_duplicates("entry_model").set_index("entry_model")[
        "epoch_seconds"]
    table["cost_vs_equal"] = table["epoch_seconds"] / table["entry_model"].map(equal_cost)
    table = table.drop(columns="model").rename(columns={"entry_model": "model", "entry_weighting": "weighting"})
    order = {m: i for i, m in enumerate(ordered_models(list(dict.fromkeys(table["model"]))))}
    table["_m"] = table["model"].map(order)
    table["_w"] = table["weighting"].map(lambda w: (w != EQUAL, w))
    table = table.sort_values(["_m", "_w", "task"], kind="stable").drop(columns=["_m", "_w"])
    first = ["model", "weighting"]
    return table[first + [c for c in table.columns if c not in first]].reset_index(drop=True)


def _gain(row: pd.Series, key: str) -> str:
    gain = row[f"gain_vs_{key}"]
    if pd.isna(gain):
        return ""
    star = "*" if bool(row[f"significant_vs_{key}"]) else ""
    return f"{gain:+.4f}{star} [{row[f'gain_low_vs_{key}']:+.4f}, {row[f'gain_high_vs_{key}']:+.4f}]"


def to_markdown(table: pd.DataFrame, records: list[dict], reference: str) -> str:
    seeds = sorted({int(n) for n in table["n_seeds"]})
    lines = ["# Loss weighting: every method against Single-Task and against equal weights", "",
             "Generated by `python -m replication weighting-table` from run records; do not edit. Test metric mean "
             f"± sample std over seeds ({', '.join(map(str, seeds))} per cell: the CPU grid trains fewer seeds per "
             "method than the reference runs have; pairs are the seeds both share). Gain: PLE's MTL gain (Eq. 11) "
             f"paired by seed with its 95% t interval, against {reference} and against the same model with equal "
             "weights; `*`: significant at 0.05 after Holm's correction within each of the two families (every "
             "comparison of this table against the one reference). Cost: median training seconds per epoch, and "
             "its ratio to the same model's equal weights (the runs' records; empty where they kept no per-epoch "
             "time).", ""]
    tasks = list(dict.fromkeys(table["task"]))
    head = ["model", "weighting", "seeds"]
    for t in tasks:
        head += [f"{t} {table.loc[table['task'] == t, 'metric'].iat[0]}", f"{t} gain vs {reference}",
                 f"{t} gain vs equal"]
    head += ["s / epoch", "cost vs equal"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, weighting), rows in table.groupby(["model", "weighting"], sort=False):
        rows = rows.set_index("task")
        cells = [model, weighting, str(int(rows["n_seeds"].min()))]
        for t in tasks:
            row = rows.loc[t]
            std = "" if pd.isna(row["std"]) else f" ± {row['std']:.4f}"
            cells += [f"{row['mean']:.4f}{std}", _gain(row, "single_task"), _gain(row, "equal")]
        seconds, cost = rows["epoch_seconds"].iat[0], rows["cost_vs_equal"].iat[0]
        cells += ["" if pd.isna(seconds) else f"{seconds:.2f}", "" if pd.isna(cost) else f"{cost:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gain_figure(table: pd.DataFrame) -> Figure:
    """Per task a panel: each method's gain against the same model's equal weights (95% CI), one
    colour and marker per model; the zero line is equal weights."""
    rows = table[table["weighting"] != EQUAL].dropna(subset=["gain_vs_equal"])
    tasks = list(dict.fromkeys(table["task"]))
    methods = sorted(set(rows["weighting"]))
    models = ordered_models(list(dict.fromkeys(rows["model"])))
    figure = Figure(figsize=(4.2 * len(tasks), 0.35 * max(len(methods), 3) + 1.4), layout="constrained")
    axes = figure.subplots(1, len(tasks), sharey=True, squeeze=False)[0]
    offsets = np.linspace(-0.25, 0.25, len(models)) if len(models) > 1 else np.zeros(1)
    for ax, task in zip(axes, tasks):
        for model, offset in zip(models, offsets):
            part = rows[(rows["task"] == task) & (rows["model"] == model)].set_index("weighting").reindex(methods)
            y = np.arange(len(methods)) + offset
            style = model_style(model)
            err = np.vstack([part["gain_vs_equal"] - part["gain_low_vs_equal"],
                             part["gain_high_vs_equal"] - part["gain_vs_equal"]])
            ax.errorbar(part["gain_vs_equal"], y, xerr=err, fmt=style.marker, color=style.color, label=model,
                        markersize=4, capsize=2, linewidth=1)
        ax.axvline(0, color="0.4", linewidth=0.8)
        ax.set_title(task)
        ax.set_xlabel("MTL gain against equal weights (95% CI)")
        ax.set_yticks(np.arange(len(methods)), methods)
    axes[0].invert_yaxis()
    axes[-1].legend(loc="best", fontsize="small")
    return figure


def write_weighting_table(runs: Sequence[Path], out: Path, reference: str = "single_task") -> pd.DataFrame:
    """``OUT.csv``, ``OUT.md`` and the figure ``OUT.png``/``.pdf``, written as one set."""
    records = load_runs(runs)
    table = weighting_table(records, reference)
    figure = gain_figure(table)
    out = Path(out)
    write_together({out.with_suffix(".csv"): table.to_csv(index=False, float_format="%.6g"),
                    out.with_suffix(".md"): to_markdown(table, records, reference),
                    out.with_suffix(".png"): figure_bytes(figure, "png"),
                    out.with_suffix(".pdf"): figure_bytes(figure, "pdf")})
    return table
