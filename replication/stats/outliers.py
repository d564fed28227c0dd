"""Runs that ended far from their model's other seeds: the modified z-score (Iglewicz & Hoaglin 1993).

``z_i = 0.6745 (x_i - median) / MAD`` with MAD the median absolute deviation; 0.6745 makes the MAD
a consistent estimate of the standard deviation for normal data, and |z| > 3.5 is Iglewicz and
Hoaglin's recommended cut for "potential outlier". Median and MAD, unlike mean and std, are not
moved by the very runs they should find, so one stuck seed among ten cannot hide itself.
"""

from __future__ import annotations

import numpy as np

from replication.stats.intervals import as_values

Z_CUT = 3.5
CONSISTENCY = 0.6745


def modified_z(values: np.ndarray) -> np.ndarray:
    """The modified z-score of every value (at least 2, finite). When more than half the values are
    equal (MAD 0), values equal to the median get 0 and the others +-inf."""
    x = as_values(values, "values")
    median = np.median(x)
    mad = np.median(np.abs(x - median))
    if mad == 0:
        with np.errstate(divide="ignore"):
            return np.where(x == median, 0.0, np.sign(x - median) * np.inf)
    return CONSISTENCY * (x - median) / mad


def flag_worse(scores: np.ndarray, cut: float = Z_CUT, min_runs: int = 5) -> np.ndarray:
    """Boolean mask of the runs whose ``scores`` (larger is better) lie more than ``cut`` modified
    z-scores BELOW the median: failed or stuck runs, not lucky ones. Fewer than ``min_runs`` runs
    flag nothing (a median of three says little about what is far)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size < max(2, min_runs):
        return np.zeros(x.size, dtype=bool)
    return modified_z(x) < -cut
