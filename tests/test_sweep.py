"""The correlation sweep end to end through the command line (synth -> train --profile -> sweep),
and its findings on hand-made results whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from replication.cli import main
from replication.config import ConfigError
from replication.claims import judge_claims
from replication.sweep import findings, still_descending, sweep_records
from replication.verdicts import CONTRADICTED, REPRODUCED, Settings

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
    assert "## Findings (the claims registry's synthetic claims, judged on these runs)" in text
    # Two correlations of PLE Fig. 7's five were run: the synthetic family is not judged at all.
    assert "**not judged here**" in text and "no runs for ple_largest_gain_vs_mmoe" in text
    assert "Flagged runs" in text


PAPER_P = (0.2, 0.4, 0.5, 0.75, 1.0)


def synthetic_records(mse, seeds=range(8), noise=0.0002, seed=0):
    """Finished synthetic runs: test MSE ``mse(p, model)`` plus noise on both tasks, at PLE Fig. 7's
    correlations; validation MSE alike."""
    rng = np.random.default_rng(seed)
    records = []
    for p in PAPER_P:
        for model in ("single_task", "shared_bottom", "mmoe", "ple"):
            for s in seeds:
                test = {t: {"mse": mse(p, model) + rng.normal(0, noise)} for t in ("task1", "task2")}
                records.append({"status": "ok", "dataset": "synthetic", "task_group": f"correlation={p:g}",
                                "model": model, "seed": s, "tasks": [{"name": t, "type": "regression"} for t in test],
                                "test": test, "validation": test})
    return records


def verdicts_of(records):
    lines, _ = findings(records, Settings())
    return "\n".join(lines), {r.claim.id: r.verdict for r in judge_claims(records)[0]}


def mean_of(records, claim):
    return next(r.judgement.mean for r in judge_claims(records)[0] if r.claim.id == claim)


def test_gap_growing_as_correlation_falls_is_reproduced():
    records = synthetic_records(lambda p, m: {"shared_bottom": 0.02 + 0.01 * (1 - p), "ple": 0.015}.get(m, 0.02))
    text, verdicts = verdicts_of(records)
    assert verdicts["mmoe_gap_grows_as_correlation_falls"] == REPRODUCED
    # the per-seed statistic is (HS - MMoE at 0.5) - (HS - MMoE at 1) = 0.005, up to the noise (sd 0.0002 per run)
    assert mean_of(records, "mmoe_gap_grows_as_correlation_falls") == pytest.approx(0.005, abs=0.0004)
    assert "| The test-MSE gap between Shared-Bottom and MMoE is larger at correlation 0.5 than at 1 | MMoE Figs. 3-4 |" in text


def test_gap_that_shrinks_as_correlation_falls_is_contradicted():
    _, verdicts = verdicts_of(synthetic_records(lambda p, m: {"shared_bottom": 0.02 + 0.01 * p}.get(m, 0.02)))
    assert verdicts["mmoe_gap_grows_as_correlation_falls"] == CONTRADICTED


def test_largest_average_gain_is_a_paired_test_per_model():
    _, verdicts = verdicts_of(synthetic_records(lambda p, m: {"ple": 0.018, "mmoe": 0.019}.get(m, 0.02)))
    assert verdicts["ple_largest_gain_vs_mmoe"] == REPRODUCED
    assert verdicts["ple_largest_gain_vs_hard_sharing"] == REPRODUCED
    assert verdicts["ple_largest_gain"] == REPRODUCED
    # MMoE first: the paper's +0.002 (PLE's mean bar minus MMoE's) lies far above an interval below 0
    _, verdicts = verdicts_of(synthetic_records(lambda p, m: {"ple": 0.019, "mmoe": 0.018}.get(m, 0.02)))
    assert verdicts["ple_largest_gain_vs_mmoe"] == CONTRADICTED
    assert verdicts["ple_largest_gain"] == CONTRADICTED


def test_sweep_refuses_census_runs_and_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no data-set folders"):
        sweep_records(tmp_path)
    run = tmp_path / "census" / "mmoe"
    run.mkdir(parents=True)
    (run / "seed_0.json").write_text(json.dumps({
        "format": 1, "status": "ok", "train": {}, "dataset": "census-income-kdd", "task_group": "income-marital", "split_seed": 0, "data_hash": "x",
        "model": "mmoe", "seed": 0, "tasks": [], "test": {}, "n_parameters": 1, "best_epoch": {}}))
    with pytest.raises(ConfigError, match="holds census-income-kdd runs; the sweep reads synthetic ones only"):
        sweep_records(tmp_path)


def test_results_readme_quotes_the_committed_sweep_findings_verbatim():
    from tests.conftest import REPO

    readme = (REPO / "results" / "README.md").read_text(encoding="utf-8")
    quoted = readme.split("<!-- findings: copied from synthetic_sweep.md -->\n")[1].split("<!-- /findings -->")[0]
    sweep = (REPO / "results" / "synthetic_sweep.md").read_text(encoding="utf-8")
    generated = sweep.split("## Findings (the claims registry's synthetic claims, judged on these runs)\n\n")[1]
    assert quoted.strip() == generated.strip()
    assert quoted.count("**") >= 8  # four claims, each with its verdict in bold


def test_a_run_still_descending_when_selected_is_counted():
    def record(curve):
        history = [{"epoch": e + 1, "validation": {"task1": {"mse": v}}} for e, v in enumerate(curve)]
        best = int(np.argmin(curve)) + 1
        return {"best_epoch": {"task1": best}, "history": history}

    falling = [0.03 - 0.0005 * e for e in range(30)]  # 0.0155 at epoch 30, 0.0205 ten epochs earlier
    assert still_descending(record(falling), "task1")
    flat = [0.02 + 0.00001 * ((-1) ** e) for e in range(30)]  # converged: 0.1% noise
    assert not still_descending(record(flat), "task1")
    assert not still_descending(record(falling[:8]), "task1")  # selected within the first window
