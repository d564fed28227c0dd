"""Aggregation: known means, std and gains on hand-made records; protocol mixing refused; paper columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.aggregate import aggregate, attach_paper, paper_values, summarize, tidy
from replication.config import ConfigError
from replication.io import save_npz, write_json

TASKS = [{"name": "income", "type": "binary"}, {"name": "marital", "type": "binary"}]


def record(model, seed, income, marital, data_hash="abc", split_seed=0, **train):
    return {
        "format": 1, "status": "ok", "train": {"lr": 0.001, "max_epochs": 100, **train},
        "model": model, "seed": seed, "tasks": TASKS, "dataset": "census-income-kdd",
        "task_group": "income-marital", "split_seed": split_seed, "data_hash": data_hash,
        "test": {"income": {"auc": income}, "marital": {"auc": marital}},
        "best_epoch": {"income": 5, "marital": 5}, "n_parameters": 100,
    }


RECORDS = [
    record("single_task", 0, 0.940, 0.990), record("single_task", 1, 0.942, 0.992),
    record("single_task", 2, 0.941, 0.991),
    record("ple", 0, 0.945, 0.991), record("ple", 1, 0.949, 0.991), record("ple", 2, 0.944, 0.993),
]


def test_summary_known_values():
    table = summarize(tidy(RECORDS), "single_task").set_index(["model", "task"])
    ple = table.loc[("ple", "income")]
    assert ple["n_seeds"] == 3 and ple["seeds"] == "0 1 2" and ple["n_pairs"] == 3
    assert ple["mean"] == pytest.approx(0.946, abs=1e-12)
    assert ple["std"] == pytest.approx(np.std([0.945, 0.949, 0.944], ddof=1), abs=1e-12)
    differences = np.array([0.945 - 0.940, 0.949 - 0.942, 0.944 - 0.941])
    assert ple["mtl_gain"] == pytest.approx(differences.mean(), abs=1e-12)
    half = stats.t.ppf(0.975, 2) * differences.std(ddof=1) / np.sqrt(3)
    assert ple["mtl_gain_low"] == pytest.approx(differences.mean() - half, abs=1e-12)
    assert ple["mtl_gain_high"] == pytest.approx(differences.mean() + half, abs=1e-12)
    # One family of two comparisons (income, marital): Holm doubles the smaller p-value.
    p_income = stats.ttest_rel([0.945, 0.949, 0.944], [0.940, 0.942, 0.941]).pvalue
    p_marital = stats.ttest_rel([0.991, 0.991, 0.993], [0.990, 0.992, 0.991]).pvalue
    assert ple["pvalue_holm"] == pytest.approx(min(1.0, 2 * min(p_income, p_marital)), abs=1e-12)
    assert bool(ple["significant"]) == (ple["pvalue_holm"] < 0.05)
    assert np.isnan(table.loc[("single_task", "income"), "mtl_gain"])  # the reference has no gain
    expected_delta = 100 * np.mean([(0.946 - 0.941) / 0.941, (np.mean([0.991, 0.991, 0.993]) - 0.991) / 0.991])
    assert ple["delta_m_percent"] == pytest.approx(expected_delta, abs=1e-9)
    assert list(table.index.get_level_values(0).unique()) == ["single_task", "ple"]  # reference first


def test_gain_sign_follows_metric_direction():
    runs = pd.DataFrame([
        {"model": model, "seed": seed, "task": "y", "metric": "mse", "higher_is_better": False,
         "value": value + 0.01 * seed, "n_parameters": 1, "epochs": 1}
        for seed in range(3) for model, value in (("single_task", 0.50), ("mmoe", 0.40))
    ])
    table = summarize(runs, "single_task").set_index("model")
    assert table.loc["mmoe", "mtl_gain"] == pytest.approx(0.10)  # lower MSE is a positive gain
    assert table.loc["mmoe", "delta_m_percent"] == pytest.approx(100 * 0.10 / 0.51)


@pytest.mark.fault
def test_missing_reference_is_refused():
    with pytest.raises(ConfigError, match="reference model 'single_task' has no runs"):
        summarize(tidy(RECORDS[3:]), "single_task")


def test_a_model_with_one_paired_seed_gets_no_gain_or_test():
    runs = tidy(RECORDS[:3] + [record("mmoe", 0, 0.95, 0.99)])
    row = summarize(runs, "single_task").set_index(["model", "task"]).loc[("mmoe", "income")]
    assert row["n_pairs"] == 1 and np.isnan(row["mtl_gain"]) and np.isnan(row["pvalue_holm"])
    assert not row["significant"]


@pytest.mark.fault
def test_records_of_different_protocols_are_refused(tmp_path):
    write_json(tmp_path / "single_task" / "seed_0.json", RECORDS[0])
    write_json(tmp_path / "ple" / "seed_0.json", record("ple", 0, 0.9, 0.9, data_hash="other"))
    with pytest.raises(ConfigError, match="different protocols"):
        aggregate(tmp_path, tmp_path / "table")
    assert not (tmp_path / "table.csv").exists() and not (tmp_path / "table.md").exists()


@pytest.mark.fault
def test_no_records_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no run records"):
        aggregate(tmp_path, tmp_path / "table")


def test_paper_values_have_sources_and_flag_the_inconsistent_mmoe_cell():
    values, sources = paper_values()
    assert set(values["source"]) <= set(sources)
    assert all("doi" in s and "citation" in s for s in sources.values())
    summary = summarize(tidy(RECORDS + [record("mmoe", 0, 0.94, 0.99)]), "single_task")
    table = attach_paper(summary, "income-marital").set_index(["model", "task"])
    assert table.loc[("ple", "income"), "paper_ple_table5_reported"] == 0.9522
    assert table.loc[("single_task", "marital"), "paper_mmoe_table1_mean"] == 0.9922
    note = table.loc[("mmoe", "income"), "paper_note"]
    assert "+0.0048" in note and "-0.0052" in note
    flagged = table[table["paper_note"] != ""].index.tolist()
    assert flagged == [("mmoe", "income")]  # every other printed gain adds up


def test_aggregate_writes_csv_markdown_and_delong_counts(tmp_path):
    rng = np.random.default_rng(0)
    y = np.stack([rng.integers(0, 2, 400), rng.integers(0, 2, 400)], axis=1).astype(float)
    for r in RECORDS:
        write_json(tmp_path / "runs" / r["model"] / f"seed_{r['seed']}.json", r)
        # PLE's predictions carry the label; the reference's are noise: DeLong must find a difference.
        signal = y if r["model"] == "ple" else rng.random(y.shape)
        prediction = 0.5 * signal + 0.5 * rng.random(y.shape)
        if r["seed"] != 2:  # seed 2 has no saved predictions: counted as not tested
            save_npz(tmp_path / "runs" / r["model"] / f"seed_{r['seed']}.test_predictions.npz",
                     prediction=prediction, y=y)
    aggregate(tmp_path / "runs", tmp_path / "table")
    csv = pd.read_csv(tmp_path / "table.csv").set_index(["model", "task"])
    assert len(csv) == 4
    assert {"mean", "std", "n_seeds", "mtl_gain", "mtl_gain_low", "pvalue_holm", "significant",
            "paper_ple_table5_reported"} <= set(csv.columns)
    assert csv.loc[("ple", "income"), "delong_seeds"] == 2
    assert csv.loc[("ple", "income"), "delong_significant_seeds"] == 2
    md = (tmp_path / "table.md").read_text()
    gain = csv.loc[("ple", "income")]
    cell = f"{gain['mtl_gain']:+.4f} [{gain['mtl_gain_low']:+.4f}, {gain['mtl_gain_high']:+.4f}]"
    assert f"| ple | income | auc | 3 | 0.9460 ± 0.0026 | {cell}" in md
    assert "| 2/2 |" in md
    assert "10.1145/3383313.3412236" in md


def _write_runs(root, records, y):
    """Records and random predictions, the same for a (model, seed) in whichever folder."""
    for r in records:
        write_json(root / r["model"] / f"seed_{r['seed']}.json", r)
        rng = np.random.default_rng([len(r["model"]), r["seed"]])
        save_npz(root / r["model"] / f"seed_{r['seed']}.test_predictions.npz", prediction=rng.random(y.shape), y=y)


def test_aggregate_over_two_run_folders_equals_one_folder(tmp_path):
    """The zoo's runs live in their own folder; tables over both folders are the tables over one."""
    rng = np.random.default_rng(1)
    y = np.stack([rng.integers(0, 2, 300), rng.integers(0, 2, 300)], axis=1).astype(float)
    _write_runs(tmp_path / "all", RECORDS, y)
    _write_runs(tmp_path / "main", [r for r in RECORDS if r["model"] == "single_task"], y)
    _write_runs(tmp_path / "zoo", [r for r in RECORDS if r["model"] == "ple"], y)
    one = aggregate(tmp_path / "all", tmp_path / "one")
    two = aggregate([tmp_path / "main", tmp_path / "zoo"], tmp_path / "two")
    pd.testing.assert_frame_equal(one, two)
    assert (tmp_path / "one.md").read_text() == (tmp_path / "two.md").read_text()


@pytest.mark.fault
def test_a_model_in_two_run_folders_is_refused(tmp_path):
    y = np.zeros((10, 2))
    _write_runs(tmp_path / "a", RECORDS, y)
    _write_runs(tmp_path / "b", [r for r in RECORDS if r["model"] == "ple"], y)
    with pytest.raises(ConfigError, match="model 'ple' has runs under both"):
        aggregate([tmp_path / "a", tmp_path / "b"], tmp_path / "table")
    assert not (tmp_path / "table.csv").exists()
