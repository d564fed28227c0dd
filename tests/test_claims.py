"""The claims registry and the verdict rule: each outcome with known numbers, TOST and the power
calculation against textbook and scipy values, the family rule and the flagged-run rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.aggregate import paper_values
from replication.claims import (
    Claim, concentration, flagged_runs, judge_claims, load_registry, observations, paper_effect,
)
from replication.config import ConfigError
from replication.stats.equivalence import power, seeds_needed, tost
from replication.stats.outliers import calibrated_cut, flag_worse, modified_z
from replication.verdicts import (
    CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NOT_JUDGED, REPRODUCED, Settings, claim_margin, combine, judge,
)

SETTINGS = Settings()
DEFAULT_MODELS = ["single_task", "shared_bottom", "mmoe", "cgc", "ple"]


def census_records(models, seeds=range(10), shift=None, noise=0.0003, seed=0, group="income-marital",
                   tasks=("income", "marital")):
    """Finished census runs: test AUC 0.94 + the model's shift + noise; validation likewise."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    records = []
    for model in models:
        for s in seeds:
            test = {t: {"auc": 0.94 + shift.get((model, t), 0.0) + rng.normal(0, noise)} for t in tasks}
            validation = {t: {"auc": 0.94 + rng.normal(0, noise)} for t in tasks}
            records.append({"status": "ok", "dataset": "census-income-kdd", "task_group": group, "model": model,
                            "seed": s, "tasks": [{"name": t, "type": "binary"} for t in tasks],
                            "test": test, "validation": validation})
    return records


def by_id(results):
    return {r.claim.id: r for r in results}


# --- the rule, outcome by outcome, with known numbers -------------------------------------------

def test_reproduced_when_positive_and_significant():
    values = np.array([0.010, 0.012, 0.011, 0.009, 0.013])
    j = judge(values, p_holm=0.001, effect=0.011, margin=0.001, family_size=4, settings=SETTINGS)
    assert j.verdict == REPRODUCED
    assert j.mean == pytest.approx(0.011)
    # the 95% t interval: mean +- t(0.975, 4) * sd / sqrt(5)
    half = stats.t.ppf(0.975, 4) * values.std(ddof=1) / np.sqrt(5)
    assert (j.low, j.high) == pytest.approx((0.011 - half, 0.011 + half))
    # the family-wise interval is Bonferroni's 1 - 0.05/4
    half_family = stats.t.ppf(1 - 0.05 / 8, 4) * values.std(ddof=1) / np.sqrt(5)
    assert j.family_high == pytest.approx(0.011 + half_family)


def test_contradicted_when_the_papers_effect_lies_above_the_family_interval():
    # PLE marital on census: an interval around 0 of width ~1e-4, the paper's +0.0022 far above it.
    values = np.array([0.00005, -0.00004, 0.00002, -0.00001, 0.0, 0.00003, -0.00006, 0.00001, 0.00002, -0.00002])
    j = judge(values, p_holm=1.0, effect=0.0022, margin=claim_margin("auc", 0.0022, SETTINGS), family_size=10,
              settings=SETTINGS)
    assert j.verdict == CONTRADICTED
    assert j.family_high < 0.0022


def test_contradicted_without_a_printed_effect_needs_a_significant_opposite_sign():
    values = -np.array([0.010, 0.012, 0.011, 0.009, 0.013])
    assert judge(values, 0.001, None, 0.001, 2, SETTINGS).verdict == CONTRADICTED
    assert judge(values, 0.2, None, 0.001, 2, SETTINGS).verdict == INCONCLUSIVE


def test_equivalent_when_tost_puts_the_mean_inside_the_margin():
    values = np.array([0.0001, -0.0001, 0.00005, 0.0, -0.00005, 0.00002])
    j = judge(values, p_holm=1.0, effect=None, margin=0.001, family_size=2, settings=SETTINGS)
    assert j.verdict == EQUIVALENT
    assert j.tost_pvalue < 0.05 / 2


def test_inconclusive_gives_the_seeds_a_decision_needs():
    rng = np.random.default_rng(3)
    values = 0.002 + rng.normal(0, 0.004, size=6)
    j = judge(values, p_holm=0.5, effect=None, margin=0.001, family_size=1, settings=SETTINGS)
    assert j.verdict == INCONCLUSIVE
    d = abs(values.mean()) / values.std(ddof=1)
    assert abs(values.mean()) > 0.001  # outside the margin: only detecting the mean decides it
    assert j.seeds_needed == seeds_needed(values.mean(), values.std(ddof=1), 0.05, 0.8)
    assert power(j.seeds_needed, d, 1.0) >= 0.8 > power(j.seeds_needed - 1, d, 1.0)


def test_inconclusive_inside_the_margin_takes_the_nearer_decision():
    # mean 0.0009, just inside the 0.001 margin: showing equivalence would take thousands of seeds,
    # detecting the mean (d about 0.8) a few dozen at alpha 0.05 / 4.
    values = np.array([0.0002, 0.0016, 0.0009, 0.0001, 0.0017, 0.0005, 0.0013, 0.0009])
    j = judge(values, p_holm=0.2, effect=None, margin=0.001, family_size=4, settings=SETTINGS)
    assert j.verdict == INCONCLUSIVE
    std = values.std(ddof=1)
    assert j.seeds_needed == seeds_needed(values.mean(), std, 0.05 / 4, 0.8)
    assert j.seeds_needed < seeds_needed(0.001 - values.mean(), std, 2 * 0.05 / 4, 0.8)


def test_margin_is_capped_at_half_the_papers_effect():
    assert claim_margin("auc", 0.0005, SETTINGS) == pytest.approx(0.00025)
    assert claim_margin("auc", 0.0129, SETTINGS) == pytest.approx(0.001)
    assert claim_margin("auc", None, SETTINGS) == pytest.approx(0.001)
    with pytest.raises(ValueError, match="verdicts.margins.f1"):
        claim_margin("f1", None, SETTINGS)


def test_parts_combine():
    assert combine([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine([REPRODUCED, CONTRADICTED]) == CONTRADICTED
    assert combine([INCONCLUSIVE, EQUIVALENT]) == EQUIVALENT
    assert combine([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE


# --- TOST and power against textbook and scipy values -------------------------------------------

def test_power_matches_cohens_table():
    # Cohen (1988), one-sample / paired t, two-sided alpha 0.05, power 0.8: d = 0.2, 0.5, 0.8 need
    # 199, 34 and 15 pairs (n = 198.2, 33.4, 14.3 rounded up).
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(0.2, 1.0) == 199
    assert seeds_needed(0.8, 1.0) == 15
    assert seeds_needed(0.0, 1.0) is None


def test_power_against_the_noncentral_t():
    df, nc = 9, 0.5 * np.sqrt(10)
    critical = stats.t.ppf(0.975, df)
    expected = stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc)
    assert power(10, 0.5, 1.0) == pytest.approx(expected)


def test_tost_equals_two_one_sided_scipy_tests():
    d = np.array([0.1, -0.05, 0.02, 0.07, -0.01, 0.03])
    result = tost(d, 0.2)
    lower = stats.ttest_1samp(d, -0.2, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.2, alternative="less").pvalue
    assert result.p_lower == pytest.approx(lower)
    assert result.p_upper == pytest.approx(upper)
    assert result.pvalue == pytest.approx(max(lower, upper))
    with pytest.raises(ValueError, match="margin"):
        tost(d, 0.0)


# --- the flagged-run rule --------------------------------------------------------------------------

def test_modified_z_known_values():
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, MAD median(|x - 3|) = median(2, 1, 0, 1, 97) = 1
    assert modified_z(x) == pytest.approx(0.6745 * (x - 3.0))


def test_calibrated_cut_flags_healthy_cells_at_the_stated_rate():
    cut = calibrated_cut(10, 0.001)
    assert 9.0 < cut < 11.5  # far beyond Iglewicz-Hoaglin's 3.5, which ten values cross 6.7% of the time
    assert calibrated_cut(10, 0.01) < cut  # a larger false-flag rate, a nearer cut
    rng = np.random.default_rng(5)
    rate = np.mean([flag_worse(rng.normal(size=10)).any() for _ in range(20_000)])
    assert 0.0003 < rate < 0.002
    with pytest.raises(ValueError, match="rate"):
        calibrated_cut(10, 1.5)


def test_flag_worse_flags_only_runs_far_below():
    scores = np.array([0.94, 0.941, 0.939, 0.9405, 0.9395, 0.9402, 0.9398, 0.9401, 0.92, 0.96])
    # median 0.94, MAD 0.00015: z(0.92) = -90, z(0.96) = +90 (better: not flagged)
    assert flag_worse(scores).tolist() == [False] * 8 + [True, False]
    assert not flag_worse(scores[:4]).any()  # fewer than 5 runs flag nothing


def test_flagged_run_is_dropped_and_the_change_reported():
    records = census_records(DEFAULT_MODELS, shift={("ple", "income"): 0.004})
    stuck = next(r for r in records if r["model"] == "ple" and r["seed"] == 6)
    stuck["validation"]["income"]["auc"] = 0.90
    stuck["test"]["income"]["auc"] = 0.80  # a stuck run: far below on validation and test
    results, flagged = judge_claims(records)
    assert flagged[["model", "seed", "task"]].values.tolist() == [["ple", 6, "income"]]
    result = by_id(results)["ple_beats_single_task_income"]
    assert result.verdict == INCONCLUSIVE  # the stuck seed widens the interval
    assert result.variants["without flagged runs"] == REPRODUCED
    assert "With without flagged runs: reproduced" in result.reading()


# --- the registry and the family rule ------------------------------------------------------------

def test_registry_effects_come_from_paper_values():
    paper, _ = paper_values()
    registry = load_registry(paper=paper)
    effects = {c.id: paper_effect(c, paper) for c in registry.claims}
    assert effects["ple_beats_single_task_marital"] == pytest.approx(0.0022)
    assert effects["ple_beats_mmoe_income"] == pytest.approx(0.9522 - 0.9393)
    # PLE Fig. 7: mean of PLE's ten bars minus mean of MMoE's ten
    fig7 = paper[paper["source"] == "ple_fig7"]
    expected = fig7[fig7["model"] == "ple"]["value"].mean() - fig7[fig7["model"] == "mmoe"]["value"].mean()
    assert effects["ple_largest_gain_vs_mmoe"] == pytest.approx(expected)
    assert effects["cgc_beats_mmoe_income"] is None
    assert {c.family for c in registry.claims} == set(registry.families)


def test_registry_refuses_a_bad_filter_and_unknown_parts(tmp_path):
    paper, _ = paper_values()
    bad = Claim("x", "PLE", "T", "s", "f", {"difference": {"data": "census/income-marital", "a": "ple", "b": "mmoe",
                                                          "tasks": ["income"]}},
                effect={"value": {"source": "ple_table5", "model": "nobody"}})
    with pytest.raises(ConfigError, match="selects none"):
        paper_effect(bad, paper)
    path = tmp_path / "claims.yaml"
    path.write_text("families: {f: {title: F}}\nclaims:\n  - {id: both, paper: PLE, source: T, statement: s, "
                    "family: f, all_of: [missing]}\n")
    with pytest.raises(ConfigError, match="part 'missing'"):
        load_registry(path)


def test_adding_an_unrelated_model_leaves_every_verdict_unchanged():
    shift = {("ple", "income"): 0.002, ("cgc", "income"): 0.001}
    base = census_records(DEFAULT_MODELS, shift=shift)
    extra = census_records(["sluice", "omoe"], seed=9, shift={("sluice", "income"): 0.01})
    before = {r.claim.id: (r.verdict, r.p_holm) for r in judge_claims(base)[0]}
    after = {r.claim.id: (r.verdict, r.p_holm) for r in judge_claims(base + extra)[0]}
    assert before == after


def test_a_family_missing_runs_is_not_judged_at_all():
    results = by_id(judge_claims(census_records(DEFAULT_MODELS))[0])
    # OMoE (zoo) and the education group are missing: MMoE's table family waits for them whole,
    # even its Shared-Bottom claim, whose runs are here.
    assert results["mmoe_beats_shared_bottom_income"].verdict == NOT_JUDGED
    assert "mmoe_beats_omoe_income" in results["mmoe_beats_shared_bottom_income"].why_not_judged
    assert results["ple_beats_single_task_income"].verdict != NOT_JUDGED


def test_census_marital_ceiling_reads_contradicted_with_the_reason():
    results = by_id(judge_claims(census_records(DEFAULT_MODELS, noise=0.00004))[0])
    marital = results["ple_beats_single_task_marital"]
    assert marital.verdict == CONTRADICTED
    text = marital.reading()
    assert "+0.00220 lies above our family-wise interval" in text
    assert "at its ceiling here" in text
    assert results["ple_beats_single_task_on_both"].verdict == CONTRADICTED


def test_per_task_selection_is_judged_from_the_records():
    records = census_records(DEFAULT_MODELS)
    for r in records:
        if r["model"] == "ple":
            r["per_task_selection"] = {"test": {"income": {"auc": r["test"]["income"]["auc"] + 0.003},
                                                "marital": r["test"]["marital"]},
                                       "validation": r["validation"]}
    obs = observations(records)
    per_task = obs[(obs["selection"] == "per_task") & (obs["model"] == "ple") & (obs["task"] == "income")]
    configured = obs[(obs["selection"] == "configured") & (obs["model"] == "ple") & (obs["task"] == "income")]
    assert (per_task["score"].to_numpy() - configured["score"].to_numpy()) == pytest.approx(np.full(10, 0.003))
    result = by_id(judge_claims(records)[0])["ple_beats_single_task_income"]
    assert result.variants.get("per-task selection") == REPRODUCED


def test_gate_concentration_scale():
    assert concentration([0.25, 0.25, 0.25, 0.25]) == pytest.approx(0.0)
    assert concentration([1.0, 0.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert concentration([0.86, 0.14]) == pytest.approx((0.86 - 0.5) / 0.5)


def test_flagged_runs_empty_frame_has_columns():
    obs = observations(census_records(["ple"], seeds=range(3)))
    assert list(flagged_runs(obs, 3.5).columns) == ["data", "correlation", "model", "seed", "task"]
    assert isinstance(obs, pd.DataFrame)


def test_settings_come_from_the_parameter_file(tmp_path, monkeypatch):
    from replication.claims import load_settings
    from tests.conftest import REPO

    committed = load_settings(REPO / "params.yaml")
    assert committed.margins["auc"] == pytest.approx(0.001) and committed.flag_rate == pytest.approx(0.001)
    (tmp_path / "p.yaml").write_text("verdicts:\n  alpha: 0.01\n  margins: {auc: 0.002}\n")
    given = load_settings(tmp_path / "p.yaml")
    assert given.alpha == pytest.approx(0.01)
    assert given.margins == {"auc": 0.002, "mse": 0.0005, "concentration": 0.05}
    (tmp_path / "bad.yaml").write_text("verdicts:\n  alpah: 0.01\n")
    with pytest.raises(ConfigError, match="verdicts.alpah"):
        load_settings(tmp_path / "bad.yaml")
    monkeypatch.chdir(tmp_path)  # no params.yaml here: the rule's defaults
    assert load_settings() == Settings()
