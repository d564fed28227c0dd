"""Comparisons against a reference model over seeds: the numbers every table's significance comes from.

Works on the tidy run table of :func:`replication.aggregate.tidy` (one row per model, seed and task)
and on saved test predictions; the statistics themselves are the pure functions of
:mod:`replication.stats`. Runs are paired by seed, which the callers only do for records of one
protocol (same data hash and split seed: :func:`replication.aggregate.check_protocol`).

"Significant" always means after Holm's correction over the family of every (model, task)
comparison against the reference, at ``ALPHA``, using the paired t-test over seeds.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from replication.records import RecordError
from replication.stats import bootstrap_interval, delong_test, delta_m, holm, mtl_gain, paired_tests
from replication.stats import probability_of_improvement, t_interval

ALPHA = 0.05
BOOTSTRAP_SEED = 0  # explicit random state: the bootstrap intervals reproduce


def per_model(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, n and 95% intervals (Student-t and percentile bootstrap) per model and task."""
    rows = []
    for (model, task, metric), group in runs.groupby(["model", "task", "metric"], sort=False):
        values = group.sort_values("seed")["value"].to_numpy()
        t, boot = t_interval(values), bootstrap_interval(values, random_state=BOOTSTRAP_SEED)
        rows.append({
            "model": model, "task": task, "metric": metric, "n_seeds": len(values),
            "seeds": " ".join(map(str, sorted(group["seed"]))), "mean": values.mean(),
            "std": values.std(ddof=1) if len(values) > 1 else np.nan,
            "t_low": t.low, "t_high": t.high, "bootstrap_low": boot.low, "bootstrap_high": boot.high,
        })
    return pd.DataFrame(rows)


def _paired(runs: pd.DataFrame, model: str, reference: str, task: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    both = runs[runs["task"] == task].pivot_table(index="seed", columns="model", values="value")
    both = both[[model, reference]].dropna()
    return list(both.index), both[model].to_numpy(), both[reference].to_numpy()


def compare_to_reference(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per (model, task): MTL gain (PLE Eq. 11) paired by seed with its 95% t interval, paired t and
    Wilcoxon tests, Holm-adjusted p-values, significance, and the probability of improvement."""
    direction = runs.groupby("task")["higher_is_better"].first()
    rows = []
    for model in [m for m in runs["model"].unique() if m != reference]:
        for task in runs.loc[runs["model"] == model, "task"].unique():
            seeds, own, ref = _paired(runs, model, reference, task)
            if len(seeds) < 2:
                rows.append({"model": model, "task": task, "n_pairs": len(seeds), "note": "fewer than 2 paired seeds"})
                continue
            better = bool(direction[task])
            gain = mtl_gain(own, ref, higher_is_better=better, paired=True)
            oriented = (own, ref) if better else (-own, -ref)
            tests = paired_tests(*oriented)
            rows.append({
                "model": model, "task": task, "n_pairs": len(seeds), "paired_seeds": " ".join(map(str, seeds)),
                "gain": gain.estimate, "gain_low": gain.low, "gain_high": gain.high,
                "t_pvalue": tests.t_pvalue, "wilcoxon_pvalue": tests.wilcoxon_pvalue,
                "wilcoxon_min_pvalue": tests.wilcoxon_min_pvalue,
                "probability_of_improvement": probability_of_improvement(*oriented), "note": tests.note,
            })
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    table["t_pvalue_holm"] = holm(table["t_pvalue"].to_numpy(dtype=float))
    table["wilcoxon_pvalue_holm"] = holm(table["wilcoxon_pvalue"].to_numpy(dtype=float))
    table["significant"] = table["t_pvalue_holm"] < ALPHA
    table.insert(2, "reference", reference)
    return table


COMPARISON_COLUMNS = [
    "model", "task", "n_pairs", "paired_seeds", "gain", "gain_low", "gain_high", "t_pvalue", "wilcoxon_pvalue",
    "wilcoxon_min_pvalue", "probability_of_improvement", "note",
]


def delta_m_by_model(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Δm (Maninis et al. 2019) of every model against the reference, from the per-task means, in %."""
    means = runs.groupby(["model", "task"])["value"].mean()
    better = runs.groupby("task")["higher_is_better"].first().to_dict()
    ref = means[reference].to_dict()
    return pd.DataFrame([
        {"model": model, "reference": reference, "delta_m_percent": 100 * delta_m(means[model].to_dict(), ref, better)}
        for model in runs["model"].unique()
    ])


def delong_by_seed(records: list[dict], reference: str) -> pd.DataFrame:
    """DeLong's test per seed and binary task, each model's test predictions against the reference's
    on the same rows (same seed); predictions are read beside each record's ``source`` file. A task
    whose test labels hold fewer than two of either class is not tested. Rows: model, task, seed, both
    AUCs, z, p."""
    by_key = {(r["model"], r["seed"]): r for r in records}
    rows = []
    for (model, seed), record in sorted(by_key.items()):
        if model == reference or (reference, seed) not in by_key:
            continue
        pair = (record, by_key[(reference, seed)])
        if not all(_predictions_file(r).is_file() for r in pair):
            continue  # counted as not tested: the table shows k/n over the seeds tested
        own, ref = (_predictions(r) for r in pair)
        for k, task in enumerate(record["tasks"]):
            labelled = own["y"][:, k][~np.isnan(own["y"][:, k])]
            if task["type"] != "binary" or min((labelled == 1).sum(), (labelled == 0).sum()) < 2:
                continue  # DeLong's variance needs two rows of each class (a tiny test split): not tested
            result = delong_test(own["y"][:, k], own["prediction"][:, k], ref["prediction"][:, k])
            rows.append({"model": model, "task": task["name"], "seed": seed, "reference": reference,
                         "auc_model": result.auc_a, "auc_reference": result.auc_b, "z": result.z,
                         "pvalue": result.pvalue})
    return pd.DataFrame(rows)


def _predictions_file(record: dict) -> Path:
    return Path(record["source"]).with_name(f"seed_{record['seed']}.test_predictions.npz")


def _predictions(record: dict) -> dict[str, np.ndarray]:
    """A record's saved test predictions; a file cut short or damaged is refused, naming it."""
    path = _predictions_file(record)
    try:
        with np.load(path) as saved:
            return {"prediction": saved["prediction"], "y": saved["y"]}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise RecordError(f"predictions file {path} cannot be read ({type(error).__name__}: {error}); it was cut "
                          f"short or damaged. Train that seed again: delete it and {record['source']}, then rerun "
                          f"`python -m replication train` with the same --out") from None


def delong_summary(delong: pd.DataFrame) -> pd.DataFrame:
    """Per model and task: seeds tested and how many show a significant AUC difference (p < ALPHA)."""
    if delong.empty:
        return pd.DataFrame(columns=["model", "task", "delong_seeds", "delong_significant_seeds", "delong_median_pvalue"])
    return delong.groupby(["model", "task"], sort=False).agg(
        delong_seeds=("pvalue", "size"), delong_significant_seeds=("pvalue", lambda p: int((p < ALPHA).sum())),
        delong_median_pvalue=("pvalue", "median"),
    ).reset_index()
