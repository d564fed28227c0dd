"""DeLong's test for two correlated AUCs measured on the same rows.

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of AUCs from their "structural
components" (placement values): for each positive, the fraction of negatives it outscores; for
each negative, the fraction of positives that outscore it (ties count one half). Sun & Xu (2014)
showed these come from mid-ranks: with ``Tz`` the mid-ranks in the pooled sample and ``Tx``/``Ty``
the mid-ranks within the positives/negatives, ``V10_i = (Tz_i - Tx_i) / n`` and
``V01_j = 1 - (Tz_j - Ty_j) / m``, which is O(N log N) instead of the O(m·n) pairwise matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.stats import rankdata

from replication.metrics import auc


@dataclass(frozen=True)
class DeLongResult:
    """Two AUCs on the same rows, their difference ``auc_a - auc_b`` and DeLong's z-test of it.

    ``variance`` is the DeLong estimate of Var(auc_a - auc_b); ``z = difference / sqrt(variance)``;
    ``pvalue`` is two-sided. ``n_positive``/``n_negative`` count the rows used (labelled rows).
    """

    auc_a: float
    auc_b: float
    difference: float
    variance: float
    z: float
    pvalue: float
    n_positive: int
    n_negative: int


def _labelled(y_true: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean positives and a (k, N) score matrix over the rows with a label; ValueError on bad input."""
    y = np.asarray(y_true, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D; got shape {y.shape}")
    arrays = [np.asarray(s, dtype=np.float64) for s in scores]
    if not arrays or any(s.shape != y.shape for s in arrays):
        raise ValueError(
            f"every score must have one value per label; got labels of shape {y.shape} and scores of shapes "
            f"{[s.shape for s in arrays]}"
        )
    matrix = np.stack(arrays)
    keep = ~np.isnan(y)
    y, matrix = y[keep], matrix[:, keep]
    if not np.all((y == 0.0) | (y == 1.0)):
        raise ValueError(f"labels must be 0, 1 or NaN (missing); got {np.unique(y[(y != 0.0) & (y != 1.0)])[:5]}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("scores must be finite on the labelled rows")
    positives = y == 1.0
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos < 2 or n_neg < 2:
        raise ValueError(f"DeLong's variance needs at least 2 positives and 2 negatives; got {n_pos} and {n_neg}")
    return positives, matrix


def _placements(positives: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Structural components V10 (k, m) and V01 (k, n) by the mid-rank identities of Sun & Xu (2014)."""
    pos, neg = matrix[:, positives], matrix[:, ~positives]
    m, n = pos.shape[1], neg.shape[1]
    pooled = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    v10 = (pooled[:, :m] - rankdata(pos, axis=1)) / n
    v01 = 1.0 - (pooled[:, m:] - rankdata(neg, axis=1)) / m
    return v10, v01


def delong_covariance(y_true: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of ``k`` scores on the same rows and DeLong's (k, k) covariance of them.

    ``S = S10 / m + S01 / n`` with ``S10``, ``S01`` the sample covariances (ddof=1) of the
    structural components over the ``m`` positives and ``n`` negatives (DeLong et al. 1988),
    computed in O(k N log N) (Sun & Xu 2014). Rows whose label is NaN are ignored.
    """
    positives, matrix = _labelled(y_true, *scores)
    v10, v01 = _placements(positives, matrix)
    aucs = v10.mean(axis=1)
    covariance = np.atleast_2d(np.cov(v10, ddof=1)) / v10.shape[1] + np.atleast_2d(np.cov(v01, ddof=1)) / v01.shape[1]
    return aucs, covariance


def delong_variance(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> float:
    """DeLong's estimate of Var(AUC_a - AUC_b) for two scores of the same rows (NaN labels ignored).

    Computed as ``Var(V10_a - V10_b) / m + Var(V01_a - V01_b) / n`` (equal to
    ``S_aa + S_bb - 2 S_ab``, but exactly zero when the two scores rank the rows identically).
    """
    positives, matrix = _labelled(y_true, score_a, score_b)
    return _difference_variance(*_placements(positives, matrix))


def _difference_variance(v10: np.ndarray, v01: np.ndarray) -> float:
    """Var(AUC_0 - AUC_1) from the structural components of two scores."""
    return float(np.var(v10[0] - v10[1], ddof=1) / v10.shape[1] + np.var(v01[0] - v01[1], ddof=1) / v01.shape[1])


def delong_test(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray) -> DeLongResult:
    """DeLong's test (DeLong et al. 1988) that two correlated AUCs on the same rows are equal.

    Uses the fast O(N log N) mid-rank algorithm of Sun & Xu (2014) for the variance and
    ``replication.metrics.auc`` for the AUCs. Rows whose label is NaN are ignored. Two-sided
    p-value from the standard normal. Zero variance (the two scores order the rows the same way,
    e.g. identical scores) gives z = 0 and p = 1 when the AUCs are equal; if the AUCs differ with
    zero variance (both scores separate or tie every pair perfectly) z is infinite and p = 0.
    """
    positives, matrix = _labelled(y_true, score_a, score_b)
    labels = positives.astype(np.float64)
    auc_a, auc_b = auc(labels, matrix[0]), auc(labels, matrix[1])
    difference = auc_a - auc_b
    variance = _difference_variance(*_placements(positives, matrix))
    if variance <= 0.0:
        z = 0.0 if difference == 0.0 else float(np.sign(difference) * np.inf)
        pvalue = 1.0 if difference == 0.0 else 0.0
    else:
        z = difference / float(np.sqrt(variance))
        pvalue = float(2.0 * stats.norm.sf(abs(z)))
    return DeLongResult(auc_a, auc_b, float(difference), variance, float(z), pvalue,
                        int(positives.sum()), int((~positives).sum()))
