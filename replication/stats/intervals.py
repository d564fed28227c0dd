"""Confidence intervals for the mean of a handful of per-seed results.

Two intervals: the Student-t interval (exact under normality, the usual choice for a few seeds)
and the percentile bootstrap (no normality assumption, but it under-covers for very small n; with
5 seeds it is descriptive more than inferential). Both take the values, not files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

# Cap on the elements of one block of bootstrap indices, so memory stays bounded for long inputs.
_BOOTSTRAP_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``.

    ``method`` names how the interval was made (e.g. ``"student-t 95%"``). Bounds are NaN when the
    interval is undefined (a single value), never silently collapsed to the estimate.
    """

    estimate: float
    low: float
    high: float
    method: str


def as_values(values: np.ndarray, name: str = "values") -> np.ndarray:
    """``values`` as a finite 1-D float array with at least one element; ValueError otherwise."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return array


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float strictly between 0 and 1; ValueError otherwise."""
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence}")
    return confidence


def as_generator(random_state: np.random.Generator | int) -> np.random.Generator:
    """A NumPy Generator from an explicit seed or Generator (no hidden global state)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return np.random.default_rng(int(random_state))
    raise ValueError(
        f"random_state must be an int seed or a numpy.random.Generator; got {type(random_state).__name__}"
    )


def t_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    """Mean of ``values`` with the Student-t confidence interval of the mean.

    ``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)`` with ``s`` the sample standard deviation (ddof=1).
    This is the standard interval for a small number of independent runs (seeds); it assumes the
    per-seed values are roughly normal. With one value the interval is undefined: the bounds are
    NaN (not an error), so a one-seed table still has its mean.
    """
    x = as_values(values)
    confidence = check_confidence(confidence)
    method = f"student-t {confidence:.0%}"
    mean = float(np.mean(x))
    n = x.size
    if n == 1:
        return Interval(mean, float("nan"), float("nan"), method)
    half = float(stats.t.ppf(0.5 + confidence / 2, df=n - 1) * np.std(x, ddof=1) / np.sqrt(n))
    return Interval(mean, mean - half, mean + half, method)


def bootstrap_interval(
    values: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    random_state: np.random.Generator | int = 0,
) -> Interval:
    """Mean of ``values`` with a percentile-bootstrap confidence interval (Efron 1979).

    Resamples the values with replacement ``n_resamples`` times, takes each resample's mean, and
    reports the ``(1-c)/2`` and ``(1+c)/2`` quantiles of those means. Vectorised: the resample
    indices are drawn as a matrix (in bounded blocks) rather than in a Python loop. The result
    depends only on the inputs and ``random_state`` (an int seed or a ``numpy.random.Generator``),
    so it reproduces. With one value the bootstrap has nothing to resample: NaN bounds.
    """
    x = as_values(values)
    confidence = check_confidence(confidence)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer; got {n_resamples!r}")
    rng = as_generator(random_state)
    method = f"percentile bootstrap {confidence:.0%} ({int(n_resamples)} resamples)"
    mean = float(np.mean(x))
    n = x.size
    if n == 1:
        return Interval(mean, float("nan"), float("nan"), method)
    block = max(1, _BOOTSTRAP_BLOCK_ELEMENTS // n)
    means = np.empty(int(n_resamples))
    for start in range(0, int(n_resamples), block):
        stop = min(start + block, int(n_resamples))
        means[start:stop] = x[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    low, high = np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(mean, float(low), float(high), method)
