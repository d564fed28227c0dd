"""Paired tests for two models run on the same seeds: paired t-test and Wilcoxon signed-rank.

With the handful of seeds a replication can afford, the exact Wilcoxon test has a floor: its
smallest two-sided p-value is ``2 / 2**n`` (every difference has the same sign). With 5 pairs
that is 0.0625, so no result can be "significant at 0.05" however large the gain; the result
says so in its ``note`` rather than leaving a reader to wonder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from replication.stats.intervals import as_values

# Largest number of non-zero differences for which the exact Wilcoxon distribution is used.
EXACT_WILCOXON_MAX_N = 50


@dataclass(frozen=True)
class PairedResult:
    """Paired t-test and two-sided Wilcoxon signed-rank test of ``a - b``.

    ``n`` is the number of pairs; ``n_nonzero`` the number with a non-zero difference (the
    Wilcoxon test drops zero differences, Wilcoxon's own convention). ``wilcoxon_method`` is
    ``"exact"``, ``"normal approximation"`` or ``"none"`` (all differences zero).
    ``wilcoxon_min_pvalue`` is the smallest two-sided p-value the exact test can give with
    ``n_nonzero`` differences. ``note`` says which Wilcoxon method was used and why, whether
    0.05 is reachable, and any degenerate case.
    """

    n: int
    n_nonzero: int
    mean_difference: float
    t_statistic: float
    t_pvalue: float
    wilcoxon_statistic: float
    wilcoxon_pvalue: float
    wilcoxon_method: str
    wilcoxon_min_pvalue: float
    note: str

    def wilcoxon_can_reach(self, alpha: float = 0.05) -> bool:
        """Whether the exact Wilcoxon test can reach ``p <= alpha`` with these many non-zero pairs."""
        return self.wilcoxon_min_pvalue <= alpha

    @property
    def wilcoxon_can_reach_005(self) -> bool:
        """``wilcoxon_can_reach(0.05)``."""
        return self.wilcoxon_can_reach(0.05)


def wilcoxon_min_pvalue(n: int) -> float:
    """Smallest attainable two-sided p-value of the exact Wilcoxon signed-rank test with ``n`` pairs.

    Under the null each of the ``2**n`` sign patterns is equally likely; the most extreme
    statistic (all signs equal) has probability ``1 / 2**n`` per side, so the two-sided minimum
    is ``2 / 2**n``, capped at 1. With 5 pairs: 0.0625 (0.05 unreachable); with 6: 0.03125.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    return float(min(1.0, 2.0 / 2.0 ** int(n)))


def paired_tests(a: np.ndarray, b: np.ndarray) -> PairedResult:
    """Paired t-test (``scipy.stats.ttest_rel``) and Wilcoxon signed-rank test of ``a - b``.

    ``a`` and ``b`` are aligned by seed (same length, at least 2 pairs, finite). Both tests are
    two-sided. The Wilcoxon test uses the exact null distribution (``method="exact"``) when no
    difference is zero, the absolute differences have no ties and there are at most
    ``EXACT_WILCOXON_MAX_N`` pairs; otherwise the normal approximation (zeros dropped, tie
    correction of the variance, no continuity correction), which is poor for small ``n``.

    Degenerate cases do not raise and leak no warnings: all differences zero gives statistics 0
    and p-values 1; constant non-zero differences give an infinite t statistic and t p-value 0.
    """
    x = as_values(a, "a")
    y = as_values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired tests need one b per a (aligned by seed); got {x.size} and {y.size} values")
    n = x.size
    if n < 2:
        raise ValueError(f"paired tests need at least 2 pairs; got {n}")
    d = x - y
    nonzero = d[d != 0.0]
    n_nonzero = int(nonzero.size)
    min_p = wilcoxon_min_pvalue(n_nonzero)
    notes: list[str] = []

    if n_nonzero == 0:
        notes.append("all differences are zero: no evidence either way; p-values set to 1")
        return PairedResult(n, 0, 0.0, 0.0, 1.0, 0.0, 1.0, "none", min_p, "; ".join(notes))

    if np.all(d == d[0]):
        t_stat, t_p = float(np.sign(d[0]) * np.inf), 0.0
        notes.append("all differences are equal and non-zero: the t statistic is infinite")
    else:
        t_result = stats.ttest_rel(x, y)
        t_stat, t_p = float(t_result.statistic), float(t_result.pvalue)

    ties = np.unique(np.abs(nonzero)).size < n_nonzero
    if n_nonzero < n or ties or n_nonzero > EXACT_WILCOXON_MAX_N:
        reasons = [r for r, present in (
            (f"{n - n_nonzero} zero difference(s) dropped", n_nonzero < n),
            ("tied absolute differences", ties),
            (f"more than {EXACT_WILCOXON_MAX_N} pairs", n_nonzero > EXACT_WILCOXON_MAX_N),
        ) if present]
        w_method = "normal approximation"
        w_result = stats.wilcoxon(d, zero_method="wilcox", correction=False, method="approx")
        notes.append(f"Wilcoxon: normal approximation ({', '.join(reasons)})")
        if n_nonzero < 10:
            notes.append(f"the normal approximation is poor with {n_nonzero} non-zero pairs")
    else:
        w_method = "exact"
        w_result = stats.wilcoxon(d, method="exact")
        notes.append(f"Wilcoxon: exact distribution ({n_nonzero} pairs, no ties or zeros)")
    if min_p > 0.05:
        notes.append(
            f"with {n_nonzero} non-zero pairs the exact Wilcoxon test cannot reach p <= 0.05 "
            f"(smallest attainable two-sided p = {min_p:.4g})"
        )
    return PairedResult(
        n=n, n_nonzero=n_nonzero, mean_difference=float(np.mean(d)), t_statistic=t_stat, t_pvalue=t_p,
        wilcoxon_statistic=float(w_result.statistic), wilcoxon_pvalue=float(w_result.pvalue),
        wilcoxon_method=w_method, wilcoxon_min_pvalue=min_p, note="; ".join(notes),
    )
