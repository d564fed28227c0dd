"""Equivalence and planning for paired differences over seeds: TOST and the seeds a test needs.

- :func:`tost`: Schuirmann's two one-sided t-tests (1987) of ``|mean| < margin``; equivalence at
  level alpha holds exactly when the ``1 - 2 alpha`` t interval lies inside ``(-margin, margin)``.
- :func:`seeds_needed`: the smallest number of pairs for which a two-sided paired t-test at level
  alpha has the wanted power against a true mean difference ``effect`` with standard deviation
  ``std`` (the noncentral t distribution, as G*Power and statsmodels' ``TTestPower`` compute it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from replication.stats.intervals import as_values

MAX_SEEDS = 100_000  # beyond this a test "cannot decide at this variance" for any practical budget


@dataclass(frozen=True)
class TostResult:
    """``pvalue`` = the larger of the two one-sided p-values (equivalence when <= alpha)."""

    margin: float
    mean: float
    p_lower: float  # H0: mean <= -margin
    p_upper: float  # H0: mean >= +margin

    @property
    def pvalue(self) -> float:
        return max(self.p_lower, self.p_upper)


def tost(differences: np.ndarray, margin: float) -> TostResult:
    """TOST of the mean of paired ``differences`` (at least 2, finite) against ``(-margin, margin)``."""
    d = as_values(differences, "differences")
    if not margin > 0:
        raise ValueError(f"margin must be > 0; got {margin!r}")
    n = d.size
    mean = float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(n))
    if se == 0.0:
        inside = -margin < mean < margin
        p = 0.0 if inside else 1.0
        return TostResult(margin, mean, p, p)
    p_lower = float(stats.t.sf((mean + margin) / se, n - 1))
    p_upper = float(stats.t.cdf((mean - margin) / se, n - 1))
    return TostResult(margin, mean, p_lower, p_upper)


def power(n: int, effect: float, std: float, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` with ``n`` pairs (noncentral t)."""
    if n < 2:
        return 0.0
    df = n - 1
    nc = abs(effect) / std * np.sqrt(n)
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc))


def seeds_needed(effect: float, std: float, alpha: float = 0.05, target: float = 0.8) -> int | None:
    """Smallest ``n >= 2`` with :func:`power` >= ``target``; None when no effect can be detected
    (``effect`` 0) or more than :data:`MAX_SEEDS` would be needed."""
    if not std > 0:
        raise ValueError(f"std must be > 0; got {std!r}")
    if effect == 0 or power(MAX_SEEDS, effect, std, alpha) < target:
        return None
    low, high = 2, 2
    while power(high, effect, std, alpha) < target:
        low, high = high, high * 2
    while low < high:  # power grows with n: bisect for the first n that reaches the target
        mid = (low + high) // 2
        if power(mid, effect, std, alpha) >= target:
            high = mid
        else:
            low = mid + 1
    return low
