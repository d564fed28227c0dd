"""Verdicts on the papers' claims, computed from the statistics (never written by hand).

A claim that one model beats another is *reproduced* when the paired gain is positive and
significant, *not reproduced* when it is negative and significant, *inconclusive* otherwise. The
synthetic claims are checked on each paper's own set of correlations, from the sweep table's means.
Used by the sweep's findings (``results/synthetic_sweep.md``) and by ``paper_figures/REPORT.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, PARTLY, NOT_ASSESSED = (
    "reproduced", "not reproduced", "inconclusive", "partly reproduced", "not assessed")
# The correlations each paper plots (PAPER.md): the synthetic claims are checked on each set separately.
PAPER_CORRELATIONS = {"PLE Fig. 7": (0.2, 0.4, 0.5, 0.75, 1.0), "MMoE Figs. 3-4": (0.5, 0.9, 1.0)}
HARD_SHARING, MMOE, PLE = "shared_bottom", "mmoe", "ple"


@dataclass(frozen=True)
class Verdict:
    claim: str
    evidence: str
    verdict: str


def verdict(gain: float, significant: bool) -> str:
    """A claim that a gain is positive: reproduced if it is positive and significant, not reproduced
    if it is negative and significant, inconclusive otherwise."""
    if significant and gain > 0:
        return REPRODUCED
    if significant and gain < 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def gap_by_correlation(sweep: pd.DataFrame, correlations: Sequence[float]) -> pd.DataFrame:
    """Per correlation: Hard Sharing's test metric minus MMoE's, both averaged over tasks and seeds
    (positive: MMoE is better); with the same seeds on both sides, the mean of the per-seed gaps."""
    here = sweep[sweep["correlation"].isin(correlations) & sweep["model"].isin([HARD_SHARING, MMOE])]
    means = here.pivot_table(index="correlation", columns="model", values="mean", aggfunc="mean")
    if means.shape[1] < 2:
        return pd.DataFrame(columns=["correlation", "gap"])
    gap = (means[HARD_SHARING] - means[MMOE]).dropna()
    return pd.DataFrame({"correlation": gap.index, "gap": gap.to_numpy()})


def gap_trend(gaps: Sequence[float]) -> str:
    """Gaps ordered by increasing correlation: reproduced if the gap grows at every step as the
    correlation falls, partly if it is larger at the lowest than at the highest, else not."""
    steps = np.diff(np.asarray(gaps, dtype=float))
    if np.all(steps < 0):
        return REPRODUCED
    return PARTLY if gaps[0] > gaps[-1] else NOT_REPRODUCED


def synthetic_verdicts(sweep: pd.DataFrame, label: Callable[[str], str] = str) -> list[Verdict]:
    """The synthetic claims, on each paper's correlations, from the sweep table (:mod:`replication.sweep`):
    the Hard Sharing-MMoE gap grows as the correlation falls; PLE has the largest average MTL gain.
    ``label`` turns a model name into the name shown."""
    verdicts = []
    present = set(sweep["correlation"])
    for paper, wanted in PAPER_CORRELATIONS.items():
        correlations = tuple(p for p in wanted if p in present)
        on = f"synthetic; {paper}'s correlations run: {', '.join(f'{p:g}' for p in correlations) or 'none'}"
        gap = gap_by_correlation(sweep, correlations)
        claim = f"Hard Sharing − MMoE test-MSE gap grows as correlation falls ({on})"
        if len(gap) < 2:
            verdicts.append(Verdict(claim, f"needs {HARD_SHARING} and {MMOE} at two or more of these correlations",
                                    NOT_ASSESSED))
        else:
            evidence = "; ".join(f"p = {r.correlation:g}: {r.gap:+.6f}" for r in gap.itertuples(index=False))
            verdicts.append(Verdict(claim, f"mean test MSE, Hard Sharing − MMoE: {evidence}", gap_trend(gap["gap"].tolist())))
        gains = sweep[sweep["correlation"].isin(correlations) & sweep["gain"].notna()]
        mean_gain = gains.groupby("model", observed=True)["gain"].mean().sort_values(ascending=False)
        claim = f"PLE has the largest average MTL gain ({on})"
        if PLE not in mean_gain.index or len(mean_gain) < 2:
            verdicts.append(Verdict(claim, f"needs {PLE} and another MTL model", NOT_ASSESSED))
            continue
        evidence = "mean MTL gain on MSE over correlations and tasks: " + "; ".join(
            f"{label(m)} {g:+.6f}" for m, g in mean_gain.items())
        if MMOE in mean_gain.index and mean_gain[MMOE] > 0:
            evidence += f"; PLE relative to MMoE {100 * (mean_gain[PLE] / mean_gain[MMOE] - 1):+.1f}% (paper: +87.2%)"
        verdicts.append(Verdict(claim, evidence, REPRODUCED if mean_gain.index[0] == PLE else
                                f"{NOT_REPRODUCED} ({label(mean_gain.index[0])} is first)"))
    return verdicts
