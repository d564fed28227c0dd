"""Runs that ended far from their model's other seeds: the modified z-score (Iglewicz & Hoaglin 1993)
with a cut calibrated to the number of runs.

``z_i = 0.6745 (x_i - median) / MAD`` with MAD the median absolute deviation; 0.6745 makes the MAD
a consistent estimate of the standard deviation for normal data. Median and MAD, unlike mean and
std, are not moved by the very runs they should find, so one stuck seed among ten cannot hide itself.

Iglewicz and Hoaglin's fixed cut |z| > 3.5 is meant for large samples. With ten runs the MAD is
itself noisy, and 6.7% of sets of ten normal values have a value below -3.5 (simulated): over the
hundreds of (model, task, correlation) cells of a sweep that flags dozens of healthy runs. So the
cut is calibrated instead (:func:`calibrated_cut`): for ``n`` runs it is the value that the
smallest modified z-score of ``n`` normal values falls below with probability ``rate``, found by a
seeded simulation (the same cut on every machine). A cell of well-behaved runs then has one flagged
with probability ``rate``; a run stuck far from the others (a failed optimisation) is still found.
"""

from __future__ import annotations

import functools

import numpy as np

from replication.stats.intervals import as_values

CONSISTENCY = 0.6745
DRAWS = 200_000  # simulated sets per calibration: about rate * DRAWS of them lie beyond the cut
CALIBRATION_SEED = 0


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


@functools.lru_cache(maxsize=None)
def calibrated_cut(n: int, rate: float) -> float:
    """The ``rate`` quantile of minus the smallest modified z-score of ``n`` i.i.d. normal values
    (a seeded simulation of :data:`DRAWS` sets): flagging ``z < -cut`` flags a set of ``n`` normal
    values with probability ``rate``."""
    if n < 3 or not 0 < rate < 1:
        raise ValueError(f"calibration needs n >= 3 and 0 < rate < 1; got n={n}, rate={rate}")
    x = np.random.default_rng(CALIBRATION_SEED).standard_normal((DRAWS, n))
    median = np.median(x, axis=1, keepdims=True)
    mad = np.median(np.abs(x - median), axis=1, keepdims=True)
    lowest = (CONSISTENCY * (x - median) / mad).min(axis=1)
    return float(-np.quantile(lowest, rate))


def flag_worse(scores: np.ndarray, rate: float = 0.001, min_runs: int = 5) -> np.ndarray:
    """Boolean mask of the runs whose ``scores`` (larger is better) lie below the median by more than
    :func:`calibrated_cut` modified z-scores: failed or stuck runs, not lucky ones. Fewer than
    ``min_runs`` runs flag nothing (a median of three says little about what is far)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size < max(3, min_runs):
        return np.zeros(x.size, dtype=bool)
    return modified_z(x) < -calibrated_cut(int(x.size), rate)
