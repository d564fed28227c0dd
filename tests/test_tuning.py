"""The hyperparameter search (replication/tuning.py): the spaces and their fairness, the pruning rule
with known numbers, and searches on a slice of census: equal budgets, no test data read, the same
trials however many run at once, and a killed search resumed with no trial lost or run twice."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import psutil
import pytest
import torch
import yaml

from models.registry import list_models, model_hparams
from replication.cli import main
from replication.config import ConfigError
from replication.data.census import prepare_census
from replication.data.download import download_census
from replication.data.processed import data_hash, load_processed
from replication.executors import LocalExecutor
from replication.io import save_npz, write_json
from replication.leaderboard import claim_notes
from replication.protocol import protocol_hash, tuning_label
from replication.records import run_differences
from replication.training import TrainConfig
from replication.training.units import Unit
from replication.tuning import (
    BEST, BEST_SMALL, JOURNAL, TRIALS, Dimension, TuneSettings, capped, configuration, load_space, parse_dimension,
    budget_curves, read_tuned, rung_epochs, run_search, study_key, thresholds, tune_model, without_test,
    write_tuning_report,
)
from replication.verdicts import Settings
from tests.conftest import MIRROR
from tests.pipelines import run_stages
from tests.test_claims import DEFAULT_MODELS, census_records

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces.yaml"
SLICE = {"train": 2000, "validation": 1000, "test": 1000}
COMMON = {"embedding_dim": 8, "embedding_std": 0.01}
TINY_SPACE = """
common:
  train.lr: {log: [1.0e-4, 1.0e-2]}
  train.batch_size: {choice: [256, 512]}
models:
  mmoe:
    n_experts: {int: [2, 4]}
    expert_units: {units: [8, 32], count: [1, 2]}
  shared_bottom:
    bottom_units: {units: [8, 32], count: [1, 2]}
"""
SETTINGS = TuneSettings(trials=6, startup_trials=2, eta=2, min_epochs=1, parallel_trials=2, searches=1, small_budget=3)
pytestmark = pytest.mark.usefixtures("one_thread")


def cfg(**overrides) -> TrainConfig:
    return TrainConfig(**{"max_epochs": 5, "patience": 2, "device": "cpu", "seed_workers": 1, "num_threads": 1,
                          **overrides})


# --- the spaces --------------------------------------------------------------------------------------

@pytest.mark.fault
@pytest.mark.parametrize("spec, message", [
    ({"log": [0, 1]}, "LOW > 0"),
    ({"int": [3, 1]}, "LOW < HIGH"),
    ({"int": [1, 2.5]}, "integer bounds"),
    ({"log": [1e-4, 1e-2], "int": [1, 2]}, "exactly one"),
    ({"choice": []}, "non-empty list"),
    ({"units": [16, 64], "count": [2, 1]}, "count needs"),
    ({"units": [17, 31]}, "no power of two"),
    ({"log": [1e-4, 1e-2], "step": 2}, "unknown key(s) step"),
])
def test_a_bad_dimension_is_refused_naming_it(spec, message):
    with pytest.raises(ConfigError, match="spaces.yaml: train.lr") as error:
        parse_dimension("train.lr", spec, "spaces.yaml")
    assert message in str(error.value)


def test_units_suggest_equal_widths_over_the_layer_count():
    dim = parse_dimension("expert_units", {"units": [16, 2048], "count": [1, 2]}, "x")
    trial = optuna.trial.FixedTrial({"expert_units.width": 256, "expert_units.layers": 2})
    assert dim.suggest(trial) == [256, 256]
    assert dim.values == (16, 2048)
    fixed_count = Dimension("tower_units", "units", (8, 256), (1, 1))
    assert fixed_count.suggest(optuna.trial.FixedTrial({"tower_units.width": 64})) == [64]


def test_shared_units_divide_the_layer_width_among_the_experts():
    dims = load_space(SPACES, "ple", model_hparams("ple"))
    values = {"train.lr": 1e-3, "train.weight_decay": 1e-6, "train.batch_size": 1024, "embedding_dim": 8,
              "n_levels": 2, "n_task_experts": 2, "n_shared_experts": 3, "expert_units.width": 2048,
              "expert_units.layers": 1, "tower_units.width": 32}
    config = configuration(dims, optuna.trial.FixedTrial(values), model_hparams("ple"), n_tasks=2)
    assert config["model"]["expert_units"] == [2048 // 7]  # 2 tasks x 2 task experts + 3 shared
    assert config["train"] == {"lr": 1e-3, "weight_decay": 1e-6, "batch_size": 1024}
    # Counts not searched come from the model's own hyperparameters.
    mmoe = (Dimension("expert_units", "units", (16, 2048), (1, 1), (("n_experts", 1),)),)
    trial = optuna.trial.FixedTrial({"expert_units.width": 512})
    assert configuration(mmoe, trial, {"n_experts": 8}, n_tasks=2)["model"]["expert_units"] == [64]


def test_every_model_has_a_space_and_the_spaces_are_fair():
    """The fairness rules search_spaces.yaml states: the same common dimensions for every model,
    every hidden layer 16-2048 units in all and 1-2 layers deep, every tower 8-256 units in one
    layer; a layer is divided among experts or per-task columns exactly where the model has them."""
    commons = set()
    for name in list_models():
        dims = {d.key: d for d in load_space(SPACES, name, model_hparams(name))}
        commons.add(tuple(sorted((k, d.kind, d.values) for k, d in dims.items() if k.startswith("train.")
                                 or k == "embedding_dim")))
        for key, dim in dims.items():
            if dim.kind != "units" or key == "ranks":
                continue
            expected = ((8, 256), (1, 1)) if key == "tower_units" else ((16, 2048), (1, 2))
            assert (dim.values, dim.count) == expected, (name, key)
            shared = {"n_experts", "n_task_experts", "n_shared_experts"} & set(model_hparams(name))
            if key != "tower_units" and shared:
                assert {term for term, _ in dim.shared_by} == shared, name
    assert len(commons) == 1 and len(next(iter(commons))) == 4


def test_max_units_caps_every_layer_of_every_model_alike():
    for name in list_models():
        dims = capped(load_space(SPACES, name, model_hparams(name)), 512)
        assert all(d.values[1] <= 512 for d in dims if d.kind == "units"), name
        assert {d.key for d in dims} == {d.key for d in load_space(SPACES, name, model_hparams(name))}
    tower = Dimension("tower_units", "units", (8, 256))
    assert capped((tower,), 512) == (tower,)  # below the ceiling: unchanged
    with pytest.raises(ConfigError, match="tune.max_units = 4 is below the narrowest width of tower_units"):
        capped((tower,), 4)


@pytest.mark.fault
@pytest.mark.parametrize("text, message", [
    ("models: {}", "no search space for 'mmoe'"),
    ("models: {mmoe: {n_expert: {int: [2, 4]}}}", "n_expert is not a keyword of mmoe"),
    ("models: {mmoe: {train.max_epochs: {int: [2, 4]}}}", "train.max_epochs cannot be searched"),
    ("common: {n_experts: {int: [2, 4]}}\nmodels: {mmoe: {n_experts: {int: [2, 8]}}}", "twice"),
    ("modles: {}", "unknown top-level key(s) modles"),
])
def test_a_bad_space_file_is_refused(tmp_path, text, message):
    path = tmp_path / "spaces.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="spaces.yaml") as error:
        load_space(path, "mmoe", model_hparams("mmoe"))
    assert message in str(error.value)


# --- the pruning rule --------------------------------------------------------------------------------

def test_rung_epochs():
    assert rung_epochs(TuneSettings(min_epochs=2, eta=3), 100) == [2, 6, 18, 54]
    assert rung_epochs(TuneSettings(min_epochs=1, eta=2), 5) == [1, 2, 4]


def test_thresholds_known_values():
    earlier = [([0.5, 0.6, 0.7], False), ([0.4, 0.8, 0.8], False), ([0.3], True), ([0.2, 0.9], False)]
    # Epoch 1: all four, top floor(4/2) = 2 -> the 2nd best, 0.4. Epoch 3: the pruned trial is out, the
    # one that stopped on its own after 2 epochs counts with its final 0.9: [0.9, 0.8, 0.7] -> 1st best.
    assert thresholds(earlier, [1, 3], eta=2) == {1: 0.4, 3: 0.9}
    # eta 3: epoch 1 needs the best of floor(4/3) = 1, epoch 3 has 3 trials -> the best.
    assert thresholds(earlier, [1, 3], eta=3) == {1: 0.5, 3: 0.9}
    assert thresholds(earlier[:1], [1, 3], eta=2) == {}  # fewer than eta trials: no rule yet


# --- searches on a slice of census ----------------------------------------------------------------------

def write_slice(source: Path, out: Path, poison_test: bool = False) -> Path:
    """The first rows of each split of a processed folder, as a processed folder; with
    ``poison_test``, the test labels inverted."""
    schema = json.loads((source / "schema.json").read_text())
    out.mkdir(parents=True)
    for split, rows in SLICE.items():
        with np.load(source / f"{split}.npz") as arrays:
            y = arrays["y"][:rows]
            save_npz(out / f"{split}.npz", x_cat=arrays["x_cat"][:rows], x_num=arrays["x_num"][:rows],
                     y=1 - y if poison_test and split == "test" else y)
        schema["splits"][split]["rows"] = rows
    schema["data_hash"] = data_hash(out)
    write_json(out / "schema.json", schema)
    return out


@pytest.fixture(scope="module")
def census_dir(tmp_path_factory) -> Path:
    assert MIRROR.is_dir(), f"the shared data mirror is missing: {MIRROR}"
    raw = tmp_path_factory.mktemp("tune_raw")
    download_census(raw, mirror=str(MIRROR), progress=False)
    full = tmp_path_factory.mktemp("tune_full")
    prepare_census(raw, full, "income-marital", 0)
    return write_slice(full, tmp_path_factory.mktemp("tune") / "slice")


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "spaces.yaml"
    path.write_text(TINY_SPACE)
    return path


def outcomes(table: pd.DataFrame) -> pd.DataFrame:
    """A trials table without its timings (the one thing that may differ between equal searches)."""
    return table.drop(columns=["seconds"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def mmoe_search(census_dir, space, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("mmoe_search")
    return out, tune_model("mmoe", COMMON, cfg(), load_processed(census_dir), SETTINGS, space, out)


def test_a_search_writes_its_trials_and_the_best_configurations(mmoe_search):
    out, table = mmoe_search
    assert list(table["trial"]) == list(range(SETTINGS.trials)) and set(table["search"]) == {0}
    assert set(table["outcome"]) <= {"complete", "pruned", "diverged"} and "pruned" in set(table["outcome"])
    assert (out / JOURNAL).is_file() and pd.read_csv(out / TRIALS).shape[0] == SETTINGS.trials
    best, small = (yaml.safe_load((out / name).read_text()) for name in (BEST, BEST_SMALL))
    complete = table[table["outcome"] == "complete"]
    assert best["validation"] == complete["value"].max()
    assert small["validation"] == complete[complete["trial"] < SETTINGS.small_budget]["value"].max()
    assert best["search_protocol"]["trials"] == 6 and small["search_protocol"]["trials"] == 3
    assert set(best["train"]) == {"lr", "batch_size"} and set(best["hparams"]) == {"n_experts", "expert_units"}


def test_pruned_trials_stopped_at_a_rung_below_its_threshold(mmoe_search):
    _, table = mmoe_search
    pruned = table[table["outcome"] == "pruned"]
    assert set(pruned["epochs"]) <= set(rung_epochs(SETTINGS, cfg().max_epochs))
    assert pruned["value"].isna().all() and table.loc[table["outcome"] == "complete", "value"].notna().all()


def test_two_models_get_identical_budgets(mmoe_search, census_dir, space, tmp_path):
    _, mmoe = mmoe_search
    shared = tune_model("shared_bottom", COMMON, cfg(), load_processed(census_dir), SETTINGS, space, tmp_path)
    assert len(shared) == len(mmoe) == SETTINGS.trials
    docs = [yaml.safe_load((tmp_path / BEST).read_text()), yaml.safe_load((mmoe_search[0] / BEST).read_text())]
    assert docs[0]["search_protocol"] == docs[1]["search_protocol"]


def test_the_search_never_reads_test_labels(mmoe_search, census_dir, space, tmp_path):
    """Test labels inverted: the same trials, the same scores, the same chosen configuration."""
    poisoned = write_slice(census_dir, tmp_path / "poisoned", poison_test=True)
    assert load_processed(poisoned).schema["data_hash"] != load_processed(census_dir).schema["data_hash"]
    table = tune_model("mmoe", COMMON, cfg(), load_processed(poisoned), SETTINGS, space, tmp_path / "out")
    pd.testing.assert_frame_equal(outcomes(table), outcomes(mmoe_search[1]))
    assert (tmp_path / "out" / BEST).read_text() == (mmoe_search[0] / BEST).read_text()
    assert "test" not in without_test(load_processed(census_dir)).splits


def test_parallel_trials_give_the_same_search(mmoe_search, census_dir, space, tmp_path):
    table = tune_model("mmoe", COMMON, cfg(seed_workers=2), load_processed(census_dir), SETTINGS, space, tmp_path)
    pd.testing.assert_frame_equal(outcomes(table), outcomes(mmoe_search[1]))


class Killed(Exception):
    pass


class DiesOnBatch(LocalExecutor):
    """The local executor, killed while its ``batch``-th batch of trials is in flight."""

    def __init__(self, batch: int) -> None:
        self.batch, self.calls = batch, 0

    def run(self, units, data, done):
        self.calls += 1
        if self.calls == self.batch:
            raise Killed
        return super().run(units, data, done)


@pytest.mark.fault
def test_a_killed_search_resumes_with_no_trial_lost_or_run_twice(mmoe_search, census_dir, space, tmp_path):
    data = without_test(load_processed(census_dir))
    dims = load_space(space, "mmoe", model_hparams("mmoe"))
    cpu = torch.device("cpu")
    with pytest.raises(Killed):
        run_search("mmoe", COMMON, cfg(), data, dims, SETTINGS, 0, tmp_path, DiesOnBatch(2), cpu)
    rows = run_search("mmoe", COMMON, cfg(), data, dims, SETTINGS, 0, tmp_path, LocalExecutor(), cpu)
    pd.testing.assert_frame_equal(outcomes(pd.DataFrame(rows)), outcomes(mmoe_search[1]))
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / JOURNAL)))
    key = study_key("mmoe", COMMON, cfg(), dims, SETTINGS, data)
    trials = optuna.load_study(study_name=f"mmoe-search0-{key}", storage=storage).get_trials()
    states = [t.state for t in trials]
    # The two trials in flight were failed and run again; every index ran to its end exactly once.
    assert states.count(optuna.trial.TrialState.FAIL) == SETTINGS.parallel_trials
    finished = [t.user_attrs["index"] for t in trials if t.state != optuna.trial.TrialState.FAIL]
    assert sorted(finished) == list(range(SETTINGS.trials))


def test_a_changed_setting_starts_the_search_over(mmoe_search, census_dir, space, tmp_path):
    data = load_processed(census_dir)
    tune_model("mmoe", COMMON, cfg(), data, dataclasses.replace(SETTINGS, trials=2, small_budget=1), space, tmp_path)
    table = tune_model("mmoe", COMMON, cfg(), data, SETTINGS, space, tmp_path)
    pd.testing.assert_frame_equal(outcomes(table), outcomes(mmoe_search[1]))  # not the 2-trial study's trials


# --- tuned runs: records, protocol, claims --------------------------------------------------------------

def test_train_tuned_records_the_search_and_uses_its_configuration(mmoe_search, census_dir, tmp_path):
    out = tmp_path / "runs" / "mmoe"
    assert main(["train", "--data", str(census_dir), "--model", "mmoe", "--tuned", str(mmoe_search[0] / BEST),
                 "--seeds", "0", "--out", str(out), "--set", "train.max_epochs=1", "--set", "train.device=cpu",
                 "--no-checkpoints"]) == 0
    record = json.loads((out / "seed_0.json").read_text())
    best = yaml.safe_load((mmoe_search[0] / BEST).read_text())
    assert record["train"]["lr"] == best["train"]["lr"] and record["hparams"]["n_experts"] == best["hparams"]["n_experts"]
    assert record["tuning"]["search"] == best["search_protocol"] and record["tuning"]["train_keys"] == ["batch_size", "lr"]
    assert tuning_label(record) == "tuned, 6 trials per model"


def test_train_reuse_copies_a_seed_of_the_same_configuration_and_trains_another(mmoe_search, census_dir, tmp_path,
                                                                                capsys):
    """`train --reuse RUNS` (the tuned pipeline's small budget, reading the full budget's runs): a seed
    trained under the same configuration, chosen by another search, is copied with this search's
    `tuning` field and equals training it; a configuration that differs is trained."""
    best = yaml.safe_load((mmoe_search[0] / BEST).read_text())
    configurations = {"full": best, "same": {**best, "search_protocol": {**best["search_protocol"], "trials": 1}},
                      "other": {**best, "train": {**best["train"], "lr": best["train"]["lr"] * 2}}}
    for name, doc in configurations.items():
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(doc))

    def train(configuration: str, out: str, *reuse: str) -> Path:
        folder = tmp_path / out / "mmoe"
        assert main(["train", "--data", str(census_dir), "--model", "mmoe", "--tuned", str(tmp_path / f"{configuration}.yaml"),
                     "--seeds", "0-1", "--out", str(folder), "--set", "train.max_epochs=2", "--set", "train.device=cpu",
                     "--no-checkpoints", *reuse]) == 0
        return folder

    full = train("full", "full")
    copied = train("same", "copied", "--reuse", str(full))
    trained = train("same", "trained")
    other = train("other", "other", "--reuse", str(full))
    assert run_differences(copied.parent, trained.parent) == [f"mmoe/seed_{s}.json: reused_from" for s in (0, 1)]
    for seed in (0, 1):
        record = json.loads((copied / f"seed_{seed}.json").read_text())
        assert record["reused_from"] == str(full) and record["tuning"]["search"]["trials"] == 1
        assert set(record) == set(json.loads((trained / f"seed_{seed}.json").read_text())) | {"reused_from"}
        assert json.loads((full / f"seed_{seed}.json").read_text())["tuning"]["search"]["trials"] == 6
        assert "reused_from" not in json.loads((other / f"seed_{seed}.json").read_text())
    capsys.readouterr()
    assert main(["train", "--data", str(census_dir), "--model", "mmoe", "--seeds", "0", "--out", str(tmp_path / "x"),
                 "--reuse", str(tmp_path / "missing")]) == 2
    assert f"--reuse {tmp_path / 'missing'} is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.fault
def test_read_tuned_refuses_another_models_configuration(mmoe_search):
    with pytest.raises(ConfigError, match="is mmoe's tuned configuration, not ple's"):
        read_tuned(mmoe_search[0] / BEST, "ple", cfg(), {})


def tuned(record: dict, lr: float, trials: int = 8) -> dict:
    search = {**TuneSettings().protocol(), "trials": trials}
    return {**record, "train": {**record.get("train", {}), "lr": lr},
            "tuning": {"search": search, "train_keys": ["lr"], "trial": 0, "search_index": 0, "validation": 0.9}}


def test_tuned_models_share_a_protocol_whatever_their_chosen_values():
    base = {"format": 1, "dataset": "census-income-kdd", "task_group": "income-marital", "split_seed": 0,
            "data_hash": "ab" * 32, "tasks": [{"name": "income", "type": "binary"}], "test": {"income": {"auc": 0.9}},
            "train": {"lr": 0.001, "batch_size": 1024, "device": "cpu"}}
    assert protocol_hash(tuned(base, 0.003)) == protocol_hash(tuned(base, 0.0004))
    assert protocol_hash(tuned(base, 0.001)) != protocol_hash(base)  # never in a table with untuned runs
    assert protocol_hash(tuned(base, 0.001, trials=24)) != protocol_hash(tuned(base, 0.001))  # nor another budget
    assert tuning_label(base) == "untuned"


def test_claims_are_judged_per_search_plan_and_changes_are_named():
    untuned = census_records(DEFAULT_MODELS, shift={("ple", "income"): 0.003})
    for r in untuned:
        r["train"] = {"lr": 0.001}
    retuned = [tuned(r, 0.002) for r in census_records(DEFAULT_MODELS, seed=3)]
    lines = claim_notes(untuned + retuned, Settings())
    header = next(line for line in lines if line.startswith("| claim"))
    assert "| untuned | tuned, 8 trials per model | verdict changed by tuning |" in header
    row = next(line for line in lines if line.startswith("| PLE beats Single-Task on census income |"))
    assert "**reproduced**" in row and row.endswith("| yes |")


# --- the budget-sensitivity figure and the report ----------------------------------------------------------

def test_budget_curves_track_the_best_complete_trial_so_far():
    table = pd.DataFrame({"search": [0, 0, 0, 1, 1, 1], "trial": [0, 1, 2, 0, 1, 2],
                          "outcome": ["pruned", "complete", "complete", "complete", "pruned", "complete"],
                          "value": [None, 0.90, 0.85, 0.80, None, 0.95], "seconds": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    curves = budget_curves({"m": table})
    first = curves[curves["search"] == 0]
    assert first["best"].tolist()[1:] == [0.90, 0.90] and pd.isna(first["best"].iloc[0])  # a pruned trial scores nothing
    assert curves[curves["search"] == 1]["best"].tolist() == [0.80, 0.80, 0.95]
    assert first["seconds"].tolist() == [1.0, 3.0, 6.0]  # training time spent so far


def test_the_tuning_report_states_cost_and_choices(mmoe_search, tmp_path):
    root = tmp_path / "tuning"
    root.mkdir()
    (root / "mmoe").symlink_to(mmoe_search[0])
    write_tuning_report(root, SETTINGS, tmp_path / "out")
    text = (tmp_path / "out" / "TUNING.md").read_text()
    best = yaml.safe_load((mmoe_search[0] / BEST).read_text())
    assert f"| mmoe | 6 | {best['trial'] + 1} | {best['validation']:.5f} |" in text
    assert "6 trials per search, 1 independent search per model" in text
    assert (tmp_path / "out" / "budget_sensitivity.png").read_bytes().startswith(b"\x89PNG")
    curves = pd.read_csv(tmp_path / "out" / "budget_sensitivity.csv")
    assert curves["trials"].tolist() == list(range(1, 7))


def test_the_tuned_pipeline_runs_end_to_end(census_dir, tmp_path, monkeypatch):
    """Every stage of pipelines/tuned/dvc.yaml, its command as written there, in a scratch copy of the
    repository's layout on a census slice: two models, two searches of three trials, two seeds."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["seeds"] = "0-1"
    params["train"].update(max_epochs=2, seed_workers=1, num_threads=1, device="cpu")
    params["tune"].update(models=["single_task", "ple"], trials=3, startup_trials=2, eta=2, min_epochs=1,
                          parallel_trials=1, searches=2, small_budget=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (tmp_path / "search_spaces.yaml").write_text(SPACES.read_text(encoding="utf-8"), encoding="utf-8")
    for code in ("replication", "models"):
        (tmp_path / code).symlink_to(REPO / code)
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data" / "processed" / "census_income_marital").symlink_to(census_dir)
    monkeypatch.chdir(tmp_path)
    for model in params["tune"]["models"]:  # the default pipeline's untuned runs, which the leaderboard reads
        assert main(["train", "--data", "data/processed/census_income_marital", "--model", model, "--seeds", "0-1",
                     "--out", f"results/runs/census_income_marital/{model}", "--no-checkpoints"]) == 0
    ran = run_stages(REPO / "pipelines" / "tuned" / "dvc.yaml", params)
    models = params["tune"]["models"]
    assert ran == [*(f"tune@{m}" for m in models), *(f"train_{b}@{m}" for b in ("full", "small") for m in models),
                   "aggregate", "stats", "leaderboard", "tuning_report"]
    trials = pd.read_csv("results/tuning/census_income_marital/ple/trials.csv")
    assert sorted(set(trials["search"])) == [0, 1] and len(trials) == 6
    board = pd.read_csv("results/leaderboard_tuned.csv")
    assert board["protocol_hash"].nunique() == 3  # untuned, small budget, full budget: never one table
    text = Path("results/leaderboard_tuned.md").read_text(encoding="utf-8")
    assert "tuned (3 trials per model)" in text and "tuned (1 trials per model)" in text
    record = json.loads(Path("results/runs/census_income_marital_tuned_full/ple/seed_0.json").read_text())
    best = yaml.safe_load(Path("results/tuning/census_income_marital/ple/best_full.yaml").read_text())
    assert record["train"]["lr"] == best["train"]["lr"] and record["tuning"]["trial"] == best["trial"]
    assert Path("paper_figures/tuned/TUNING.md").is_file()
    table = pd.read_csv("results/census_income_marital_tuned.csv")  # the DVC metrics agree with the table
    metrics = json.loads(Path("results/census_income_marital_tuned.json").read_text())
    row = table[(table["model"] == "ple") & (table["task"] == "income")].iloc[0]
    assert metrics["ple"]["income"]["auc"] == pytest.approx(row["mean"], rel=1e-5)
    assert metrics["ple"]["income"]["seeds"] == 2 == row["n_seeds"]


@dataclass(frozen=True)
class PidUnit(Unit):
    """A unit of work that reports the process it ran in."""

    def run(self, data, show_epochs: bool = False) -> list[int]:
        return [os.getpid()]


def test_a_search_keeps_its_worker_processes_from_batch_to_batch(census_dir):
    """Inside ``with``, the local executor's worker processes serve every batch (starting them costs
    seconds a batch); they end with the block. Outside it, each run ends its own."""
    data = without_test(load_processed(census_dir))
    units = [PidUnit("mmoe", {}, cfg(seed_workers=2), (seed,), torch.device("cpu"), Path(".")) for seed in (0, 1)]
    with LocalExecutor() as executor:
        first = {pid for [pid] in executor.run(units, data, done=lambda unit: None)}
        second = {pid for [pid] in executor.run(units, data, done=lambda unit: None)}
        assert os.getpid() not in first and len(first | second) <= 2  # two workers, started once
    assert not any(psutil.pid_exists(pid) for pid in first | second)
    alone = LocalExecutor()
    pids = {pid for [pid] in alone.run(units, data, done=lambda unit: None)}
    assert pids.isdisjoint(first | second) and not any(psutil.pid_exists(pid) for pid in pids)
