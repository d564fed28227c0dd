"""Multiple-comparison adjustment: Holm's step-down procedure.

Comparing several models (or tasks) against a reference makes a family of tests; Holm (1979)
controls the family-wise error rate like Bonferroni but is uniformly more powerful, with no
assumption on the dependence between the tests.
"""

from __future__ import annotations

import numpy as np


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (Holm 1979), in the original order.

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of the
    ``i``-th is ``max_{j <= i} min(1, (m - j + 1) p_(j))``: step-down, monotone in the sorted order,
    capped at 1. Reject a hypothesis at level alpha when its adjusted p-value is <= alpha.

    NaN entries (tests that could not be run) are passed through as NaN and are *not* counted in
    the family size ``m``. Other values must lie in [0, 1]; ValueError otherwise.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D; got shape {p.shape}")
    observed = ~np.isnan(p)
    values = p[observed]
    if np.any((values < 0.0) | (values > 1.0)):
        raise ValueError(f"p-values must lie in [0, 1] (or be NaN); got {values[(values < 0) | (values > 1)]}")
    adjusted = np.full(p.shape, np.nan)
    m = values.size
    if m == 0:
        return adjusted
    order = np.argsort(values, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * values[order])
    stepped = np.empty(m)
    stepped[order] = np.maximum.accumulate(scaled)
    adjusted[observed] = stepped
    return adjusted
