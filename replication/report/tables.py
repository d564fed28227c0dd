"""The papers' tables from the checked inputs: PLE Table 5 (census) and MMoE Tables 1-2 (best run), as
numbers (written as CSV) and display strings (written as Markdown and LaTeX by :func:`markdown_table`
and :func:`latex_table`). Arithmetic on the inputs only (means, differences, layout); the statistics
(intervals, tests, Holm) come from the tables read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from replication import figures
from replication.aggregate import cell, check_protocol, paper_values, tidy
from replication.compare import ALPHA
from replication.config import ConfigError
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.report.inputs import TABLE5_PAPER_COLUMNS, metric_of, reference_model, seed_count, tasks_of


@dataclass
class Table:
    """A table as numbers (the CSV) and as display strings (Markdown and LaTeX), with notes below."""

    stem: str
    caption: str
    values: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def wide(rows: pd.DataFrame, columns: Sequence[str], tasks: Sequence[str]) -> pd.DataFrame:
    """One row per model (display order), one ``<task>_<column>`` per task and column."""
    indexed = rows.set_index(["model", "task"])
    models = figures.ordered_models(rows["model"])
    out = {"model": models}
    out |= {f"{task}_{c}": indexed[c].reindex([(m, task) for m in models]).to_numpy() for task in tasks for c in columns}
    return pd.DataFrame(out)


def interval(value: float, low: float, high: float, significant: bool = False) -> str:
    if pd.isna(value):
        return ""
    return f"{value:+.5f} [{low:+.5f}, {high:+.5f}]{'*' if significant else ''}"


def table5(census: pd.DataFrame) -> Table:
    """PLE Table 5 (census part): every model's metric (mean ± std over seeds) and MTL gain with its
    95% interval and significance mark, beside the values PLE prints (labelled "paper")."""
    tasks, metric, reference = tasks_of(census), metric_of(census), reference_model(census)
    paper = [c for c in TABLE5_PAPER_COLUMNS if c in census.columns]
    rows = census.assign(paper_note=census.get("paper_note", pd.Series("", index=census.index)).fillna(""))
    values = wide(rows, ["n_seeds", "mean", "std", "mtl_gain", "mtl_gain_low", "mtl_gain_high", "pvalue_holm",
                         "significant", *paper], tasks)
    notes_by_cell = wide(rows, ["paper_note"], tasks)
    display = pd.DataFrame({"model": [figures.model_style(m).label for m in values["model"]]})
    for task in tasks:
        display[f"{task} {metric}"] = [f"{m:.5f} ± {s:.5f}" for m, s in zip(values[f"{task}_mean"], values[f"{task}_std"])]
        display[f"{task} MTL gain [95% CI]"] = [
            interval(g, lo, hi, sig) for g, lo, hi, sig in zip(values[f"{task}_mtl_gain"], values[f"{task}_mtl_gain_low"],
                                                               values[f"{task}_mtl_gain_high"], values[f"{task}_significant"])]
        for column in paper:
            spec = "{:+.4f}" if column.endswith("mtl_gain") else "{:.4f}"
            flag = [" (!)" if note and column.endswith("mtl_gain") else "" for note in notes_by_cell[f"{task}_paper_note"]]
            display[TABLE5_PAPER_COLUMNS[column].format(task=task, metric=metric)] = [
                cell(v, spec) + f for v, f in zip(values[f"{task}_{column}"], flag)]
    notes = [f"Ours: mean ± sample std of test {metric} over {seed_count(census)} seeds; MTL gain (PLE Eq. 11) "
             f"against {figures.model_style(reference).label}, paired by seed, with its 95% t interval; `*` = "
             f"significant at {ALPHA} after Holm's correction (paired t-test). Paper: the values PLE's Table 5 "
             "prints (no seeds or variance reported)."]
    notes += [f"(!) {n}." for n in dict.fromkeys(rows["paper_note"]) if n]
    caption = f"PLE Table 5, census-income part: test {metric} and MTL gain, ours beside the paper's."
    return Table("table5_census", caption, values, display, notes)


def best_runs(records: list[dict]) -> pd.DataFrame:
    """Per model and task: mean and std of the test metric over seeds, and the test metric of the
    best run as MMoE defines it: the seed with the best VALIDATION metric on the main task (ties:
    the lowest seed). Columns ``model, task, metric, n_seeds, mean, std, best_seed,
    best_validation, best`` (``best_validation``: the main task's validation metric of that run)."""
    protocol = check_protocol(records)
    main_tasks = {r.get("main_task") for r in records}
    if len(main_tasks) != 1 or None in main_tasks:
        raise ConfigError(f"run records name different or no main tasks ({sorted(map(str, main_tasks))}); "
                          "MMoE's best run is chosen on one main task: retrain with the current trainer")
    main = main_tasks.pop()
    main_type = {t["name"]: t["type"] for t in records[0]["tasks"]}[main]
    metric = METRIC_FOR_TASK_TYPE[main_type]
    try:
        selection = pd.DataFrame([{"model": r["model"], "seed": r["seed"],
                                   "best_validation": r["validation"][main][metric.name]} for r in records])
    except KeyError as error:
        raise ConfigError(f"a run record has no validation {metric.name} for {main} ({error}); records from "
                          f"`python -m replication train` carry one, in {protocol['dataset']}") from None
    selection["score"] = selection["best_validation"].map(metric.score)
    best = (selection.sort_values(["model", "score", "seed"], ascending=[True, False, True])
            .drop_duplicates("model")[["model", "seed", "best_validation"]].rename(columns={"seed": "best_seed"}))
    scores = tidy(records)
    summary = scores.groupby(["model", "task", "metric"], as_index=False, sort=False).agg(
        n_seeds=("seed", "size"), mean=("value", "mean"), std=("value", lambda v: v.std(ddof=1)))
    summary = summary.merge(best, on="model")
    at_best = scores.rename(columns={"seed": "best_seed", "value": "best"})[["model", "task", "best_seed", "best"]]
    summary = summary.merge(at_best, on=["model", "task", "best_seed"])
    order = [main] + [t for t in tasks_of(summary) if t != main]
    summary["task"] = pd.Categorical(summary["task"], categories=order, ordered=True)
    return summary.sort_values(["model", "task"]).assign(task=lambda s: s["task"].astype(str)).reset_index(drop=True)


def best_run_table(records: list[dict]) -> Table:
    """MMoE Tables 1-2 style, for whatever task group the records hold: per model and task, the mean
    over seeds and the best run's test metric, beside the paper's mean/best rows for that group."""
    protocol = check_protocol(records)
    rows = best_runs(records)
    tasks, metric = tasks_of(rows), metric_of(rows)
    values, sources = paper_values()
    printed = values[(values["task_group"] == protocol["task_group"]) & values["statistic"].isin(["best", "mean"])]
    paper_columns = []
    for (source, statistic), group in printed.groupby(["source", "statistic"], sort=True):
        column = f"paper_{source}_{statistic}"
        rows[column] = [group.set_index(["model", "task"])["value"].get((m, t), np.nan) for m, t in zip(rows["model"], rows["task"])]
        paper_columns.append(column)
    per_model = rows.drop_duplicates("model").set_index("model")[["best_seed", "best_validation"]]
    numbers = wide(rows, ["n_seeds", "mean", "std", "best", *paper_columns], tasks)
    numbers.insert(1, "best_seed", per_model["best_seed"].reindex(numbers["model"]).to_numpy())
    numbers.insert(2, f"best_validation_{tasks[0]}", per_model["best_validation"].reindex(numbers["model"]).to_numpy())
    display = pd.DataFrame({"model": [figures.model_style(m).label for m in numbers["model"]],
                            "best run (seed)": numbers["best_seed"].astype(int).astype(str)})
    for task in tasks:
        display[f"{task}, best run"] = [cell(v, "{:.5f}") for v in numbers[f"{task}_best"]]
        display[f"{task}, mean ± std"] = [f"{m:.5f} ± {s:.5f}" for m, s in zip(numbers[f"{task}_mean"], numbers[f"{task}_std"])]
        for column in paper_columns:
            display[f"{task}, {column.rsplit('_', 1)[1]} (paper)"] = [cell(v, "{:.4f}") for v in numbers[f"{task}_{column}"]]
    used = sorted(printed["source"].unique())
    notes = [f"Ours: test {metric} over {seed_count(rows)} seeds (mean ± sample std) and of the best run: the seed with "
             f"the best validation {tasks[0]} {metric} (MMoE's definition; never chosen on test); every task's value "
             "in the best-run column comes from that same run."]
    notes += [f"Paper ({s}): {sources[s]['citation']} DOI {sources[s]['doi']}" for s in used]
    stem = re.sub(r"[^a-z0-9]+", "_", f"{'_'.join(used) or 'best_run_' + protocol['task_group']}_{protocol['dataset'].split('-')[0]}")
    caption = (f"MMoE-style table, {protocol['dataset']} {protocol['task_group']}: mean and best-run test {metric}"
               + (", ours beside the paper's." if used else " (the papers print no such table for this group)."))
    return Table(stem, caption, numbers, display, notes)


LATEX_ESCAPES = str.maketrans({
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "−": r"$-$", "Δ": r"$\Delta$",
})


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``_`` -> ``\\_``, ``±`` -> ``$\\pm$``...)."""
    return str(text).translate(LATEX_ESCAPES)


def latex_table(table: Table) -> str:
    """A booktabs table: the display strings, escaped, with the caption above and the notes below."""
    columns = "l" + "r" * (table.display.shape[1] - 1)
    body = [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.display.itertuples(index=False)]
    lines = [
        r"% Generated by `python -m replication figures`; do not edit. Needs \usepackage{booktabs}.",
        r"\begin{table}[ht]", r"\centering", r"\small", rf"\caption{{{latex_escape(table.caption)}}}",
        rf"\label{{tab:{table.stem}}}", rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
        " & ".join(latex_escape(c) for c in table.display.columns) + r" \\", r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}",
        *[rf"\par\footnotesize {latex_escape(n)}" for n in table.notes], r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def markdown_table(table: Table) -> str:
    """The table in Markdown: header, rows, then the notes."""
    lines = ["| " + " | ".join(table.display.columns) + " |", "|" + "---|" * table.display.shape[1]]
    lines += ["| " + " | ".join(row) + " |" for row in table.display.itertuples(index=False)]
    return "\n".join([*lines, "", *table.notes]) + "\n"
