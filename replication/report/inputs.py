"""The report's inputs, read and checked before anything is drawn.

Each input is optional; an artifact whose input is not given is skipped by the writer:

- ``--census``: the census table of ``python -m replication aggregate`` (CSV, one row per model and task);
- ``--census-stats``: the folder of ``python -m replication stats`` (its ``comparisons.csv``);
- ``--experts``: the table of ``python -m replication experts`` (PLE Fig. 8 data);
- ``--sweep``: the table of ``python -m replication sweep`` (synthetic correlation sweep);
- ``--runs``: run-record folders (MMoE's best-run tables; the protocol and hardware of the runs);
- ``--synthetic-runs``: the sweep's run records, one folder per correlation (training curves, MMoE Fig. 4);
- ``--synthetic-data``: the synthetic data sets the sweep trained on (their ``schema.json``: the data's
  size, which PLE Fig. 7's caption states beside the paper's).

A given input that is missing or malformed, or that disagrees with another on the rows they share, is a
:class:`ConfigError` naming the file, what is wrong and the command that writes it. The small helpers
that read a table's shape (its tasks, metric, reference model, seed counts) live here too, since
tables, drawings, claims and the writer all read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from replication.aggregate import check_protocol, load_records, tidy
from replication.config import ConfigError
from replication.data.synthetic import correlation_of
from replication.experts import COLUMNS as EXPERT_COLUMNS


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
    "records": "--runs", "synthetic_records": "--synthetic-runs", "group2_records": "--group2-runs",
    "synthetic_size": "--synthetic-data"}
GROUP2 = "education-marital"  # MMoE's second census task group (its Table 2)


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


@dataclass(frozen=True)
class SyntheticSize:
    """The size of a synthetic data set: its rows (all splits together) and input dimension d."""

    rows: int
    dim: int

    def __str__(self) -> str:
        return f"{self.rows:,} rows, d = {self.dim}"


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
    synthetic_size: SyntheticSize | None = None  # of the synthetic data sets (--synthetic-data)
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


def load_synthetic_size(root: Path, records: Sequence[dict] = ()) -> SyntheticSize:
    """The one size (rows, d) of the synthetic data sets under ``root``, read from their ``schema.json``
    files (one per correlation, or one per replicate with per-seed data), as `synth` writes them. The
    data sets must all have one size, and every run of ``records`` must have been trained on one of
    them (its data hash is a schema's): the size stated for our bars is then the runs' own."""
    root = Path(root)
    schemas = sorted(root.rglob("schema.json")) if root.is_dir() else []
    if not schemas:
        raise ConfigError(f"no schema.json under {root} (--synthetic-data); make the synthetic data first "
                          "(`dvc repro synth`) or leave the option out")
    sizes, hashes = {}, set()
    for path in schemas:
        schema = json.loads(path.read_text())
        if schema.get("dataset") != "synthetic":
            raise ConfigError(f"{path} describes {schema.get('dataset')!r} data; --synthetic-data reads synthetic data only")
        sizes[path] = SyntheticSize(int(schema["generator"]["rows"]), int(schema["generator"]["dim"]))
        hashes.add(schema["data_hash"])
    (first, size), *rest = sizes.items()
    other = next((path for path, other_size in rest if other_size != size), None)
    if other is not None:
        raise ConfigError(f"--synthetic-data holds data sets of different sizes: {first} has {size}, "
                          f"{other} has {sizes[other]}")
    for record in records:
        used = record.get("replicate_data_hash", record["data_hash"])
        if used not in hashes:
            raise ConfigError(f"--synthetic-data {root} does not hold the data of the synthetic run {record['model']} "
                              f"seed {record['seed']} (data hash {used[:12]}); pass the folder the sweep trained on")
    return size


def load_inputs(census: Path | None = None, census_stats: Path | None = None, experts: Path | None = None,
                sweep: Path | None = None, runs: Sequence[Path] = (), synthetic_runs: Path | None = None,
                group2_runs: Sequence[Path] = (), synthetic_experts: Path | None = None,
                synthetic_data: Path | None = None) -> Inputs:
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
    if synthetic_data:
        inputs.synthetic_size = load_synthetic_size(synthetic_data, inputs.synthetic_records or ())
        inputs.paths["synthetic_size"] = str(synthetic_data)
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
    """The one model of ``table`` whose ``gain_column`` is empty in every row; else a ConfigError."""
    models = table.groupby("model", observed=True)[gain_column].apply(lambda g: g.isna().all())
    references = list(models[models].index)
    if len(references) != 1:
        raise ConfigError(f"the {what} must have exactly one model without MTL gains (the reference); "
                          f"found {references or 'none'}; regenerate it with `python -m replication {command}`")
    return references[0]


def tasks_of(table: pd.DataFrame) -> list[str]:
    """The table's tasks in the order of their first row (the producers' order)."""
    return list(dict.fromkeys(table["task"]))


def metric_of(table: pd.DataFrame) -> str:
    """The table's one metric, upper case (``AUC``, ``MSE``); a table of mixed metrics is refused."""
    metrics = set(table["metric"])
    if len(metrics) != 1:
        raise ConfigError(f"a table mixes metrics {sorted(metrics)}; one figure or table shows one metric")
    return metrics.pop().upper()


def seed_count(table: pd.DataFrame) -> str:
    """The seeds per row, as text: ``10``, or ``8-10`` where rows differ."""
    counts = sorted(set(table["n_seeds"].astype(int)))
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def sweep_reference(sweep: pd.DataFrame) -> str:
    """The model every gain in the sweep table is measured against: the one without gains."""
    return _reference(sweep, "gain", "sweep table", "sweep")


def count_range(counts: pd.Series) -> str:
    """``counts`` as text: one number, or ``low-high`` where they differ."""
    low, high = int(counts.min()), int(counts.max())
    return str(low) if low == high else f"{low}-{high}"
