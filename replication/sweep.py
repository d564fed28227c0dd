"""The synthetic correlation sweep: test MSE and MTL gain per correlation, model and task (PLE Fig. 7,
MMoE Figs. 3-4), beside the PLE paper's approximate bars, and the registry's synthetic claims judged
(:mod:`replication.claims`), with the runs its flagged-run rule finds.

Reads ``RUNS/<data set>/<model>/seed_K.json``, one sub-folder per correlation (each one protocol:
its own data hash). Within a correlation, models are paired with the reference by seed and Holm's
family is that correlation's (model, task) comparisons. Writes ``OUT.csv`` (tidy) and ``OUT.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from replication.aggregate import attach_paper, check_protocol, paper_values, tidy
from replication.compare import ALPHA, compare_to_reference, per_model
from replication.config import ConfigError
from replication.data.synthetic import correlation_of
from replication.claims import claims_markdown, flagged_markdown, judge_claims
from replication.io import write_together
from replication.records import load_records
from replication.verdicts import Settings

def sweep_records(runs_root: Path) -> list[list[dict]]:
    """The finished runs of every correlation under ``runs_root``, one list per data-set folder, each
    of one protocol and synthetic."""
    folders = sorted(d for d in Path(runs_root).iterdir() if d.is_dir()) if Path(runs_root).is_dir() else []
    if not folders:
        raise ConfigError(f"no data-set folders under {runs_root}; train the sweep first (dvc repro)")
    by_folder = []
    for folder in folders:
        records = load_records(folder)
        if check_protocol(records)["dataset"] != "synthetic":
            raise ConfigError(f"{folder} holds {records[0]['dataset']} runs; the sweep reads synthetic ones only")
        by_folder.append(records)
    return by_folder


# A run "still descending" at its selected epoch: its validation MSE there is more than DESCENT_DROP
# (relative) below its value DESCENT_WINDOW epochs earlier, i.e. it still fell by 0.1% an epoch on average.
DESCENT_WINDOW, DESCENT_DROP = 10, 0.01


def still_descending(record: dict, task: str) -> bool:
    """Whether ``task``'s validation MSE was still falling fast when the run's selection picked its
    epoch (:data:`DESCENT_WINDOW`, :data:`DESCENT_DROP`): early stopping ended a run that had not
    converged. False for a run that selected an epoch within the first window."""
    best = record["best_epoch"][task]
    if best <= DESCENT_WINDOW:
        return False
    history = record["history"]
    metric = next(iter(history[best - 1]["validation"][task]))
    before, at = history[best - 1 - DESCENT_WINDOW]["validation"][task][metric], history[best - 1]["validation"][task][metric]
    return (before - at) / abs(at) > DESCENT_DROP


def sweep_runs(by_folder: list[list[dict]]) -> pd.DataFrame:
    """The tidy run table of every correlation (:func:`sweep_records`) with a ``correlation`` column,
    and per run and task whether it was at the epoch cap or still descending when selected."""
    frames = []
    for records in by_folder:
        group = records[0]["task_group"]
        # A run whose selected epoch is the last one allowed was still improving when it stopped.
        at_cap = [r["best_epoch"][t["name"]] >= r["train"]["max_epochs"] for r in records for t in r["tasks"]]
        descending = [still_descending(r, t["name"]) for r in records for t in r["tasks"]]
        frames.append(tidy(records).assign(correlation=correlation_of(group), task_group=group, at_epoch_cap=at_cap,
                                           still_descending=descending))
    runs = pd.concat(frames, ignore_index=True)
    doubled = runs.groupby("correlation")["task_group"].nunique()
    if (doubled > 1).any():
        raise ConfigError(f"correlation(s) {list(doubled[doubled > 1].index)} appear in more than one data set")
    return runs


def sweep_table(runs: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per correlation, model and task: mean, std and seeds of the test metric, the MTL gain against
    ``reference`` paired by seed (95% t interval, Holm-adjusted p, significance), the paper's bar."""
    parts = []
    for (correlation, group), runs_p in runs.groupby(["correlation", "task_group"], sort=True):
        if reference not in set(runs_p["model"]):
            raise ConfigError(f"correlation {correlation:g}: the reference {reference!r} has no runs")
        comparisons = compare_to_reference(runs_p, reference).rename(columns={"t_pvalue_holm": "pvalue_holm"})
        part = per_model(runs_p).merge(
            comparisons[["model", "task", "n_pairs", "gain", "gain_low", "gain_high", "pvalue_holm", "significant"]],
            on=["model", "task"], how="left")
        part["significant"] = part["significant"].astype("boolean").fillna(False).astype(bool)
        counts = (runs_p.groupby(["model", "task"], observed=True)[["at_epoch_cap", "still_descending"]].sum()
                  .astype(int).rename(columns={"at_epoch_cap": "n_at_epoch_cap", "still_descending": "n_still_descending"}))
        part = part.merge(counts.reset_index(), on=["model", "task"], how="left")
        parts.append(attach_paper(part, group).assign(correlation=correlation))
    table = pd.concat(parts, ignore_index=True)
    order = [reference] + sorted(set(table["model"]) - {reference})
    table["model"] = pd.Categorical(table["model"], categories=order, ordered=True)
    table = table.sort_values(["correlation", "model", "task"]).reset_index(drop=True)
    return table[["correlation", *[c for c in table.columns if c != "correlation"]]]


def findings(records: list[dict], settings: Settings) -> tuple[list[str], pd.DataFrame]:
    """The registry's synthetic claims judged on these runs (:func:`replication.claims.judge_claims`),
    and the flagged runs, as Markdown lines; and the flagged runs' table."""
    results, flagged = judge_claims(records, settings)
    synthetic = sorted({r.claim.family for r in results if r.claim.spec.get("data") == "synthetic"})
    lines = claims_markdown(results, families=synthetic)
    lines += ["Flagged runs (validation score far below the model's other seeds at that correlation: a modified "
              f"z-score beyond the cut a cell of healthy runs passes with probability {1 - settings.flag_rate:g}; the "
              "verdicts above say where leaving them out changes one):", "", *flagged_markdown(flagged)]
    return lines, flagged


def flagged_counts(table: pd.DataFrame, flagged: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``n_flagged``: per (correlation, model, task), the seeds flagged there."""
    counts = (flagged.groupby(["correlation", "model", "task"]).size().rename("n_flagged").reset_index()
              if not flagged.empty else pd.DataFrame(columns=["correlation", "model", "task", "n_flagged"]))
    out = table.assign(model=table["model"].astype(str)).merge(
        counts.astype({"correlation": float, "model": str, "task": str}), on=["correlation", "model", "task"], how="left")
    out["n_flagged"] = out["n_flagged"].fillna(0).astype(int)
    out["model"] = pd.Categorical(out["model"], categories=table["model"].cat.categories, ordered=True)
    return out


def to_markdown(table: pd.DataFrame, reference: str, findings_lines: list[str]) -> str:
    _, sources = paper_values()
    paper_cols = [c for c in table.columns if c.startswith("paper_") and c != "paper_note"]
    lines = [
        "# Synthetic data: test MSE and MTL gain by task correlation",
        "",
        "Generated by `python -m replication sweep` from run records; do not edit. Two regression tasks "
        "from the MMoE paper's generator (parameters in each data set's schema.json). Model selection on "
        f"validation only. Mean ± sample std of test MSE over seeds; MTL gain (PLE Eq. 11) = {reference}'s "
        "MSE minus the model's, paired by seed, with its 95% t interval (positive: the model is better); "
        f"`*` = significant at {ALPHA} after Holm's correction over that correlation's (model, task) comparisons. "
        "At cap: seeds whose selected epoch is the last one allowed (`train.max_epochs`), i.e. still improving "
        "when training stopped; one such seed can move a mean by more than the gains between models. "
        f"Descending: seeds whose validation MSE at the selected epoch was still more than {DESCENT_DROP:.0%} below "
        f"its value {DESCENT_WINDOW} epochs earlier, i.e. early stopping (patience `train.patience`) ended a run "
        "that had not converged. "
        "Flagged: seeds the flagged-run rule finds (below); they are in the means, and the findings say "
        "where leaving them out changes a verdict.",
        "",
    ]
    header = ["p", "model", "task", "seeds", "test MSE mean ± std", "MTL gain [95% CI]", "p (Holm)", "at cap",
              "descending", "flagged"]
    header += [c.removeprefix("paper_") + " (paper)" for c in paper_cols]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in table.itertuples(index=False):
        gain = "" if np.isnan(r.gain) else (
            f"{r.gain:+.4f} [{r.gain_low:+.4f}, {r.gain_high:+.4f}]{'*' if r.significant else ''}")
        cells = [f"{r.correlation:g}", str(r.model), r.task, str(r.n_seeds),
                 f"{r.mean:.4f} ± {r.std:.4f}", gain, "" if np.isnan(r.pvalue_holm) else f"{r.pvalue_holm:.3g}",
                 str(r.n_at_epoch_cap) if r.n_at_epoch_cap else "", str(r.n_still_descending) if r.n_still_descending else "",
                 str(r.n_flagged) if r.n_flagged else ""]
        cells += ["" if np.isnan(getattr(r, c)) else f"{getattr(r, c):+.4f}" for c in paper_cols]
        lines.append("| " + " | ".join(cells) + " |")
    used = sorted(s for s in sources if any(c.startswith(f"paper_{s}_") for c in paper_cols))
    lines += ["", "Paper columns (values read off the printed figure, never ours):"]
    lines += [f"- {s}: {sources[s]['citation']} DOI {sources[s]['doi']}" for s in used]
    lines += ["", "## Findings (the claims registry's synthetic claims, judged on these runs)", "", *findings_lines]
    return "\n".join(lines).rstrip() + "\n"


def write_sweep(runs_root: Path, out: Path, reference: str = "single_task", settings: Settings = Settings()) -> pd.DataFrame:
    by_folder = sweep_records(runs_root)
    lines, flagged = findings([r for records in by_folder for r in records], settings)
    table = flagged_counts(sweep_table(sweep_runs(by_folder), reference), flagged)
    write_together({Path(out).with_suffix(".csv"): table.to_csv(index=False, float_format="%.6g"),
                    Path(out).with_suffix(".md"): to_markdown(table, reference, lines)})
    return table
