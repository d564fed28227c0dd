"""Tests for ``replication.stats``: intervals, MTL gain, Δm, paired tests, DeLong, Holm, P(improvement).

Reference values are worked by hand or taken from SciPy on the same inputs; DeLong is checked
against a plain O(m·n) implementation of the original DeLong et al. (1988) formulas, by the
uniformity of its p-values under the null, and against pROC's published results on its aSAH data
(tests/data/asah.csv).
"""

from __future__ import annotations

import csv
import sys
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from replication.metrics import auc
from replication.stats import (
    Interval, bootstrap_interval, delong_covariance, delong_test, delong_variance, delta_m, holm,
    mtl_gain, paired_tests, probability_of_improvement, t_interval, wilcoxon_min_pvalue,
)

# --------------------------------------------------------------------------------------------------
# Intervals


def test_t_interval_hand_computed() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    s = np.sqrt(((values - 2.5) ** 2).sum() / 3)  # sample std, ddof = 1
    half = stats.t.ppf(0.975, df=3) * s / np.sqrt(4)
    result = t_interval(values)
    assert result.estimate == pytest.approx(2.5, abs=1e-15)
    assert result.low == pytest.approx(2.5 - half, abs=1e-12)
    assert result.high == pytest.approx(2.5 + half, abs=1e-12)
    assert half == pytest.approx(2.054260, abs=1e-6)  # 3.182446 * 1.290994 / 2
    assert result.low <= result.estimate <= result.high


def test_t_interval_single_value_has_nan_bounds() -> None:
    result = t_interval([0.93])
    assert result.estimate == 0.93 and np.isnan(result.low) and np.isnan(result.high)


@pytest.mark.parametrize("bad", [[], [1.0, np.nan], [[1.0, 2.0]]])
def test_t_interval_rejects_bad_input(bad) -> None:
    with pytest.raises(ValueError):
        t_interval(bad)


def test_t_interval_rejects_bad_confidence() -> None:
    with pytest.raises(ValueError, match="confidence"):
        t_interval([1.0, 2.0], confidence=95)


def test_bootstrap_reproducible_and_contains_estimate() -> None:
    values = np.array([0.9413, 0.9448, 0.9391, 0.9476, 0.9432, 0.9405, 0.9467, 0.9459])
    first = bootstrap_interval(values, random_state=7)
    assert first == bootstrap_interval(values, random_state=7)
    assert first == bootstrap_interval(values, random_state=np.random.default_rng(7))
    assert first != bootstrap_interval(values, random_state=8)
    assert isinstance(first, Interval)
    assert first.estimate == pytest.approx(values.mean(), abs=1e-15)
    assert first.low < first.estimate < first.high
    assert values.min() <= first.low and first.high <= values.max()


def test_bootstrap_narrower_at_lower_confidence() -> None:
    values = np.arange(10.0)
    wide = bootstrap_interval(values, confidence=0.95, random_state=1)
    narrow = bootstrap_interval(values, confidence=0.50, random_state=1)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_bootstrap_agrees_with_loop_over_resamples() -> None:
    values = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    rng = np.random.default_rng(3)
    idx = rng.integers(0, values.size, size=(500, values.size))
    means = np.array([values[row].mean() for row in idx])
    expected = np.quantile(means, [0.05, 0.95])
    result = bootstrap_interval(values, confidence=0.90, n_resamples=500, random_state=3)
    assert (result.low, result.high) == (pytest.approx(expected[0], abs=1e-12), pytest.approx(expected[1], abs=1e-12))


def test_bootstrap_needs_explicit_random_state() -> None:
    with pytest.raises(ValueError, match="random_state"):
        bootstrap_interval([1.0, 2.0], random_state=None)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_interval([1.0, 2.0], n_resamples=0)


# --------------------------------------------------------------------------------------------------
# MTL gain, Δm, probability of improvement


def test_mtl_gain_auc_direction_paired() -> None:
    model = np.array([0.950, 0.948, 0.952])
    reference = np.array([0.945, 0.946, 0.947])
    per_seed = model - reference  # 0.005, 0.002, 0.005
    gain = mtl_gain(model, reference, higher_is_better=True)
    expected = t_interval(per_seed)
    assert gain.estimate == pytest.approx(0.004, abs=1e-12)
    assert (gain.low, gain.high) == (pytest.approx(expected.low, abs=1e-15), pytest.approx(expected.high, abs=1e-15))
    assert gain.differences == pytest.approx(tuple(per_seed), abs=1e-15)
    assert gain.estimate > 0


def test_mtl_gain_mse_direction() -> None:
    model = np.array([0.40, 0.42])
    reference = np.array([0.50, 0.49])
    gain = mtl_gain(model, reference, higher_is_better=False)
    assert gain.estimate == pytest.approx(0.085, abs=1e-12)  # reference - model: 0.10, 0.07
    assert gain.differences == pytest.approx((0.10, 0.07), abs=1e-12)
    worse = mtl_gain(reference, model, higher_is_better=False)
    assert worse.estimate == pytest.approx(-0.085, abs=1e-12)


def test_mtl_gain_paired_needs_equal_lengths() -> None:
    with pytest.raises(ValueError, match="aligned by seed"):
        mtl_gain([0.9, 0.91, 0.92], [0.9, 0.91], higher_is_better=True)


def test_mtl_gain_unpaired_welch() -> None:
    model = np.array([0.95, 0.96, 0.94, 0.97])
    reference = np.array([0.93, 0.91, 0.92])
    gain = mtl_gain(model, reference, higher_is_better=True, paired=False)
    vm, vr = model.var(ddof=1) / 4, reference.var(ddof=1) / 3
    df = (vm + vr) ** 2 / (vm**2 / 3 + vr**2 / 2)
    half = stats.t.ppf(0.975, df) * np.sqrt(vm + vr)
    assert gain.estimate == pytest.approx(0.955 - 0.92, abs=1e-12)
    assert gain.low == pytest.approx(0.035 - half, abs=1e-12) and gain.high == pytest.approx(0.035 + half, abs=1e-12)
    # SciPy's Welch test, inverted, gives the same standard error.
    welch = stats.ttest_ind(model, reference, equal_var=False)
    assert welch.statistic == pytest.approx(0.035 / np.sqrt(vm + vr), rel=1e-12)
    assert float(welch.df) == pytest.approx(df, rel=1e-12)


def test_delta_m_hand_worked() -> None:
    model = {"ctr": 0.80, "watch": 0.90}
    reference = {"ctr": 0.75, "watch": 1.00}
    higher = {"ctr": True, "watch": False}
    # ctr: +(0.80 - 0.75)/0.75 = +0.0666...; watch (MSE): -(0.90 - 1.00)/1.00 = +0.10
    assert delta_m(model, reference, higher) == pytest.approx((0.05 / 0.75 + 0.10) / 2, abs=1e-15)
    assert delta_m(reference, reference, higher) == 0.0
    # Worse on both tasks: negative.
    worse = delta_m({"ctr": 0.70, "watch": 1.10}, reference, higher)
    assert worse == pytest.approx((-0.05 / 0.75 - 0.10) / 2, abs=1e-15)


def test_delta_m_rejects_mismatched_tasks() -> None:
    with pytest.raises(ValueError, match="same tasks"):
        delta_m({"a": 1.0}, {"b": 1.0}, {"a": True, "b": True})
    with pytest.raises(ValueError, match="direction"):
        delta_m({"a": 1.0}, {"a": 1.0}, {})
    with pytest.raises(ValueError, match="positive"):
        delta_m({"a": 1.0}, {"a": 0.0}, {"a": True})


def test_probability_of_improvement_hand_examples() -> None:
    # x=[1,2,3] vs y=[2,2,2]: 1 loses 3 times (0), 2 ties 3 times (3 x 0.5), 3 wins 3 times (3) -> 4.5 / 9
    assert probability_of_improvement([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]) == pytest.approx(0.5, abs=1e-15)
    # x=[3,5] vs y=[1,3,4]: 3 -> 1 + 0.5 + 0; 5 -> 3 wins -> 4.5 / 6
    assert probability_of_improvement([3.0, 5.0], [1.0, 3.0, 4.0]) == pytest.approx(0.75, abs=1e-15)
    assert probability_of_improvement([1.0, 3.0, 4.0], [3.0, 5.0]) == pytest.approx(0.25, abs=1e-15)
    assert probability_of_improvement([5.0, 6.0], [1.0, 2.0, 4.9]) == 1.0
    assert probability_of_improvement([1.0, 2.0], [5.0, 6.0]) == 0.0
    same = np.array([0.3, 0.1, 0.7])
    assert probability_of_improvement(same, same) == 0.5


def test_probability_of_improvement_averages_tasks() -> None:
    x = np.array([[3.0, 1.0], [5.0, 2.0]])  # runs x tasks
    y = np.array([[1.0, 5.0], [3.0, 6.0], [4.0, 7.0]])
    # task 0: 0.75 (above); task 1: every y beats every x -> 0
    assert probability_of_improvement(x, y) == pytest.approx(0.375, abs=1e-15)
    with pytest.raises(ValueError, match="tasks"):
        probability_of_improvement(x, y[:, :1])


def test_probability_of_improvement_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(11)
    x, y = rng.integers(0, 5, size=(7, 3)).astype(float), rng.integers(0, 5, size=(4, 3)).astype(float)
    per_task = [
        np.mean((x[:, t, None] > y[None, :, t]) + 0.5 * (x[:, t, None] == y[None, :, t])) for t in range(3)
    ]
    assert probability_of_improvement(x, y) == pytest.approx(np.mean(per_task), abs=1e-14)


# --------------------------------------------------------------------------------------------------
# Paired tests


def test_paired_tests_match_scipy_exact() -> None:
    a = np.array([0.951, 0.948, 0.955, 0.949, 0.953, 0.950, 0.957, 0.946])
    b = np.array([0.947, 0.949, 0.9511, 0.9437, 0.9515, 0.9442, 0.9497, 0.9468])
    result = paired_tests(a, b)
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b, method="exact")
    assert result.n == 8 and result.n_nonzero == 8 and result.wilcoxon_method == "exact"
    assert result.t_statistic == t.statistic and result.t_pvalue == t.pvalue
    assert result.wilcoxon_statistic == w.statistic and result.wilcoxon_pvalue == w.pvalue
    assert result.mean_difference == pytest.approx(np.mean(a - b), abs=1e-15)
    assert "exact" in result.note and "cannot reach" not in result.note


def test_paired_tests_ties_use_normal_approximation() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    b = np.array([0.0, 1.0, 1.0, 6.0, 5.0, 4.0, 4.0])  # differences 1, 1, 2, -2, 0, 2, 3: ties and a zero
    result = paired_tests(a, b)
    w = stats.wilcoxon(a - b, zero_method="wilcox", correction=False, method="approx")
    assert result.wilcoxon_method == "normal approximation" and result.n_nonzero == 6
    assert result.wilcoxon_statistic == w.statistic and result.wilcoxon_pvalue == w.pvalue
    assert "normal approximation" in result.note and "zero" in result.note and "tied" in result.note


def test_wilcoxon_floor_with_five_pairs() -> None:
    assert wilcoxon_min_pvalue(5) == 0.0625
    assert wilcoxon_min_pvalue(10) == 2 / 1024
    assert wilcoxon_min_pvalue(0) == 1.0 and wilcoxon_min_pvalue(1) == 1.0
    a = np.array([0.95, 0.96, 0.97, 0.98, 0.99])
    b = a - np.array([0.01, 0.02, 0.03, 0.04, 0.05])  # model better on every seed
    result = paired_tests(a, b)
    assert result.wilcoxon_method == "exact"
    assert result.wilcoxon_pvalue == pytest.approx(0.0625, abs=1e-15)  # the floor is reached
    assert result.wilcoxon_min_pvalue == 0.0625
    assert not result.wilcoxon_can_reach(0.05) and not result.wilcoxon_can_reach_005 and result.wilcoxon_can_reach(0.07)
    assert "cannot reach p <= 0.05" in result.note and "0.0625" in result.note


def test_wilcoxon_floor_with_ten_pairs() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(size=10)
    result = paired_tests(a + np.linspace(0.1, 1.0, 10), a)
    assert result.wilcoxon_min_pvalue == 2 / 1024 and result.wilcoxon_can_reach_005
    assert result.wilcoxon_pvalue == pytest.approx(2 / 1024, abs=1e-15)
    assert "cannot reach" not in result.note


def test_paired_tests_all_zero_differences() -> None:
    a = np.array([0.9, 0.8, 0.7])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_tests(a, a.copy())
    assert result.t_pvalue == 1.0 and result.wilcoxon_pvalue == 1.0
    assert result.t_statistic == 0.0 and result.mean_difference == 0.0
    assert "zero" in result.note


def test_paired_tests_constant_difference_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_tests([2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0])
    assert result.t_statistic == np.inf and result.t_pvalue == 0.0


@pytest.mark.parametrize(("a", "b", "match"), [([1.0, 2.0], [1.0], "aligned"), ([1.0], [2.0], "at least 2")])
def test_paired_tests_bad_input(a, b, match) -> None:
    with pytest.raises(ValueError, match=match):
        paired_tests(a, b)


# --------------------------------------------------------------------------------------------------
# Holm


def test_holm_hand_worked() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02], rtol=0, atol=1e-15)


def test_holm_caps_at_one_and_passes_nan_through() -> None:
    adjusted = holm([0.01, np.nan, 0.04, 0.03, 0.005, 0.6])
    # family of 5: 0.005*5, 0.01*4, 0.03*3, 0.04*2, 0.6*1 -> 0.025, 0.04, 0.09, 0.09 (running max), 0.6
    np.testing.assert_allclose(adjusted, [0.04, np.nan, 0.09, 0.09, 0.025, 0.6], rtol=0, atol=1e-15)
    assert holm([0.5, 0.7]).tolist() == [1.0, 1.0]
    assert np.isnan(holm([np.nan])).all() and holm([]).size == 0


def test_holm_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.2])


# --------------------------------------------------------------------------------------------------
# DeLong


def delong_1988_covariance(y: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) written plainly: O(m·n) placement values, then sample covariances."""
    keep = ~np.isnan(y)
    y = y[keep]
    pos, neg = y == 1, y == 0
    m, n = pos.sum(), neg.sum()
    v10, v01 = [], []
    for s in scores:
        s = s[keep]
        x, z = s[pos], s[neg]
        psi = (x[:, None] > z[None, :]) * 1.0 + (x[:, None] == z[None, :]) * 0.5  # (m, n)
        v10.append(psi.mean(axis=1))  # V10(X_i) = (1/n) sum_j psi(X_i, Y_j)
        v01.append(psi.mean(axis=0))  # V01(Y_j) = (1/m) sum_i psi(X_i, Y_j)
    v10, v01 = np.array(v10), np.array(v01)
    aucs = v10.mean(axis=1)
    k = len(scores)
    s10, s01 = np.empty((k, k)), np.empty((k, k))
    for r in range(k):
        for t in range(k):
            s10[r, t] = ((v10[r] - aucs[r]) * (v10[t] - aucs[t])).sum() / (m - 1)
            s01[r, t] = ((v01[r] - aucs[r]) * (v01[t] - aucs[t])).sum() / (n - 1)
    return aucs, s10 / m + s01 / n


def tied_scores(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = rng.integers(0, 2, size=size).astype(float)
    a = np.round(y + rng.normal(size=size), 1)  # rounding makes ties, within and across classes
    b = rng.integers(0, 4, size=size) + 0.5 * y  # heavy ties
    return y, a, b


@pytest.mark.parametrize("seed", range(5))
def test_delong_matches_plain_1988_formulas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y, a, b = tied_scores(rng, 60)
    y[rng.choice(60, size=5, replace=False)] = np.nan  # missing labels are ignored
    aucs, cov = delong_covariance(y, a, b)
    ref_aucs, ref_cov = delong_1988_covariance(y, [a, b])
    np.testing.assert_allclose(aucs, ref_aucs, rtol=0, atol=1e-14)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-12, atol=1e-16)
    expected_var = ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1]
    assert delong_variance(y, a, b) == pytest.approx(expected_var, rel=1e-10, abs=1e-16)
    result = delong_test(y, a, b)
    assert result.auc_a == auc(y, a) and result.auc_b == auc(y, b)
    assert result.auc_a == pytest.approx(ref_aucs[0], abs=1e-14)
    z = (ref_aucs[0] - ref_aucs[1]) / np.sqrt(expected_var)
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.pvalue == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert result.n_positive + result.n_negative == 55


def test_delong_three_scores_covariance() -> None:
    rng = np.random.default_rng(42)
    y, a, b = tied_scores(rng, 40)
    c = a + rng.normal(size=40)
    _, cov = delong_covariance(y, a, b, c)
    _, ref = delong_1988_covariance(y, [a, b, c])
    np.testing.assert_allclose(cov, ref, rtol=1e-12, atol=1e-16)


def test_delong_identical_scores() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=50).astype(float)
    s = y + rng.normal(size=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = delong_test(y, s, s.copy())
    assert result.variance == 0.0 and result.z == 0.0 and result.pvalue == 1.0 and result.difference == 0.0
    # A monotone transform orders the rows the same way: same AUC, zero variance.
    assert delong_test(y, s, np.exp(s)).pvalue == 1.0


def test_delong_detects_a_clearly_better_score() -> None:
    rng = np.random.default_rng(1)
    latent = rng.normal(size=400)
    y = (latent + rng.normal(scale=0.5, size=400) > 0).astype(float)
    result = delong_test(y, latent + rng.normal(scale=0.3, size=400), latent + rng.normal(scale=2.0, size=400))
    assert result.difference > 0 and result.z > 3 and result.pvalue < 0.01


def test_delong_null_pvalues_roughly_uniform() -> None:
    rng = np.random.default_rng(2024)
    pvalues = np.empty(300)
    for i in range(300):
        latent = rng.normal(size=150)
        y = (latent + rng.normal(size=150) > 0).astype(float)
        pvalues[i] = delong_test(y, latent + rng.normal(size=150), latent + rng.normal(size=150)).pvalue
    assert 0.02 <= np.mean(pvalues < 0.05) <= 0.09
    assert 0.15 <= np.mean(pvalues < 0.25) <= 0.35
    assert stats.kstest(pvalues, "uniform").pvalue > 0.01


# A published worked example: the aSAH data of the pROC R package (Turck et al. 2010, Intensive Care
# Med 36:107-115; 113 patients, 41 Poor outcomes = cases, 72 Good = controls) and pROC's expected
# DeLong results in its own test suite, github.com/xrobin/pROC:
#   tests/testthat/helper-deLongPlacementsCpp-expected.R (commit 13bdf2cf3cb3b941e890a57742999fa37e3f66fa),
#     theta = AUC: wfns 0.823678861788618, ndka 0.611957994579946, s100b 0.731368563685637;
#   tests/testthat/test-var.R (commit 2bacb1948de0402f388bcf09e13e4e4b609ca8d9), var(roc):
#     wfns 0.00146991470882363, ndka 0.0031908105493913, s100b 0.00266868245717244;
#   tests/testthat/test-cov.R (commit 06048aebd0c557219f2e28e78d7edc2d51a5ca54), cov(roc1, roc2):
#     wfns-ndka -0.000532967856762438, ndka-s100b -0.000756164938056579, s100b-wfns 0.00119615567376754;
#   tests/testthat/test-roc.test.R (commit 0bc764d2702cfea130a80dd41ea43fd21d169752), roc.test(roc1, roc2)
#     with the default method, "DeLong's test for two correlated ROC curves": statistic Z, two-sided
#     p-value and the 95% interval of AUC1 - AUC2 (ASAH_PAIRS below).
# pROC's curves are roc(aSAH$outcome, aSAH$<marker>): "Poor" is the case level and, for all three
# markers, higher values point to a case (direction "<"); wfns, an ordered factor, enters as its grade
# 1-5. The values are kept as printed (strings) so the tolerance is the printed precision.
ASAH_CSV = Path(__file__).parent / "data" / "asah.csv"
ASAH_AUC = {"wfns": "0.823678861788618", "ndka": "0.611957994579946", "s100b": "0.731368563685637"}
ASAH_COV = {
    ("wfns", "wfns"): "0.00146991470882363", ("ndka", "ndka"): "0.0031908105493913",
    ("s100b", "s100b"): "0.00266868245717244", ("wfns", "ndka"): "-0.000532967856762438",
    ("ndka", "s100b"): "-0.000756164938056579", ("s100b", "wfns"): "0.00119615567376754",
}
ASAH_PAIRS = [  # roc1, roc2, Z, p-value, conf.int low, conf.int high
    ("wfns", "s100b", "2.20898359144091", "0.0271757822291882", "0.0104061769564846", "0.174214419249478"),
    ("wfns", "ndka", "2.79777591868904", "0.00514557970691098", "0.0634011709339876", "0.3600405634833566"),
    ("ndka", "s100b", "-1.39077002573558", "0.164295175223054", "-0.2876917446341914", "0.0488706064228094"),
]


def asah() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels (1 = Poor outcome) and the three markers of tests/data/asah.csv, in file order."""
    with open(ASAH_CSV, encoding="utf-8") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    y = np.array([{"Poor": 1.0, "Good": 0.0}[row["outcome"]] for row in rows])
    return y, {name: np.array([float(row[name]) for row in rows]) for name in ("wfns", "ndka", "s100b")}


def assert_printed(value: float, printed: str) -> None:
    """``value`` rounds to ``printed``: within half a unit of its last printed digit.

    pROC prints 15 significant digits, as many as a double holds, so a few units in the last place
    of our own floating-point arithmetic are allowed on top (16 ulps); p-values amplify the relative
    error of z by about z·φ(z)/Φ(-z) (≈ 9 at z = 2.8). Computed in exact rational arithmetic, every
    value here rounds to the printed one; in doubles three of them miss the half unit alone by
    1.5e-17 to 5.6e-17 (3e-15 relative at most).
    """
    half_unit = 0.5 * 10.0 ** Decimal(printed).as_tuple().exponent
    tolerance = half_unit + 16 * np.finfo(float).eps * abs(float(printed))
    assert abs(value - float(printed)) <= tolerance, f"{value!r} does not round to the printed {printed}"


def test_delong_asah_fixture_matches_the_published_data_set() -> None:
    y, markers = asah()
    assert y.size == 113 and int(y.sum()) == 41 and int((y == 0).sum()) == 72
    assert all(values.size == 113 and np.all(np.isfinite(values)) for values in markers.values())
    assert set(np.unique(markers["wfns"])) == {1.0, 2.0, 3.0, 4.0, 5.0}
    # head(aSAH) as pROC prints it: outcome Good Good Good Good Poor Poor, wfns 1 1 1 1 3 2, ...
    np.testing.assert_array_equal(y[:6], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(markers["s100b"][:6], [0.13, 0.14, 0.10, 0.04, 0.13, 0.10])
    np.testing.assert_array_equal(markers["ndka"][:6], [3.01, 8.54, 8.09, 10.42, 17.40, 12.75])


def test_delong_covariance_matches_proc_on_asah() -> None:
    y, markers = asah()
    names = ["wfns", "ndka", "s100b"]
    aucs, cov = delong_covariance(y, *(markers[name] for name in names))
    for i, name in enumerate(names):
        assert_printed(aucs[i], ASAH_AUC[name])
        assert_printed(auc(y, markers[name]), ASAH_AUC[name])
    for (a, b), printed in ASAH_COV.items():
        assert_printed(cov[names.index(a), names.index(b)], printed)
        assert_printed(cov[names.index(b), names.index(a)], printed)


@pytest.mark.parametrize(("first", "second", "z", "pvalue", "low", "high"), ASAH_PAIRS)
def test_delong_test_matches_proc_roc_test_on_asah(first, second, z, pvalue, low, high) -> None:
    y, markers = asah()
    result = delong_test(y, markers[first], markers[second])
    assert (result.n_positive, result.n_negative) == (41, 72)
    assert_printed(result.auc_a, ASAH_AUC[first])
    assert_printed(result.auc_b, ASAH_AUC[second])
    assert_printed(result.z, z)
    assert_printed(result.pvalue, pvalue)
    # pROC's conf.int: AUC1 - AUC2 -/+ qnorm(0.975) * sqrt(DeLong variance of the difference).
    half_width = stats.norm.ppf(0.975) * np.sqrt(result.variance)
    assert_printed(result.difference - half_width, low)
    assert_printed(result.difference + half_width, high)
    assert delong_variance(y, markers[first], markers[second]) == result.variance
    swapped = delong_test(y, markers[second], markers[first])
    assert swapped.z == pytest.approx(-result.z, rel=1e-12)
    assert swapped.pvalue == pytest.approx(result.pvalue, rel=1e-12)


@pytest.mark.parametrize(
    ("y", "a", "b", "match"),
    [
        ([0, 1, 0, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4], "one value per label"),
        ([0, 1, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], "at least 2"),
        ([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], "labels"),
        ([0, 1, 0, 1], [0.1, np.nan, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], "finite"),
    ],
)
def test_delong_bad_input(y, a, b, match) -> None:
    with pytest.raises(ValueError, match=match):
        delong_test(np.array(y, dtype=float), np.array(a), np.array(b))


def test_stats_layer_does_not_import_torch() -> None:
    import replication.stats as stats_layer

    for module in ("delong", "gains", "intervals", "multiple", "paired"):
        source = getattr(stats_layer, module).__file__
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
        assert "import torch" not in text and "from torch" not in text, source
    assert "replication.stats" in sys.modules
