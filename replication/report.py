"""The papers' tables and figures, and a one-page report of their claims, from the results tables.

Inputs (each optional; an artifact whose input is not given is skipped, with a logged line):

- ``--census``: the census table of ``python -m replication aggregate`` (CSV, one row per model and task);
- ``--census-stats``: the folder of ``python -m replication stats`` (its ``comparisons.csv``);
- ``--experts``: the table of ``python -m replication experts`` (PLE Fig. 8 data);
- ``--sweep``: the table of ``python -m replication sweep`` (synthetic correlation sweep);
- ``--runs``: run-record folders (MMoE's best-run tables; the protocol and hardware of the runs);
- ``--synthetic-runs``: the sweep's run records, one folder per correlation (training curves, MMoE Fig. 4).

Everything here is arithmetic on those tables (means of means, differences, layout); the statistics
themselves (intervals, tests, Holm) come from the tables. A given input that is missing or malformed
is an error naming the file, what is wrong and the command that writes it. Drawing is
:mod:`replication.figures`; this module computes what is drawn, writes every file atomically
(tables as CSV, Markdown and LaTeX; figures as PNG and PDF) and assembles ``REPORT.md``.
"""

from __future__ import annotations

import platform
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from replication import figures
from replication.aggregate import cell, check_protocol, load_records, paper_values, tidy
from replication.compare import ALPHA
from replication.config import ConfigError
from replication.data.synthetic import correlation_of
from replication.experts import COLUMNS as EXPERT_COLUMNS
from replication.io import atomic_open, write_text
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.progress import log
from replication.provenance import git_commit, package_versions
from replication.verdicts import (
    INCONCLUSIVE, MMOE, NOT_ASSESSED, NOT_REPRODUCED, PAPER_CORRELATIONS, PARTLY, PLE, REPRODUCED, Verdict,
    synthetic_verdicts, verdict,
)

DPI = 200
FIG7_PAPER_COLUMN = "paper_ple_fig7_mtl_gain_approx"
TABLE5_PAPER_COLUMNS = {"paper_ple_table5_reported": "{task} {metric} (paper)",
                        "paper_ple_table5_mtl_gain": "{task} MTL gain (paper)"}
# The columns each input table must have.
CENSUS_COLUMNS = ("model", "task", "metric", "n_seeds", "seeds", "mean", "std", "mtl_gain", "mtl_gain_low",
                  "mtl_gain_high", "pvalue_holm", "significant")
COMPARISON_COLUMNS = ("model", "task", "reference", "n_pairs", "gain", "gain_low", "gain_high", "t_pvalue_holm",
                      "significant")
SWEEP_COLUMNS = ("correlation", "model", "task", "metric", "n_seeds", "seeds", "mean", "std", "t_low", "t_high",
                 "gain", "gain_low", "gain_high", "pvalue_holm", "significant")
NUMERIC = ("n_seeds", "n_pairs", "mean", "std", "mtl_gain", "mtl_gain_low", "mtl_gain_high", "pvalue_holm", "gain",
           "gain_low", "gain_high", "t_pvalue_holm", "t_low", "t_high", "correlation", "level", "seed",
           *TABLE5_PAPER_COLUMNS, FIG7_PAPER_COLUMN)


@dataclass(frozen=True)
class TableInput:
    """An input table: its option, required columns, the command that writes it, the columns that
    identify a row, and its file name when the option names a folder."""

    option: str
    columns: tuple[str, ...]
    producer: str
    keys: tuple[str, ...]
    file: str = ""


TABLE_INPUTS = {
    "census": TableInput("--census", CENSUS_COLUMNS, "python -m replication aggregate", ("model", "task")),
    "comparisons": TableInput("--census-stats", COMPARISON_COLUMNS, "python -m replication stats",
                              ("model", "task", "reference"), "comparisons.csv"),
    "experts": TableInput("--experts", tuple(EXPERT_COLUMNS), "python -m replication experts",
                          ("model", "seed", "level", "gate", "expert")),
    "sweep": TableInput("--sweep", SWEEP_COLUMNS, "python -m replication sweep", ("correlation", "model", "task")),
    "synthetic_experts": TableInput("--synthetic-experts", tuple(EXPERT_COLUMNS), "python -m replication experts",
                                    ("model", "seed", "level", "gate", "expert")),
}
OPTIONS = {name: spec.option for name, spec in TABLE_INPUTS.items()} | {
    "records": "--runs", "synthetic_records": "--synthetic-runs", "group2_records": "--group2-runs"}
# MMoE Fig. 4: its correlations, and the models it compares (Shared-Bottom, OMoE, MMoE) plus PLE; of
# these, the ones that were run are drawn.
CURVE_CORRELATIONS = PAPER_CORRELATIONS["MMoE Figs. 3-4"]
CURVE_MODELS = ("shared_bottom", "omoe", "mmoe", "ple")
GROUP2 = "education-marital"  # MMoE's second census task group (its Table 2)
# Where an artifact a report leaves out is made instead (the default pipeline's report has no Table 2).
WHERE_ELSE = {"group2_records": " (`make reproduce-zoo` trains that task group and writes the table into "
                                "paper_figures/zoo/)"}


# ---------------------------------------------------------------------------------------------- inputs

def read_table(path: Path, columns: Sequence[str], producer: str, keys: Sequence[str]) -> pd.DataFrame:
    """A CSV input, checked: it exists, parses, is not empty, has ``columns`` (numeric ones numeric,
    ``significant`` true/false) and one row per ``keys``; otherwise a ConfigError saying how to fix it."""
    path = Path(path)
    fix = f"regenerate it with `{producer}`"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist; write it with `{producer}` or leave the option out")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a readable CSV table ({error}); {fix}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ConfigError(f"{path} lacks the column(s) {', '.join(missing)}; it is not the output of `{producer}`: {fix}")
    if table.empty:
        raise ConfigError(f"{path} has no rows; {fix}")
    for column in (c for c in NUMERIC if c in table.columns):
        converted = pd.to_numeric(table[column], errors="coerce")
        bad = table[column].notna() & converted.isna()
        if bad.any():
            raise ConfigError(f"{path}: column {column!r} holds non-numbers (row {int(np.flatnonzero(bad)[0]) + 2} of the "
                              f"file: {table[column][bad].iloc[0]!r}); {fix}")
        table[column] = converted
    if "significant" in table.columns:
        flags = table["significant"].astype(str).str.lower()
        if not flags.isin(["true", "false"]).all():
            raise ConfigError(f"{path}: column 'significant' must be True or False in every row; {fix}")
        table["significant"] = flags == "true"
    doubled = table.duplicated(list(keys))
    if doubled.any():
        raise ConfigError(f"{path} has more than one row for {dict(table.loc[doubled, list(keys)].iloc[0])}; {fix}")
    table["model"] = table["model"].astype(str)
    return table


@dataclass
class Inputs:
    """The validated inputs; ``None`` where an option was not given."""

    census: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    experts: pd.DataFrame | None = None
    synthetic_experts: pd.DataFrame | None = None  # expert utilization on one synthetic correlation
    sweep: pd.DataFrame | None = None
    records: list[dict] | None = None
    synthetic_records: list[dict] | None = None
    group2_records: list[dict] | None = None  # MMoE's second census task group (education-marital)
    paths: dict[str, str] = field(default_factory=dict)


def load_synthetic_records(root: Path) -> list[dict]:
    """Every run record under ``root/<data set>/<model>/seed_K.json`` (one folder per correlation, as
    the sweep reads them), each with its data set's ``correlation``; one protocol per folder."""
    root = Path(root)
    folders = sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    if not folders:
        raise ConfigError(f"no data-set folders under {root} (--synthetic-runs); train the sweep first "
                          "(`dvc repro sweep`) or leave the option out")
    records, seen = [], {}
    for folder in folders:
        here = load_records(folder)
        protocol = check_protocol(here)
        if protocol["dataset"] != "synthetic":
            raise ConfigError(f"{folder} holds {protocol['dataset']} runs; --synthetic-runs reads synthetic ones only")
        correlation = correlation_of(protocol["task_group"])
        if correlation in seen:
            raise ConfigError(f"--synthetic-runs: correlation {correlation:g} has runs in both {seen[correlation]} and "
                              f"{folder}; pass one folder per correlation")
        seen[correlation] = folder
        records += [{**r, "correlation": correlation} for r in here]
    return records


def load_inputs(census: Path | None = None, census_stats: Path | None = None, experts: Path | None = None,
                sweep: Path | None = None, runs: Sequence[Path] = (), synthetic_runs: Path | None = None,
                group2_runs: Sequence[Path] = (), synthetic_experts: Path | None = None) -> Inputs:
    """Read and check every given input before anything is drawn; the run records must agree with
    the census table, the statistics with it, and the synthetic run records with the sweep table, on
    every row they share."""
    if not any([census, census_stats, experts, sweep, runs, synthetic_runs, group2_runs, synthetic_experts]):
        raise ConfigError("nothing to draw: give at least one of --census, --census-stats, --experts, --sweep, --runs, "
                          "--synthetic-runs, --group2-runs, --synthetic-experts")
    inputs = Inputs()
    given = {"census": census, "comparisons": census_stats, "experts": experts, "sweep": sweep,
             "synthetic_experts": synthetic_experts}
    for name, path in given.items():
        if path:
            spec = TABLE_INPUTS[name]
            file = Path(path) / spec.file if spec.file else Path(path)
            setattr(inputs, name, read_table(file, spec.columns, spec.producer, spec.keys))
            inputs.paths[name] = str(file)
    if runs:
        inputs.records = load_records(list(runs))
        check_protocol(inputs.records)
        inputs.paths["records"] = ", ".join(map(str, runs))
    if synthetic_runs:
        inputs.synthetic_records = load_synthetic_records(synthetic_runs)
        inputs.paths["synthetic_records"] = str(synthetic_runs)
    if group2_runs:
        inputs.group2_records = load_records(list(group2_runs))
        group = check_protocol(inputs.group2_records)["task_group"]
        if group != GROUP2:
            raise ConfigError(f"--group2-runs holds {group} runs; MMoE Table 2 is the {GROUP2} task group")
        inputs.paths["group2_records"] = ", ".join(map(str, group2_runs))
    if inputs.census is not None and inputs.records is not None:
        means = tidy(inputs.records).groupby(["model", "task"], as_index=False)["value"].mean()
        check_agree(means, inputs.census, "value", "mean", "mean test metric of --runs", "mean in --census")
    if inputs.census is not None and inputs.comparisons is not None:
        against = inputs.comparisons[inputs.comparisons["reference"] == reference_model(inputs.census)]
        check_agree(against, inputs.census, "gain", "mtl_gain", "gain in --census-stats", "mtl_gain in --census")
    ok = [r for r in inputs.synthetic_records or () if r.get("status", "ok") == "ok"]
    if inputs.sweep is not None and ok:
        tests = pd.concat([tidy([r for r in ok if r["correlation"] == p]).assign(correlation=p)
                           for p in sorted({r["correlation"] for r in ok})], ignore_index=True)
        means = tests.groupby(["correlation", "model", "task"], as_index=False)["value"].mean()
        check_agree(means, inputs.sweep, "value", "mean", "mean test metric of --synthetic-runs", "mean in --sweep",
                    keys=("correlation", "model", "task"))
    return inputs


def check_agree(a: pd.DataFrame, b: pd.DataFrame, column_a: str, column_b: str, what_a: str, what_b: str,
                keys: Sequence[str] = ("model", "task")) -> None:
    """Refuse two inputs whose shared rows (same ``keys``) disagree (beyond the CSVs' 6 printed digits)."""
    keys = list(keys)
    both = a[[*keys, column_a]].rename(columns={column_a: "a"}).merge(
        b[[*keys, column_b]].rename(columns={column_b: "b"}), on=keys)
    off = ~np.isclose(both["a"], both["b"], rtol=1e-5, atol=1e-9) & ~(both["a"].isna() & both["b"].isna())
    if off.any():
        row = both[off].iloc[0]
        where = " ".join(f"p = {row[k]:g}" if k == "correlation" else str(row[k]) for k in keys)
        raise ConfigError(f"the inputs disagree: {where}: {what_a} {row['a']:.6g} but "
                          f"{what_b} {row['b']:.6g}; pass inputs written from the same runs")


def reference_model(census: pd.DataFrame) -> str:
    """The model every MTL gain in the census table is measured against: the one without gains."""
    return _reference(census, "mtl_gain", "census table", "aggregate")


def _reference(table: pd.DataFrame, gain_column: str, what: str, command: str) -> str:
    models = table.groupby("model", observed=True)[gain_column].apply(lambda g: g.isna().all())
    references = list(models[models].index)
    if len(references) != 1:
        raise ConfigError(f"the {what} must have exactly one model without MTL gains (the reference); "
                          f"found {references or 'none'}; regenerate it with `python -m replication {command}`")
    return references[0]


def tasks_of(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["task"]))


def metric_of(table: pd.DataFrame) -> str:
    metrics = set(table["metric"])
    if len(metrics) != 1:
        raise ConfigError(f"a table mixes metrics {sorted(metrics)}; one figure or table shows one metric")
    return metrics.pop().upper()


# ---------------------------------------------------------------------------------------------- tables

@dataclass
class Table:
    """A table as numbers (the CSV) and as display strings (Markdown and LaTeX), with notes below."""

    stem: str
    caption: str
    values: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass
class Drawing:
    """A figure; ``data``, where given, is the tidy table it was drawn from (written as ``stem.csv``)."""

    stem: str
    caption: str
    figure: Figure
    data: pd.DataFrame | None = None


def wide(rows: pd.DataFrame, columns: Sequence[str], tasks: Sequence[str]) -> pd.DataFrame:
    """One row per model (display order), one ``<task>_<column>`` per task and column."""
    indexed = rows.set_index(["model", "task"])
    models = figures.ordered_models(rows["model"])
    out = {"model": models}
    out |= {f"{task}_{c}": indexed[c].reindex([(m, task) for m in models]).to_numpy() for task in tasks for c in columns}
    return pd.DataFrame(out)


def _interval(value: float, low: float, high: float, significant: bool = False) -> str:
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
            _interval(g, lo, hi, sig) for g, lo, hi, sig in zip(values[f"{task}_mtl_gain"], values[f"{task}_mtl_gain_low"],
                                                               values[f"{task}_mtl_gain_high"], values[f"{task}_significant"])]
        for column in paper:
            spec = "{:+.4f}" if column.endswith("mtl_gain") else "{:.4f}"
            flag = [" (!)" if note and column.endswith("mtl_gain") else "" for note in notes_by_cell[f"{task}_paper_note"]]
            display[TABLE5_PAPER_COLUMNS[column].format(task=task, metric=metric)] = [
                cell(v, spec) + f for v, f in zip(values[f"{task}_{column}"], flag)]
    notes = [f"Ours: mean ± sample std of test {metric} over {_seed_count(census)} seeds; MTL gain (PLE Eq. 11) "
             f"against {figures.model_style(reference).label}, paired by seed, with its 95% t interval; `*` = "
             f"significant at {ALPHA} after Holm's correction (paired t-test). Paper: the values PLE's Table 5 "
             "prints (no seeds or variance reported)."]
    notes += [f"(!) {n}." for n in dict.fromkeys(rows["paper_note"]) if n]
    caption = f"PLE Table 5, census-income part: test {metric} and MTL gain, ours beside the paper's."
    return Table("table5_census", caption, values, display, notes)


def _seed_count(table: pd.DataFrame) -> str:
    counts = sorted(set(table["n_seeds"].astype(int)))
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


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
    notes = [f"Ours: test {metric} over {_seed_count(rows)} seeds (mean ± sample std) and of the best run: the seed with "
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


# ---------------------------------------------------------------------------------------------- figures

def seesaw_points(census: pd.DataFrame) -> pd.DataFrame:
    """Per model with MTL gains (not the reference): the first task's gain and interval as x, the
    second's as y."""
    tasks = tasks_of(census)
    if len(tasks) != 2:
        raise ConfigError(f"the seesaw figure needs exactly two tasks; the census table has {tasks}")
    gains = wide(census[census["mtl_gain"].notna()], ["mtl_gain", "mtl_gain_low", "mtl_gain_high"], tasks)
    return pd.DataFrame({"model": gains["model"], **{
        f"{axis}{suffix}": gains[f"{task}_mtl_gain{suffix}"]
        for axis, task in zip("xy", tasks) for suffix in ("", "_low", "_high")}}).dropna()


def seesaw_figure(census: pd.DataFrame) -> Drawing:
    tasks, metric = tasks_of(census), metric_of(census)
    reference = figures.model_style(reference_model(census)).label
    labels = [f"{task}: MTL gain in test {metric} (model − {reference})" for task in tasks]
    figure = figures.seesaw(seesaw_points(census), *labels, quadrant_label=f"better than {reference}\non both tasks")
    caption = (f"PLE Fig. 3 (seesaw): each model's MTL gain on {tasks[0]} (x) against {tasks[1]} (y), census test "
               f"{metric}, mean over {_seed_count(census)} seeds paired with {reference}; bars: 95% t intervals. The "
               "shaded quadrant is better than the reference on both tasks.")
    return Drawing("fig3_seesaw", caption, figure)


def fig7_bars(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per (correlation, MTL model, task): our MTL gain with its interval and the paper's bar."""
    gains = sweep[sweep["gain"].notna()]
    paper = gains[FIG7_PAPER_COLUMN] if FIG7_PAPER_COLUMN in gains.columns else np.nan
    return pd.DataFrame({"correlation": gains["correlation"], "model": gains["model"], "task": gains["task"],
                         "gain": gains["gain"], "low": gains["gain_low"], "high": gains["gain_high"], "paper": paper})


def fig7_figure(sweep: pd.DataFrame) -> Drawing:
    metric = metric_of(sweep)
    reference = figures.model_style(_sweep_reference(sweep)).label
    figure = figures.correlation_gain_bars(fig7_bars(sweep), tasks_of(sweep),
                                           y_label=f"MTL gain on test {metric}\n({reference} − model; > 0 better)",
                                           paper_label="paper (read off Fig. 7)")
    caption = (f"PLE Fig. 7: MTL gain on test {metric} by task correlation, synthetic data, mean over "
               f"{_seed_count(sweep)} seeds paired with {reference}, with 95% t intervals; hatched: the PLE paper's "
               "bars read off its Fig. 7 (±0.0005), where it has one.")
    return Drawing("fig7_correlation_gain", caption, figure)


def _sweep_reference(sweep: pd.DataFrame) -> str:
    return _reference(sweep, "gain", "sweep table", "sweep")


def loss_by_correlation(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per (correlation, model): the test metric averaged over tasks, and the average of the tasks'
    95% t intervals. With the same seeds for every task this interval is at least as wide as the t
    interval of the per-seed task average (the standard deviation of a mean is at most the mean of
    the standard deviations), so it is conservative."""
    counts = sweep.groupby(["correlation", "model"])["n_seeds"].nunique()
    if (counts > 1).any():
        correlation, model = counts[counts > 1].index[0]
        raise ConfigError(f"the sweep table has different seed counts across tasks for {model} at p = {correlation:g}; "
                          "regenerate it with `python -m replication sweep`")
    lines = sweep.groupby(["correlation", "model"], as_index=False).agg(
        value=("mean", "mean"), low=("t_low", "mean"), high=("t_high", "mean"))
    return lines


def loss_figure(sweep: pd.DataFrame) -> Drawing:
    metric = metric_of(sweep)
    figure = figures.loss_vs_correlation(loss_by_correlation(sweep), y_label=f"test {metric}, mean over tasks",
                                         interval_label="bars: mean of the tasks' 95% t intervals")
    caption = (f"MMoE Figs. 3-4 style: test {metric} (mean over the tasks) against task correlation, one line per "
               f"model, mean over {_seed_count(sweep)} seeds; error bars: the mean of the tasks' 95% t intervals "
               "(conservative). Lower is better.")
    return Drawing("mmoe_fig3_loss_vs_correlation", caption, figure)


def training_curves(records: list[dict]) -> pd.DataFrame:
    """One row per (correlation, model, seed, epoch) of every record's training history: the epoch's
    training loss (the joint loss, averaged over the epoch's batches) and each task's validation
    metric after it (``validation_<task>_<metric>``). Records of a failed run are left out, as the
    tables leave them out. ``records`` carry their data set's ``correlation``."""
    rows = []
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        if not r.get("history"):
            raise ConfigError(f"run record {r.get('source', r['model'])} has no training history; records of "
                              "`python -m replication train` carry one: retrain it")
        for h in r["history"]:
            rows.append({"correlation": r["correlation"], "model": r["model"], "seed": r["seed"], "epoch": h["epoch"],
                         "train_loss": h["train_loss"],
                         **{f"validation_{task}_{metric}": value for task, metrics in h["validation"].items()
                            for metric, value in metrics.items()}})
    if not rows:
        raise ConfigError("no successful run records with a training history under --synthetic-runs")
    curves = pd.DataFrame(rows)
    order = curves["model"].map(lambda m: figures.model_style(m).order)
    return (curves.assign(order=order).sort_values(["correlation", "order", "model", "seed", "epoch"])
            .drop(columns="order").reset_index(drop=True))


def mean_curves(curves: pd.DataFrame, min_share: float = 1.0) -> pd.DataFrame:
    """Per (correlation, model, epoch): the seeds still training at that epoch (``n_seeds``, of
    ``n_total``) and the mean, median and sample std of their training loss. Seeds stop at different epochs
    (early stopping), so each epoch's mean is over the seeds that reached it; epochs at which fewer
    than ``min_share`` of the model's seeds still train are dropped."""
    means = curves.groupby(["correlation", "model", "epoch"], as_index=False, sort=False).agg(
        n_seeds=("seed", "nunique"), mean=("train_loss", "mean"), median=("train_loss", "median"),
        std=("train_loss", lambda v: v.std(ddof=1) if len(v) > 1 else np.nan))
    total = curves.groupby(["correlation", "model"])["seed"].nunique().rename("n_total").reset_index()
    means = means.merge(total, on=["correlation", "model"])
    keep = means["n_seeds"] >= min_share * means["n_total"]
    return means.loc[keep, ["correlation", "model", "epoch", "n_seeds", "n_total", "mean", "median", "std"]].reset_index(drop=True)


def curves_figure(records: list[dict]) -> Drawing:
    """MMoE Fig. 4 style: training curves at the MMoE paper's correlations, for the models it compares
    (and PLE), from the synthetic run records; the tidy curves table is written beside the figure."""
    every = training_curves(records)
    correlations = [p for p in CURVE_CORRELATIONS if p in set(every["correlation"])]
    models = [m for m in CURVE_MODELS if m in set(every["model"])]
    if not correlations or not models:
        raise ConfigError(f"--synthetic-runs has no runs of {', '.join(CURVE_MODELS)} at the MMoE paper's correlations "
                          f"({', '.join(f'{p:g}' for p in CURVE_CORRELATIONS)}); it has correlations "
                          f"{', '.join(f'{p:g}' for p in sorted(set(every['correlation'])))} and models "
                          f"{', '.join(figures.ordered_models(every['model']))}")
    curves = every[every["correlation"].isin(correlations) & every["model"].isin(models)].dropna(axis=1, how="all")
    curves = curves.reset_index(drop=True)
    stops = curves.groupby(["correlation", "model", "seed"])["epoch"].max()
    seeds = curves.groupby(["correlation", "model"])["seed"].nunique()
    # The median, not the mean: a few slow seeds (PLE at p = 0.5 and 0.9, MMoE at p = 1: 2 of 10 train
    # for up to 277 epochs) lift a mean far above the other eight. It is drawn while every seed still
    # trains: a statistic over only the seeds still training rises each time a fast-converging seed stops (with min_share 0.5, PLE's at p = 0.5 went from 0.17 at
    # epoch 32 to 0.25 at epoch 35 as four of its ten seeds stopped); past the first stop only single
    # seeds are drawn.
    figure = figures.training_curves(
        curves, mean_curves(curves, min_share=1.0), y_label="training loss (sum of the tasks' MSE)",
        mean_label="median over all seeds, until the first one stops", seed_label="one seed (dot: its last epoch)")
    names = ", ".join(figures.model_style(m).label for m in figures.ordered_models(models))
    caption = (f"MMoE Fig. 4 style: training loss against epoch on the synthetic data, one panel per correlation of the "
               f"MMoE paper's set that was run (p = {', '.join(f'{p:g}' for p in correlations)}), one colour per model "
               f"({names}; {_count_range(seeds)} seeds each). The loss is the joint training loss, the sum of the two "
               "tasks' MSE, averaged over each epoch's batches; log scale. Thin lines: single seeds, each ending (dot) "
               f"where early stopping ended it (epochs {int(stops.min())}-{int(stops.max())}). Bold lines: the median "
               "over all of the model's seeds (a mean would follow the few slow seeds), drawn up to the epoch at which "
               "its first seed stops; a statistic over only the seeds still training would rise each time a fast-converging seed stopped, so past that point only "
               "single seeds are drawn. The MMoE paper averages runs of a fixed length instead.")
    return Drawing("mmoe_fig4_training_curves", caption, figure, data=curves)


def _count_range(counts: pd.Series) -> str:
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}-{high}"


def expert_usage(experts: pd.DataFrame) -> pd.DataFrame:
    """Per (model, level, gate, expert): the mean over seeds of each seed's mean gate weight, and the
    mean over seeds of each seed's standard deviation over the test rows."""
    return experts.groupby(["model", "level", "gate", "expert", "expert_kind"], as_index=False, sort=False).agg(
        mean=("mean", "mean"), std=("std", "mean"), n_seeds=("seed", "nunique"))


def experts_figure(experts: pd.DataFrame, data: str = "census test data", stem: str = "fig8_expert_utilization") -> Drawing:
    figure = figures.expert_utilization(expert_usage(experts), y_label="gate weight on the test set")
    seeds = sorted(set(experts.groupby("model")["seed"].nunique()))
    caption = (f"PLE Fig. 8: expert utilization on {data}. Each panel is one gate; bars: the mean over "
               f"{'/'.join(map(str, seeds))} seeds of the gate's mean weight on each expert, error bars: the mean over "
               "seeds of its standard deviation over test rows. Experts of one kind are interchangeable between "
               "seeds (expert k of one seed is not expert k of another), so averaging over seeds spreads weight "
               "that a single run concentrates.")
    return Drawing(stem, caption, figure)


def synthetic_experts_figure(experts: pd.DataFrame) -> Drawing:
    """PLE Fig. 8 on one synthetic correlation (the runs `--synthetic-experts` was made from; the
    pipeline's `experts_synthetic` stage reads p = 0.5, the correlation both papers show)."""
    return experts_figure(experts, data="synthetic test data (one task correlation, p = 0.5 in the pipeline)",
                          stem="fig8_expert_utilization_synthetic")


# ---------------------------------------------------------------------------------------------- claims

def census_verdicts(census: pd.DataFrame, model: str = PLE) -> list[Verdict]:
    """"``model`` beats the reference on census <task>", one per task, from the table's MTL gains."""
    reference = figures.model_style(reference_model(census)).label
    label = figures.model_style(model).label
    verdicts = []
    for task in tasks_of(census):
        claim = f"{label} beats {reference} on census {task}"
        row = census[(census["model"] == model) & (census["task"] == task)]
        if row.empty:
            verdicts.append(Verdict(claim, f"no {model} rows in --census", NOT_ASSESSED))
            continue
        r = row.iloc[0]
        evidence = (f"{label} − {reference} test {r['metric'].upper()}: {_interval(r['mtl_gain'], r['mtl_gain_low'], r['mtl_gain_high'])}"
                    f" (95% CI), Holm p = {r['pvalue_holm']:.3g}, {int(r['n_seeds'])} seeds")
        verdicts.append(Verdict(claim, evidence, verdict(r["mtl_gain"], bool(r["significant"]))))
    return verdicts


def versus_verdicts(comparisons: pd.DataFrame, winner: str = PLE, loser: str = MMOE) -> list[Verdict]:
    """"``winner`` beats ``loser`` on census <task>" from the statistics' comparisons against ``winner``
    (``loser``'s gain over it, negated: ``winner`` minus ``loser``, paired by seed)."""
    names = figures.model_style(winner).label, figures.model_style(loser).label
    rows = comparisons[(comparisons["reference"] == winner) & (comparisons["model"] == loser)]
    if rows.empty:
        return [Verdict(f"{names[0]} beats {names[1]} on census", f"comparisons.csv has no rows of {loser} against "
                        f"reference {winner}; run `python -m replication stats --reference {winner}`", NOT_ASSESSED)]
    return [
        Verdict(f"{names[0]} beats {names[1]} on census {r.task}",
                f"{names[0]} − {names[1]} test metric: {_interval(-r.gain, -r.gain_high, -r.gain_low)} (95% CI), "
                f"Holm p = {r.t_pvalue_holm:.3g} (family: every model against {names[0]}), {int(r.n_pairs)} seeds",
                verdict(-r.gain, bool(r.significant)))
        for r in rows.itertuples(index=False)
    ]


# ---------------------------------------------------------------------------------------------- report

@dataclass(frozen=True)
class Artifact:
    """One table or figure: the inputs it needs (``Inputs`` fields) and how it is built from them."""

    name: str
    needs: str
    build: Callable[[pd.DataFrame | list], Table | Drawing]


ARTIFACTS = (
    Artifact("PLE Table 5 (census)", "census", table5),
    Artifact("MMoE Table 1/2 (best run)", "records", best_run_table),
    Artifact("MMoE Table 2 (best run, education-marital)", "group2_records", best_run_table),
    Artifact("PLE Fig. 3 (seesaw)", "census", seesaw_figure),
    Artifact("PLE Fig. 7 (MTL gain by correlation)", "sweep", fig7_figure),
    Artifact("MMoE Figs. 3-4 (loss by correlation)", "sweep", loss_figure),
    Artifact("MMoE Fig. 4 (training curves)", "synthetic_records", curves_figure),
    Artifact("PLE Fig. 8 (expert utilization)", "experts", experts_figure),
    Artifact("PLE Fig. 8 (expert utilization, synthetic)", "synthetic_experts", synthetic_experts_figure),
)
SAVE_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}


def save_figure(figure: Figure, out_dir: Path, stem: str) -> list[Path]:
    """``stem.png`` (at ``DPI``) and ``stem.pdf``, each written to a temporary file and renamed into place;
    no timestamps, so the same figure gives the same bytes."""
    paths = []
    for fmt, metadata in SAVE_METADATA.items():
        path = Path(out_dir) / f"{stem}.{fmt}"
        with atomic_open(path, "wb") as handle:
            figure.savefig(handle, format=fmt, dpi=DPI, metadata=metadata)
        paths.append(path)
    return paths


def save_drawing(drawing: Drawing, out_dir: Path) -> list[Path]:
    """The figure (PNG and PDF) and, if the drawing has one, its data as ``stem.csv``."""
    paths = save_figure(drawing.figure, out_dir, drawing.stem)
    if drawing.data is not None:
        paths.append(Path(out_dir) / f"{drawing.stem}.csv")
        write_text(paths[-1], drawing.data.to_csv(index=False, float_format="%.6g"))
    return paths


def write_table(table: Table, out_dir: Path) -> list[Path]:
    """``stem.csv`` (the numbers), ``stem.md`` and ``stem.tex`` (the display)."""
    texts = {
        "csv": table.values.to_csv(index=False, float_format="%.6g"),
        "md": f"# {table.caption}\n\nGenerated by `python -m replication figures`; do not edit.\n\n{markdown_table(table)}",
        "tex": latex_table(table),
    }
    for suffix, text in texts.items():
        write_text(Path(out_dir) / f"{table.stem}.{suffix}", text)
    return [Path(out_dir) / f"{table.stem}.{suffix}" for suffix in texts]


def protocol_lines(inputs: Inputs) -> list[str]:
    """What the runs were: seeds, split seed and data hash, from the tables and (if given) the records."""
    lines = []
    if inputs.census is not None:
        census = inputs.census
        lines.append(f"- Census ({inputs.paths['census']}): {census['model'].nunique()} models, "
                     f"{_seed_count(census)} seeds each (seeds {_seed_lists(census)}), tasks {', '.join(tasks_of(census))}, "
                     f"test {metric_of(census)}; MTL gain against {reference_model(census)}, paired by seed.")
    if inputs.records is not None:
        p = check_protocol(inputs.records)
        lines.append(f"- Run records ({inputs.paths['records']}): {len(inputs.records)} runs of {p['dataset']} "
                     f"{p['task_group']}, split seed {p['split_seed']}, processed data {p['data_hash'][:12]}.")
    elif inputs.census is not None:
        lines.append("- Split seed and processed-data hash: in the run records, not in the census table (pass --runs).")
    if inputs.group2_records is not None:
        p = check_protocol(inputs.group2_records)
        lines.append(f"- Second task group's run records ({inputs.paths['group2_records']}): {len(inputs.group2_records)} "
                     f"runs of {p['dataset']} {p['task_group']}, {_count_range(pd.DataFrame(inputs.group2_records).groupby('model')['seed'].nunique())} seeds "
                     f"each, split seed {p['split_seed']}, processed data {p['data_hash'][:12]}.")
    if inputs.sweep is not None:
        sweep = inputs.sweep
        lines.append(f"- Synthetic sweep ({inputs.paths['sweep']}): correlations "
                     f"{', '.join(f'{p:g}' for p in sorted(set(sweep['correlation'])))}; models "
                     f"{', '.join(figures.ordered_models(sweep['model']))}; {_seed_count(sweep)} seeds "
                     f"(seeds {_seed_lists(sweep)}); test {metric_of(sweep)}, gains against {_sweep_reference(sweep)}.")
    if inputs.synthetic_records is not None:
        runs = inputs.synthetic_records
        epochs = [len(r.get("history") or ()) for r in runs]
        lines.append(f"- Synthetic run records ({inputs.paths['synthetic_records']}): {len(runs)} runs, correlations "
                     f"{', '.join(f'{p:g}' for p in sorted({r['correlation'] for r in runs}))}; models "
                     f"{', '.join(figures.ordered_models([r['model'] for r in runs]))}; epochs trained "
                     f"{min(epochs)}-{max(epochs)} (early stopping on validation MSE).")
    if inputs.experts is not None:
        experts = inputs.experts
        lines.append(f"- Expert utilization ({inputs.paths['experts']}): models "
                     f"{', '.join(figures.ordered_models(experts['model']))}, seeds "
                     f"{' '.join(map(str, sorted(set(experts['seed']))))}.")
    if inputs.synthetic_experts is not None:
        experts = inputs.synthetic_experts
        lines.append(f"- Expert utilization on synthetic data ({inputs.paths['synthetic_experts']}): models "
                     f"{', '.join(figures.ordered_models(experts['model']))}, seeds "
                     f"{' '.join(map(str, sorted(set(experts['seed']))))}.")
    lines.append(f"- Model selection on validation only; `significant` = Holm-adjusted paired t-test p < {ALPHA}.")
    return lines


def _seed_lists(table: pd.DataFrame) -> str:
    return "; ".join(sorted(set(table["seeds"].astype(str))))


def environment_lines(records: list[dict] | None) -> list[str]:
    """The hardware and commit of the runs (from their records), else of the machine writing the report."""
    if records:
        def count(key: Callable[[dict], str]) -> str:
            return "; ".join(f"{value} ({n} runs)" for value, n in Counter(key(r) for r in records).most_common())
        return [f"- Runs trained on: {count(lambda r: r['environment']['device'])}.",
                f"- Commit of the runs: {count(lambda r: r['environment']['git_commit'])}.",
                f"- Software of the runs: {count(lambda r: _versions(r['environment']['versions']))}."]
    return ["- The runs' hardware and commit are in their records (pass --runs); this report was written on "
            f"{platform.platform()} ({platform.machine()}), commit {git_commit()}, {_versions(package_versions())}."]


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{k} {versions[k]}" for k in ("python", "torch", "numpy", "pandas") if k in versions)


def verdict_lines(inputs: Inputs) -> list[str]:
    parts = {
        "census": lambda: census_verdicts(inputs.census),
        "comparisons": lambda: versus_verdicts(inputs.comparisons),
        "sweep": lambda: synthetic_verdicts(inputs.sweep, label=lambda m: figures.model_style(m).label),
    }
    verdicts = []
    for name, build in parts.items():
        verdicts += build() if getattr(inputs, name) is not None else [
            Verdict(f"claims from {OPTIONS[name]}", f"{OPTIONS[name]} not given", NOT_ASSESSED)]
    lines = ["| claim | evidence | verdict |", "|---|---|---|"]
    lines += [f"| {v.claim} | {v.evidence} | **{v.verdict}** |" for v in verdicts]
    return lines + [
        "",
        f"Rules (computed, not written by hand): a claim that one model beats another is *{REPRODUCED}* when the "
        f"paired gain is positive and significant (Holm-adjusted paired t-test p < {ALPHA}), *{NOT_REPRODUCED}* when "
        f"it is negative and significant, *{INCONCLUSIVE}* otherwise. The synthetic claims use the sweep's rules on "
        f"point estimates: the gap claim is *{REPRODUCED}* if the gap grows at every step as the correlation falls, "
        f"*{PARTLY}* if it is only larger at the lowest than at the highest correlation; the sweep's Markdown "
        "gives each gap's interval.",
    ]


def report_markdown(inputs: Inputs, made: list[tuple[str, Table | Drawing]], skipped: list[str]) -> str:
    """REPORT.md: protocol, environment, the claims' verdicts, then every table and figure (``made``:
    title and item) and what was not produced."""
    sources = ", ".join(f"`{path}`" for path in inputs.paths.values())
    lines = [
        "# Replication report: PLE (RecSys 2020) and its baselines",
        "",
        f"Generated by `python -m replication figures` from {sources}; do not edit. Every number below is read "
        "from those files; the papers' values appear only where labelled as the paper's.",
        "",
        "## Protocol",
        "",
        *protocol_lines(inputs),
        "",
        "## Environment",
        "",
        *environment_lines(inputs.records),
        "",
        "## The papers' claims",
        "",
        *verdict_lines(inputs),
    ]
    for title, item in made:
        lines += ["", f"## {title}", "", item.caption, ""]
        if isinstance(item, Table):
            lines += [markdown_table(item), f"Files: [{item.stem}.csv]({item.stem}.csv), [{item.stem}.md]({item.stem}.md), "
                      f"[{item.stem}.tex]({item.stem}.tex)."]
        else:
            data = "" if item.data is None else f", [{item.stem}.csv]({item.stem}.csv) (the numbers drawn)"
            lines += [f"![{item.stem}]({item.stem}.png)", "", f"Files: [{item.stem}.png]({item.stem}.png), "
                      f"[{item.stem}.pdf]({item.stem}.pdf){data}."]
    if skipped:
        lines += ["", "## Not produced", "", *[f"- {s}" for s in skipped]]
    return "\n".join(lines).rstrip() + "\n"


def write_report(out_dir: Path, census: Path | None = None, census_stats: Path | None = None,
                 experts: Path | None = None, sweep: Path | None = None, runs: Sequence[Path] = (),
                 synthetic_runs: Path | None = None, group2_runs: Sequence[Path] = (),
                 synthetic_experts: Path | None = None) -> list[Path]:
    """Every table and figure the given inputs allow, and ``REPORT.md``, into ``out_dir``; returns the
    paths written. Inputs are all checked before anything is written."""
    inputs = load_inputs(census, census_stats, experts, sweep, runs, synthetic_runs, group2_runs, synthetic_experts)
    made, skipped, written = [], [], []
    for artifact in ARTIFACTS:
        data = getattr(inputs, artifact.needs)
        if data is None:
            skipped.append(f"{artifact.name}: {OPTIONS[artifact.needs]} not given{WHERE_ELSE.get(artifact.needs, '')}")
            log(f"skipping {skipped[-1]}")
            continue
        made.append((artifact.name, artifact.build(data)))
    for _, item in made:
        written += write_table(item, out_dir) if isinstance(item, Table) else save_drawing(item, out_dir)
    report = Path(out_dir) / "REPORT.md"
    write_text(report, report_markdown(inputs, made, skipped))
    written.append(report)
    log(f"wrote {len(written)} files to {out_dir}: {', '.join(p.name for p in written)}")
    return written
