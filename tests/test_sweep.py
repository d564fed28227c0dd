"""The correlation sweep end to end through the command line (synth -> train --profile -> sweep),
and its findings on hand-made results whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from replication.cli import main
from replication.config import ConfigError
from replication.sweep import findings, sweep_runs
from replication.verdicts import NOT_REPRODUCED, PARTLY, REPRODUCED, gap_by_correlation, gap_trend

MODELS = ("single_task", "shared_bottom", "mmoe", "ple")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for p in ("0.2", "1.0"):
        assert main(["synth", "--correlation", p, "--n", "800", "--dim", "6", "--out", str(root / "data" / p)]) == 0
        for model in MODELS:
            assert main(["train", "--data", str(root / "data" / p), "--model", model, "--seeds", "0-2", "--set", "train.seed_workers=1",
                         "--profile", "synthetic", "--set", "train.max_epochs=2", "--set", "train.batch_size=256",
                         "--out", str(root / "runs" / f"p{p}" / model)]) == 0
    assert main(["sweep", "--runs", str(root / "runs"), "--out", str(root / "sweep")]) == 0
    return root


def test_profile_sizes_reach_the_trained_models(sweep):
    record = json.loads((sweep / "runs" / "p0.2" / "mmoe" / "seed_0.json").read_text())
    assert record["hparams"]["n_experts"] == 8 and record["hparams"]["expert_units"] == [16]
    assert record["train"]["max_epochs"] == 2  # --set applies after the profile
    assert record["dataset"] == "synthetic" and record["task_group"] == "correlation=0.2"


def test_sweep_table_has_every_cell_and_gains_from_the_records(sweep):
    table = pd.read_csv(sweep / "sweep.csv")
    assert len(table) == 2 * len(MODELS) * 2  # correlations x models x tasks
    assert set(table["n_seeds"]) == {3}
    # With train.max_epochs=2 a seed is at the cap when its selected epoch is 2: counted per cell.
    best = [json.loads((sweep / "runs" / "p0.2" / "mmoe" / f"seed_{s}.json").read_text())["best_epoch"]["task1"]
            for s in range(3)]
    cell = table[(table["correlation"] == 0.2) & (table["model"] == "mmoe") & (table["task"] == "task1")].iloc[0]
    assert cell["n_at_epoch_cap"] == sum(b == 2 for b in best)
    cell = table[(table["correlation"] == 1.0) & (table["model"] == "ple") & (table["task"] == "task2")].iloc[0]
    own, ref = ([json.loads((sweep / "runs" / "p1.0" / m / f"seed_{s}.json").read_text())["test"]["task2"]["mse"]
                 for s in range(3)] for m in ("ple", "single_task"))
    assert cell["mean"] == pytest.approx(np.mean(own), rel=1e-5)
    assert cell["gain"] == pytest.approx(np.mean(np.subtract(ref, own)), rel=1e-4, abs=1e-7)  # MSE: reference minus model
    # The paper's Fig. 7 bar sits beside ours where the paper has one (p = 0.2), never instead of ours.
    paper = table.set_index(["correlation", "model", "task"])["paper_ple_fig7_mtl_gain_approx"]
    assert paper[(0.2, "ple", "task2")] == pytest.approx(0.0007)
    assert np.isnan(paper[(0.2, "single_task", "task1")])


def test_sweep_markdown_states_the_findings(sweep):
    text = (sweep / "sweep.md").read_text()
    assert "## Findings (computed from the table above)" in text
    assert "PLE Fig. 7's correlations run: 0.2, 1" in text
    assert "MMoE Figs. 3-4's correlations run: 1): **not assessed**" in text


def _table(mse: dict[tuple[float, str], float], gains: dict[tuple[float, str], float] | None = None) -> pd.DataFrame:
    """A sweep table: test MSE ``mse[(p, model)]`` and MTL gain ``gains[(p, model)]`` on both tasks."""
    gains = gains or {}
    return pd.DataFrame([{"correlation": p, "model": model, "task": task, "mean": value,
                          "gain": gains.get((p, model), np.nan)}
                         for (p, model), value in mse.items() for task in ("task1", "task2")])


def test_gap_growing_as_correlation_falls_is_reproduced():
    mse = {(p, "shared_bottom"): 0.02 + 0.01 * (1 - p) for p in (0.5, 0.9, 1.0)}
    mse |= {(p, "mmoe"): 0.02 for p in (0.5, 0.9, 1.0)}
    gap = gap_by_correlation(_table(mse), (0.5, 0.9, 1.0))
    np.testing.assert_allclose(gap["gap"], [0.005, 0.001, 0.0], atol=1e-12)
    lines = "\n".join(findings(_table(mse)))
    assert "MMoE Figs. 3-4's correlations run: 0.5, 0.9, 1): **reproduced**" in lines
    assert "p = 0.5: +0.005000; p = 0.9: +0.001000; p = 1: +0.000000" in lines


def test_gap_that_shrinks_as_correlation_falls_is_not_reproduced():
    mse = {(0.5, "shared_bottom"): 0.020, (0.5, "mmoe"): 0.020, (1.0, "shared_bottom"): 0.03, (1.0, "mmoe"): 0.02}
    assert "0.5, 1): **not reproduced**" in "\n".join(findings(_table(mse)))
    assert [gap_trend(g) for g in ([3, 2, 1], [3, 4, 1], [1, 2, 3])] == [REPRODUCED, PARTLY, NOT_REPRODUCED]


def test_largest_average_gain_names_the_winner():
    mse = {(p, m): 0.02 for p in (0.5, 1.0) for m in ("mmoe", "ple")}
    gains = {(0.5, "mmoe"): 0.002, (0.5, "ple"): 0.001, (1.0, "mmoe"): 0.002, (1.0, "ple"): 0.002}
    lines = "\n".join(findings(_table(mse, gains)))
    assert "PLE has the largest average MTL gain (synthetic; PLE Fig. 7's correlations run: 0.5, 1): " \
           "**not reproduced (mmoe is first)**" in lines
    assert "mmoe +0.002000; ple +0.001500; PLE relative to MMoE -25.0% (paper: +87.2%)" in lines


def test_sweep_refuses_census_runs_and_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no data-set folders"):
        sweep_runs(tmp_path)
    run = tmp_path / "census" / "mmoe"
    run.mkdir(parents=True)
    (run / "seed_0.json").write_text(json.dumps({
        "format": 1, "status": "ok", "train": {}, "dataset": "census-income-kdd", "task_group": "income-marital", "split_seed": 0, "data_hash": "x",
        "model": "mmoe", "seed": 0, "tasks": [], "test": {}, "n_parameters": 1, "best_epoch": {}}))
    with pytest.raises(ConfigError, match="holds census-income-kdd runs; the sweep reads synthetic ones only"):
        sweep_runs(tmp_path)


def test_results_readme_quotes_the_committed_sweep_findings_verbatim():
    from tests.conftest import REPO

    readme = (REPO / "results" / "README.md").read_text(encoding="utf-8")
    quoted = readme.split("<!-- findings: copied from synthetic_sweep.md -->\n")[1].split("<!-- /findings -->")[0]
    sweep = (REPO / "results" / "synthetic_sweep.md").read_text(encoding="utf-8")
    generated = sweep.split("## Findings (computed from the table above)\n\n")[1]
    assert quoted.strip() == generated.strip()
    assert quoted.count("**") >= 8  # four claims, each with its verdict in bold
