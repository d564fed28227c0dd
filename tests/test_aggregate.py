"""Aggregation: known means, std and gains on hand-made records; protocol mixing refused; paper columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replication.aggregate import aggregate, attach_paper, paper_values, summarize, tidy
from replication.config import ConfigError
from replication.io import write_json

TASKS = [{"name": "income", "type": "binary"}, {"name": "marital", "type": "binary"}]


def record(model, seed, income, marital, data_hash="abc", split_seed=0):
    return {
        "model": model, "seed": seed, "tasks": TASKS, "dataset": "census-income-kdd",
        "task_group": "income-marital", "split_seed": split_seed, "data_hash": data_hash,
        "test": {"income": {"auc": income}, "marital": {"auc": marital}},
        "best_epoch": {"income": 5, "marital": 5}, "n_parameters": 100,
    }


RECORDS = [
    record("single_task", 0, 0.940, 0.990), record("single_task", 1, 0.942, 0.992),
    record("ple", 0, 0.945, 0.991), record("ple", 1, 0.949, 0.991),
]


def test_summary_known_values():
    table = summarize(tidy(RECORDS), "single_task").set_index(["model", "task"])
    ple = table.loc[("ple", "income")]
    assert ple["n_seeds"] == 2 and ple["seeds"] == "0 1"
    assert ple["mean"] == pytest.approx(0.947, abs=1e-12)
    assert ple["std"] == pytest.approx(np.std([0.945, 0.949], ddof=1), abs=1e-12)
    assert ple["mtl_gain"] == pytest.approx(0.947 - 0.941, abs=1e-12)
    assert table.loc[("ple", "marital"), "mtl_gain"] == pytest.approx(0.991 - 0.991, abs=1e-12)
    assert table.loc[("single_task", "income"), "mtl_gain"] == 0.0
    assert list(table.index.get_level_values(0).unique()) == ["single_task", "ple"]  # reference first


def test_gain_sign_follows_metric_direction():
    runs = pd.DataFrame([
        {"model": "single_task", "seed": 0, "task": "y", "metric": "mse", "higher_is_better": False,
         "value": 0.50, "n_parameters": 1, "epochs": 1},
        {"model": "mmoe", "seed": 0, "task": "y", "metric": "mse", "higher_is_better": False,
         "value": 0.40, "n_parameters": 1, "epochs": 1},
    ])
    table = summarize(runs, "single_task").set_index("model")
    assert table.loc["mmoe", "mtl_gain"] == pytest.approx(0.10)  # lower MSE is a positive gain


def test_missing_reference_is_refused():
    with pytest.raises(ConfigError, match="reference model 'single_task' has no runs"):
        summarize(tidy(RECORDS[2:]), "single_task")


def test_records_of_different_protocols_are_refused(tmp_path):
    write_json(tmp_path / "single_task" / "seed_0.json", RECORDS[0])
    write_json(tmp_path / "ple" / "seed_0.json", record("ple", 0, 0.9, 0.9, data_hash="other"))
    with pytest.raises(ConfigError, match="different protocols"):
        aggregate(tmp_path, tmp_path / "table")
    assert not (tmp_path / "table.csv").exists() and not (tmp_path / "table.md").exists()


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


def test_aggregate_writes_csv_and_markdown(tmp_path):
    for r in RECORDS:
        write_json(tmp_path / "runs" / r["model"] / f"seed_{r['seed']}.json", r)
    aggregate(tmp_path / "runs", tmp_path / "table")
    csv = pd.read_csv(tmp_path / "table.csv")
    assert len(csv) == 4 and {"mean", "std", "n_seeds", "mtl_gain", "paper_ple_table5_reported"} <= set(csv.columns)
    md = (tmp_path / "table.md").read_text()
    assert "| ple | income | auc | 2 | 0.9470 ± 0.0028 | +0.0060 |" in md
    assert "10.1145/3383313.3412236" in md
