"""Tests for ``replication.metrics``: AUC (mid-ranks, NaN labels ignored) and MSE, and their
orientation for model selection."""

from __future__ import annotations

import numpy as np
import pytest

from replication.metrics import METRIC_FOR_TASK_TYPE, auc, mse


def brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + 0.5 P(tie), over every pair."""
    pos, neg = s[y > 0.5], s[y <= 0.5]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


# --------------------------------------------------------------------------------------------------
# AUC


@pytest.mark.parametrize(
    ("y", "s", "expected"),
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
        ([0, 1], [0.2, 0.9], 1.0),
        ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),
        ([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1], 0.0),
        ([1, 0, 0, 0], [0.5, 0.6, 0.4, 0.3], 2 / 3),
        ([0, 1, 1], [0.3, 0.1, 0.5], 0.5),
    ],
)
def test_auc_known_values(y, s, expected) -> None:
    assert auc(np.array(y, dtype=float), np.array(s)) == pytest.approx(expected, abs=1e-15)


def test_auc_ties_count_half() -> None:
    assert auc(np.array([0.0, 1.0]), np.array([0.5, 0.5])) == 0.5
    # One positive tied with one of two negatives, above the other: (1 + 0.5) / 2.
    assert auc(np.array([0.0, 0.0, 1.0]), np.array([0.2, 0.7, 0.7])) == 0.75
    # Every score equal: exactly one half, whatever the labels.
    assert auc(np.array([1, 0, 1, 0, 0], dtype=float), np.full(5, 3.0)) == 0.5


def test_auc_is_invariant_to_monotone_transforms_and_order() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(50) < 0.4).astype(float)
    s = rng.normal(size=50)
    perm = rng.permutation(50)
    base = auc(y, s)
    assert auc(y, np.exp(s) * 3 + 1) == pytest.approx(base, abs=1e-12)
    assert auc(y[perm], s[perm]) == pytest.approx(base, abs=1e-12)
    assert auc(y, -s) == pytest.approx(1 - base, abs=1e-12)
    assert auc(1 - y, s) == pytest.approx(1 - base, abs=1e-12)


def test_auc_accepts_lists_and_integer_labels() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75, abs=1e-15)
    assert isinstance(auc([0, 1], [0.0, 1.0]), float)


def test_auc_ignores_rows_with_nan_labels() -> None:
    y = np.array([0, np.nan, 0, 1, np.nan, 1])
    s = np.array([0.1, 0.99, 0.4, 0.35, 0.0, 0.8])
    assert auc(y, s) == pytest.approx(0.75, abs=1e-15)
    assert auc(y.astype(np.float32), s) == pytest.approx(0.75, abs=1e-15)


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0, 0], [1, np.nan, 1], [np.nan, np.nan, 0]])
def test_auc_needs_both_classes(y) -> None:
    with pytest.raises(ValueError, match="both classes") as caught:
        auc(np.array(y, dtype=float), np.array([0.1, 0.2, 0.3]))
    message = str(caught.value)
    assert "positives" in message and "negatives" in message


def test_auc_reports_class_counts() -> None:
    with pytest.raises(ValueError, match="got 3 positives and 0 negatives"):
        auc(np.ones(3), np.array([0.1, 0.2, 0.3]))


def test_auc_refuses_a_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        auc(np.array([0.0, 1.0, 1.0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="shape"):
        auc(np.array([0.0, 1.0]), np.array([[0.1, 0.2]]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_brute_force_pairwise_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(float)
    s = np.round(rng.random(300) + 0.3 * y, 1)  # rounded: many ties, within and across classes
    assert len(np.unique(s)) < 30
    expected = brute_force_auc(y, s)
    assert 0.5 < expected < 1.0
    assert abs(auc(y, s) - expected) <= 1e-12


# --------------------------------------------------------------------------------------------------
# MSE


def test_mse_known_value() -> None:
    assert mse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 4.0, 0.0])) == pytest.approx(13 / 3, abs=1e-15)
    assert mse(np.array([0.5]), np.array([0.5])) == 0.0


def test_mse_ignores_rows_with_nan_labels() -> None:
    y = np.array([1.0, np.nan, 2.0, np.nan, 3.0])
    pred = np.array([1.0, 100.0, 4.0, -7.0, 0.0])
    assert mse(y, pred) == pytest.approx(13 / 3, abs=1e-15)


def test_mse_uses_float64() -> None:
    y = np.array([1e8 + 1.0], dtype=np.float64)
    pred = np.array([1e8], dtype=np.float64)
    assert mse(y, pred) == 1.0


def test_mse_refuses_a_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        mse(np.zeros(3), np.zeros(4))


# --------------------------------------------------------------------------------------------------
# Orientation for model selection


def test_metric_for_each_task_type() -> None:
    assert set(METRIC_FOR_TASK_TYPE) == {"binary", "regression"}
    binary, regression = METRIC_FOR_TASK_TYPE["binary"], METRIC_FOR_TASK_TYPE["regression"]
    assert binary.name == "auc" and binary.fn is auc and binary.higher_is_better
    assert regression.name == "mse" and regression.fn is mse and not regression.higher_is_better


def test_selection_score_orientation() -> None:
    binary, regression = METRIC_FOR_TASK_TYPE["binary"], METRIC_FOR_TASK_TYPE["regression"]
    assert binary.score(0.8) == 0.8
    assert regression.score(0.25) == -0.25
    # Larger score is better: a lower MSE and a higher AUC both score higher.
    assert regression.score(0.1) > regression.score(0.2)
    assert binary.score(0.9) > binary.score(0.7)
