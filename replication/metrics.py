"""Task metrics over NumPy arrays: AUC for binary tasks, MSE for regression (the papers' choices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import rankdata


def auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties), O(n log n).

    Rows whose label is NaN (missing) are ignored. Raises if only one class is present.
    """
    y_true, score = _observed(y_true, score)
    positives = y_true > 0.5
    n_pos = int(positives.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes; got {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(score)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mse(y_true: np.ndarray, prediction: np.ndarray) -> float:
    """Mean squared error over the rows whose label is observed."""
    y_true, prediction = _observed(y_true, prediction)
    return float(np.mean((y_true.astype(np.float64) - prediction) ** 2))


def _observed(y_true: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if y_true.shape != values.shape:
        raise ValueError(f"labels have shape {y_true.shape} but predictions {values.shape}")
    keep = ~np.isnan(y_true)
    return y_true[keep], values[keep]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool

    def score(self, value: float) -> float:
        """The metric oriented so that larger is better (for model selection)."""
        return value if self.higher_is_better else -value


METRIC_FOR_TASK_TYPE = {
    "binary": Metric("auc", auc, higher_is_better=True),
    "regression": Metric("mse", mse, higher_is_better=False),
}
