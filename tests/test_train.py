"""Tests for ``replication.training`` and ``replication.config``: the masked joint loss, seed parsing,
reproducibility, validation-only model selection and early stopping, the run record and the files
``train_model`` writes, and the configuration errors.

Training runs on the real prepared income-marital data cut to a small slice (3,000 training rows,
2,000 validation and 2,000 test rows), for a few epochs, on the CPU with one thread.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models
from models.base import TaskSpec
from replication.config import ConfigError, from_mapping
from replication.records import without_timings
from replication.data.census import prepare_census
from replication.data.download import download_census
from replication.data.processed import Processed, load_processed
from replication.metrics import auc
from replication.runner import train_model
from replication.training import TrainConfig, parse_seeds, predictions_path, record_path, train_seed
import replication.training.config as training_config
from replication.training.config import plan_workers
from replication.training.evaluation import gate_usage
from replication.training.objective import task_losses
from replication.weighting.base import weighted_sum
from tests.conftest import MIRROR

SLICE = {"train": 3000, "validation": 2000, "test": 2000}
TASKS = ("income", "marital")
CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"expert_units": (16,), "tower_units": (8,)}  # small MMoE, to keep the runs quick


def config(**overrides) -> TrainConfig:
    base = dict(max_epochs=2, patience=2, batch_size=512, device="cpu", eval_batch_size=4096, seed_workers=1,
                num_threads=1)
    return TrainConfig(**{**base, **overrides})


def mean_val_auc(entry: dict) -> float:
    return float(np.mean([entry["validation"][t]["auc"] for t in TASKS]))


@pytest.fixture(scope="module")
def full_data(tmp_path_factory: pytest.TempPathFactory) -> Processed:
    assert MIRROR.is_dir(), f"the shared data mirror is missing: {MIRROR}"
    raw = tmp_path_factory.mktemp("train_raw")
    download_census(raw, mirror=str(MIRROR), progress=False)
    out = tmp_path_factory.mktemp("train_processed")
    prepare_census(raw, out, "income-marital", 0)
    return load_processed(out)


@pytest.fixture(scope="module")
def data(full_data: Processed) -> Processed:
    return Processed(full_data.schema, {name: split.head(SLICE[name]) for name, split in full_data.splits.items()})


@pytest.fixture(scope="module")
def mmoe_run(data: Processed):
    """An MMoE run of 4 epochs that never stops early (patience 4), selecting on the mean AUC."""
    return train_seed("mmoe", SMALL, data, config(max_epochs=4, patience=4), 0, CPU)


def test_slice_has_both_classes_in_every_split(data: Processed) -> None:
    for name, rows in SLICE.items():
        split = data.splits[name]
        assert split.rows == rows
        assert split.y.shape == (rows, 2) and split.y_numpy.shape == (rows, 2)
        for k in range(2):
            assert set(np.unique(split.y_numpy[:, k])) == {0.0, 1.0}, (name, k)


# --------------------------------------------------------------------------------------------------
# The joint loss


BINARY = (TaskSpec("a", "binary"), TaskSpec("b", "binary"))


def joint_loss(outputs, y, tasks, weights):
    """PLE Eq. 8: the static weighting's sum of the tasks' losses."""
    return weighted_sum(task_losses(outputs, y, tasks), weights)


def test_joint_loss_masks_missing_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = {"a": torch.randn(8, generator=gen), "b": torch.randn(8, generator=gen)}
    y = torch.tensor([[1, 0], [0, 1], [1, float("nan")], [0, 0],
                      [1, float("nan")], [0, 1], [0, float("nan")], [1, 1]], dtype=torch.float32)
    got = joint_loss(logits, y, BINARY, torch.ones(2))
    labelled = ~torch.isnan(y[:, 1])
    expected = (F.binary_cross_entropy_with_logits(logits["a"], y[:, 0])
                + F.binary_cross_entropy_with_logits(logits["b"][labelled], y[labelled, 1]))
    assert labelled.sum() == 5
    assert torch.isfinite(got)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
    # Reading a missing label as 0 would give a different value.
    as_zero = (F.binary_cross_entropy_with_logits(logits["a"], y[:, 0])
               + F.binary_cross_entropy_with_logits(logits["b"], torch.nan_to_num(y[:, 1], nan=0.0)))
    assert not torch.isclose(got, as_zero)


def test_joint_loss_masked_rows_get_no_gradient() -> None:
    logits = {"a": torch.zeros(4, requires_grad=True), "b": torch.zeros(4, requires_grad=True)}
    y = torch.tensor([[1, float("nan")], [0, 1], [1, float("nan")], [0, 0]])
    joint_loss(logits, y, BINARY, torch.ones(2)).backward()
    assert logits["b"].grad[0] == 0 and logits["b"].grad[2] == 0
    assert (logits["b"].grad[[1, 3]] != 0).all()
    assert torch.isfinite(logits["a"].grad).all() and torch.isfinite(logits["b"].grad).all()


def test_joint_loss_weights_multiply_each_task() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = {"a": torch.randn(6, generator=gen), "b": torch.randn(6, generator=gen)}
    y = (torch.rand(6, 2, generator=gen) > 0.5).float()
    la = F.binary_cross_entropy_with_logits(logits["a"], y[:, 0])
    lb = F.binary_cross_entropy_with_logits(logits["b"], y[:, 1])
    got = joint_loss(logits, y, BINARY, torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(got, 2.0 * la + 0.5 * lb)
    torch.testing.assert_close(joint_loss(logits, y, BINARY, torch.tensor([0.0, 1.0])), lb)


def test_joint_loss_task_with_no_label_contributes_zero() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = {"a": torch.randn(5, generator=gen, requires_grad=True), "b": torch.randn(5, generator=gen, requires_grad=True)}
    y = torch.stack([torch.tensor([1.0, 0, 1, 1, 0]), torch.full((5,), float("nan"))], dim=1)
    got = joint_loss(logits, y, BINARY, torch.ones(2))
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(logits["a"], y[:, 0]))
    got.backward()
    assert torch.isfinite(logits["b"].grad).all() and (logits["b"].grad == 0).all()


def test_joint_loss_regression_task_is_masked_mse() -> None:
    tasks = (TaskSpec("a", "binary"), TaskSpec("r", "regression"))
    outputs = {"a": torch.tensor([0.0, 0.0, 0.0]), "r": torch.tensor([1.0, 2.0, 5.0])}
    y = torch.tensor([[1.0, 3.0], [0.0, float("nan")], [1.0, 1.0]])
    expected = F.binary_cross_entropy_with_logits(outputs["a"], y[:, 0]) + (4.0 + 16.0) / 2
    torch.testing.assert_close(joint_loss(outputs, y, tasks, torch.ones(2)), expected)


# --------------------------------------------------------------------------------------------------
# Seeds


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-9", list(range(10))), ("0,3,5-6", [0, 3, 5, 6]), ("7", [7]), (" 1 , 2 ", [1, 2]), ("4-4", [4])],
)
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.fault
@pytest.mark.parametrize("text", ["a", "", "1,1", "3-", "0-2,2", "1,,2", "5-3", "0,5-3", "2-1,4", "-1"])
def test_parse_seeds_refuses_bad_input(text: str) -> None:
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(text)


# --------------------------------------------------------------------------------------------------
# Reproducibility


def test_same_seed_same_run_and_other_seed_other_run(data: Processed) -> None:
    cfg = config(max_epochs=2)
    first, pred_first = train_seed("shared_bottom", {}, data, cfg, 3, CPU)
    second, pred_second = train_seed("shared_bottom", {}, data, cfg, 3, CPU)
    other, pred_other = train_seed("shared_bottom", {}, data, cfg, 4, CPU)
    assert first["test"] == second["test"]
    assert first["best_epoch"] == second["best_epoch"]
    assert without_timings(first)["history"] == without_timings(second)["history"]
    np.testing.assert_array_equal(pred_first, pred_second)
    assert other["test"] != first["test"]
    assert without_timings(other)["history"] != without_timings(first)["history"]
    assert not np.array_equal(pred_other, pred_first)


# --------------------------------------------------------------------------------------------------
# Model selection


def test_mean_selection_picks_the_best_mean_validation_auc(mmoe_run) -> None:
    record, _ = mmoe_run
    history = record["history"]
    assert record["epochs_run"] == len(history) == 4
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    best = int(np.argmax([mean_val_auc(h) for h in history])) + 1
    assert record["best_epoch"] == {"income": best, "marital": best}
    for task in TASKS:
        assert record["validation"][task] == history[best - 1]["validation"][task]


def test_history_entries(mmoe_run) -> None:
    record, _ = mmoe_run
    for entry in record["history"]:
        assert set(entry) == {"epoch", "train_loss", "task_train_loss", "loss_weights", "validation", "train_seconds",
                              "validation_seconds"}
        assert np.isfinite(entry["train_loss"]) and entry["train_loss"] > 0
        assert set(entry["validation"]) == set(TASKS)
        for task in TASKS:
            assert 0.0 <= entry["validation"][task]["auc"] <= 1.0


@pytest.fixture(scope="module")
def main_task_run(data: Processed):
    return train_seed("mmoe", SMALL, data, config(max_epochs=4, patience=4, selection="main_task"), 0, CPU)


def test_main_task_selection_picks_the_best_income_auc(main_task_run) -> None:
    record, _ = main_task_run
    history = record["history"]
    assert len(history) == 4
    best = int(np.argmax([h["validation"]["income"]["auc"] for h in history])) + 1
    assert record["best_epoch"]["income"] == best
    assert record["validation"]["income"] == history[best - 1]["validation"]["income"]


def test_main_task_selection_records_every_task_at_the_main_task_epoch(main_task_run) -> None:
    """Every task is evaluated with the weights selected on the main task."""
    record, _ = main_task_run
    history = record["history"]
    best = record["best_epoch"]["income"]
    assert record["best_epoch"] == {"income": best, "marital": best}
    for task in TASKS:
        assert record["validation"][task] == history[best - 1]["validation"][task]


def test_main_task_selection_predicts_every_task_with_the_selected_weights(data: Processed) -> None:
    """After one epoch both selections pick epoch 1, i.e. the same weights: identical predictions."""
    mean, pred_mean = train_seed("shared_bottom", {}, data, config(max_epochs=1, selection="mean"), 0, CPU)
    main, pred_main = train_seed("shared_bottom", {}, data, config(max_epochs=1, selection="main_task"), 0, CPU)
    assert without_timings(mean)["history"] == without_timings(main)["history"]
    np.testing.assert_array_equal(pred_main[:, 0], pred_mean[:, 0])
    np.testing.assert_array_equal(pred_main[:, 1], pred_mean[:, 1])
    assert main["test"] == mean["test"]


def test_single_task_selects_each_task_on_its_own_metric(data: Processed) -> None:
    record, prediction = train_seed("single_task", {"bottom_units": (32,)}, data,
                                    config(max_epochs=4, patience=4, lr=3e-3), 0, CPU)
    history = record["history"]
    for task in TASKS:
        best = int(np.argmax([h["validation"][task]["auc"] for h in history])) + 1
        assert record["best_epoch"][task] == best, task
        assert record["validation"][task] == history[best - 1]["validation"][task]
    y = data.splits["test"].y_numpy
    for k, task in enumerate(TASKS):
        assert record["test"][task]["auc"] == auc(y[:, k], prediction[:, k])


def test_test_metrics_are_recomputed_from_the_returned_predictions(mmoe_run, data: Processed) -> None:
    record, prediction = mmoe_run
    y = data.splits["test"].y_numpy
    assert prediction.shape == (SLICE["test"], 2)
    assert prediction.dtype == np.float64
    assert ((prediction > 0) & (prediction < 1)).all()  # probabilities, not logits
    for k, task in enumerate(TASKS):
        assert record["test"][task] == {"auc": auc(y[:, k], prediction[:, k])}


def test_early_stopping_after_patience_epochs_without_improvement(data: Processed) -> None:
    record, _ = train_seed("shared_bottom", {}, data, config(max_epochs=50, patience=1, lr=1e-2), 0, CPU)
    assert record["epochs_run"] < 50
    best = record["best_epoch"]["income"]
    assert record["best_epoch"] == {"income": best, "marital": best}
    assert record["epochs_run"] - best == 1
    history = record["history"]
    scores = [mean_val_auc(h) for h in history]
    assert best == int(np.argmax(scores)) + 1
    assert scores[-1] <= scores[best - 1]


def test_patience_counts_epochs_without_improvement(data: Processed) -> None:
    record, _ = train_seed("shared_bottom", {}, data, config(max_epochs=50, patience=2, lr=1e-2), 0, CPU)
    assert record["epochs_run"] < 50
    assert record["epochs_run"] - record["best_epoch"]["income"] == 2


# --------------------------------------------------------------------------------------------------
# The run record and the files


def test_record_fields(mmoe_run, data: Processed) -> None:
    record, _ = mmoe_run
    assert record["status"] == "ok"
    assert record["model"] == "mmoe"
    hparams = record["hparams"]
    assert hparams["embedding_dim"] == 8  # a default, recorded
    assert hparams["n_experts"] == 4
    assert tuple(hparams["expert_units"]) == (16,) and tuple(hparams["tower_units"]) == (8,)
    assert set(hparams) == set(models.registry.model_hparams("mmoe"))
    assert record["seed"] == 0
    assert record["split_seed"] == 0
    assert record["data_hash"] == data.schema["data_hash"]
    assert record["dataset"] == "census-income-kdd" and record["task_group"] == "income-marital"
    assert record["main_task"] == "income"
    assert record["tasks"] == [{"name": "income", "type": "binary"}, {"name": "marital", "type": "binary"}]
    torch.manual_seed(0)
    model = models.create_model("mmoe", data.schema, **SMALL)
    assert record["n_parameters"] == sum(p.numel() for p in model.parameters())
    assert record["seconds"] > 0
    assert record["train"] == dataclasses.asdict(config(max_epochs=4, patience=4))
    env = record["environment"]
    assert {"versions", "git_commit", "device"} <= set(env)
    assert env["versions"]["torch"] == metadata.version("torch")
    assert env["versions"]["numpy"] == np.__version__
    assert env["device"].startswith("cpu")
    assert isinstance(env["git_commit"], str) and env["git_commit"]
    json.dumps(record)  # JSON-serialisable as it is


def test_train_model_writes_a_record_and_predictions_per_seed(data: Processed, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    records = train_model("shared_bottom", {}, data, config(max_epochs=1, patience=1), [5, 6], out)
    assert [r["seed"] for r in records] == [5, 6]
    assert sorted(p.name for p in out.iterdir()) == [
        "seed_5.json", "seed_5.test_predictions.npz", "seed_6.json", "seed_6.test_predictions.npz",
    ]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    y = data.splits["test"].y_numpy
    for seed, record in zip([5, 6], records):
        assert record_path(out, seed) == out / f"seed_{seed}.json"
        assert predictions_path(out, seed) == out / f"seed_{seed}.test_predictions.npz"
        assert json.loads(record_path(out, seed).read_text(encoding="utf-8")) == json.loads(json.dumps(record))
        assert record["epochs_run"] == 1
        with np.load(predictions_path(out, seed)) as npz:
            prediction = npz["prediction"]
            assert prediction.shape == (SLICE["test"], 2)
            np.testing.assert_array_equal(npz["y"], y)
            assert npz["tasks"].tolist() == list(TASKS)
        for k, task in enumerate(TASKS):
            assert record["test"][task]["auc"] == auc(y[:, k], prediction[:, k])
    assert records[0]["test"] != records[1]["test"]


def test_seeds_in_worker_processes_give_the_records_of_one_process(data: Processed, tmp_path: Path) -> None:
    """Two spawned single-threaded workers reproduce, seed for seed, the runs of this process."""
    cfg = config(max_epochs=2, patience=2)
    alone = train_model("mmoe", SMALL, data, cfg, [3, 4], tmp_path / "alone")
    pooled = train_model("mmoe", SMALL, data, dataclasses.replace(cfg, seed_workers=2), [3, 4], tmp_path / "pool")
    assert [r["seed"] for r in pooled] == [3, 4]
    for a, b in zip(alone, pooled):
        assert without_timings(a)["history"] == without_timings(b)["history"] and a["test"] == b["test"]
        assert json.loads(record_path(tmp_path / "pool", b["seed"]).read_text(encoding="utf-8"))["test"] == b["test"]
    assert alone[0]["test"] != alone[1]["test"]


@pytest.mark.parametrize(("workers", "threads", "seeds", "cores", "expected"), [
    (0, 0, 10, 2, (2, 1)),  # auto: one single-threaded process per core
    (0, 0, 1, 16, (1, 16)),  # never more processes than seeds
    (3, 0, 10, 16, (3, 5)),  # the cores divided among the workers
    (1, 4, 10, 2, (1, 4)),  # both given
])
def test_plan_workers_on_cpu(monkeypatch, workers, threads, seeds, cores, expected) -> None:
    monkeypatch.setattr(training_config, "cpu_cores", lambda: cores)
    cfg = config(seed_workers=workers, num_threads=threads)
    assert plan_workers(cfg, CPU, seeds) == expected
    assert plan_workers(dataclasses.replace(cfg, seed_workers=0), torch.device("cuda"), seeds)[0] == 1


def test_gate_usage_is_the_mean_and_std_of_the_gates_over_all_rows(data: Processed) -> None:
    torch.manual_seed(0)
    model = models.create_model("ple", data.schema, expert_units=(8,), tower_units=(4,))
    test = data.splits["test"]
    usage = gate_usage(model, test, batch_size=700)  # three uneven batches
    with torch.no_grad():
        gates = model(test.x_cat, test.x_num).gates
    assert list(usage) == list(gates) == list(model.gate_experts())
    for name, weights in gates.items():
        assert usage[name]["experts"] == list(model.gate_experts()[name])
        np.testing.assert_allclose(usage[name]["mean"], weights.double().mean(0).numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(usage[name]["std"], weights.double().std(0, unbiased=False).numpy(), rtol=1e-6, atol=1e-9)
    assert gate_usage(models.create_model("shared_bottom", data.schema), test, 700) == {}


def test_record_carries_gate_usage_of_the_selected_weights(mmoe_run) -> None:
    record, _ = mmoe_run
    assert list(record["gates_test"]) == ["income", "marital"]
    for usage in record["gates_test"].values():
        assert usage["experts"] == [f"shared/{i}" for i in range(4)]
        assert sum(usage["mean"]) == pytest.approx(1.0)


def test_train_model_refuses_loss_weights_for_unknown_tasks(data: Processed, tmp_path: Path) -> None:
    for cfg in (config(loss_weights={"ctr": 2.0}), config(loss_weight_decay={"ctr": 0.9})):
        with pytest.raises(ConfigError) as caught:
            train_model("shared_bottom", {}, data, cfg, [0], tmp_path)
        assert "ctr" in str(caught.value)
        assert "income" in str(caught.value) and "marital" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_zero_loss_weight_leaves_that_task_untrained(data: Processed) -> None:
    """With w_marital = 0, the marital tower receives no gradient: its test predictions are those of
    the freshly initialised model."""
    cfg = config(max_epochs=1, patience=1, loss_weights={"marital": 0.0})
    record, prediction = train_seed("single_task", {}, data, cfg, 0, CPU)
    torch.manual_seed(0)
    fresh = models.create_model("single_task", data.schema)
    test = data.splits["test"]
    with torch.no_grad():
        untrained = torch.sigmoid(fresh(test.x_cat, test.x_num).outputs["marital"]).double().numpy()
    np.testing.assert_allclose(prediction[:, 1], untrained, rtol=0, atol=1e-6)
    assert not np.allclose(prediction[:, 0], torch.sigmoid(fresh(test.x_cat, test.x_num).outputs["income"]).detach().double().numpy())


@pytest.mark.fault
def test_diverging_loss_gives_a_failed_record(data: Processed) -> None:
    """An infinite label makes the binary cross-entropy infinite or NaN: the seed ends with a record of
    status failed that names the reason and the epoch, and no predictions."""
    train = data.splits["train"]
    y = train.y.clone()
    y[0, 0] = float("inf")
    bad_train = dataclasses.replace(train, y=y, y_numpy=y.numpy())
    bad = Processed(data.schema, {**data.splits, "train": bad_train})
    record, prediction = train_seed("shared_bottom", {}, bad, config(max_epochs=3), 0, CPU)
    assert prediction is None
    assert record["status"] == "failed"
    assert record["failure"]["epoch"] == 1
    assert record["failure"]["reason"] in ("training loss became nan", "training loss became inf")
    assert record["epochs_run"] == 0 and "test" not in record


# --------------------------------------------------------------------------------------------------
# Configuration


def test_from_mapping_builds_a_valid_config() -> None:
    cfg = from_mapping(TrainConfig, {"max_epochs": 7, "selection": "main_task", "loss_weights": {"income": 2}}, "train")
    assert cfg == TrainConfig(max_epochs=7, selection="main_task", loss_weights={"income": 2.0})
    assert isinstance(cfg.loss_weights["income"], float)
    assert from_mapping(TrainConfig, {}, "train") == TrainConfig()


def test_from_mapping_accepts_an_int_for_a_float() -> None:
    cfg = from_mapping(TrainConfig, {"lr": 1}, "train")
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


@pytest.mark.fault
def test_from_mapping_refuses_an_unknown_key() -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping(TrainConfig, {"epochs": 3}, "train")
    message = str(caught.value)
    assert "train.epochs" in message
    for field in dataclasses.fields(TrainConfig):
        assert field.name in message


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_epochs", "ten"), ("max_epochs", 2.5), ("max_epochs", True), ("lr", "fast"), ("selection", 3),
     ("loss_weights", [1, 2]), ("loss_weights", {"income": "high"}), ("device", 0)],
)
@pytest.mark.fault
def test_from_mapping_refuses_a_wrong_type(key: str, value) -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping(TrainConfig, {key: value}, "train")
    assert f"train.{key}" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("max_epochs", 0), ("lr", -1), ("lr", 0), ("patience", 0), ("batch_size", 0), ("weight_decay", -0.5),
     ("device", "tpu"), ("num_threads", -1), ("seed_workers", -1)],
)
@pytest.mark.fault
def test_from_mapping_refuses_an_out_of_range_value(key: str, value) -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping(TrainConfig, {key: value}, "train")
    message = str(caught.value)
    assert f"train.{key}" in message
    assert repr(value) in message


@pytest.mark.fault
def test_from_mapping_refuses_negative_loss_weights() -> None:
    with pytest.raises(ConfigError, match=r"train\.loss_weights\.income = -1\.0"):
        from_mapping(TrainConfig, {"loss_weights": {"income": -1}}, "train")
    with pytest.raises(ConfigError, match=r"train\.loss_weight_decay\.income"):
        from_mapping(TrainConfig, {"loss_weight_decay": {"income": 0}}, "train")


def test_from_mapping_lists_allowed_selection_values() -> None:
    with pytest.raises(ConfigError) as caught:
        from_mapping(TrainConfig, {"selection": "best"}, "train")
    message = str(caught.value)
    assert "train.selection" in message and "'best'" in message
    assert "'mean'" in message and "'main_task'" in message


# --------------------------------------------------------------------------------------------------
# Precision and compilation (the GPU options; they run on the CPU too)


def test_bf16_autocast_changes_the_numbers_a_little(data: Processed) -> None:
    """bfloat16 training steps: not the fp32 numbers (so autocast is on), but close to them; the
    predictions are fp32 (bf16 logits would leave about 100 distinct values in 2,000 rows here)."""
    cfg = config(max_epochs=2)
    full, full_prediction = train_seed("mmoe", SMALL, data, cfg, 0, CPU)
    half, half_prediction = train_seed("mmoe", SMALL, data, dataclasses.replace(cfg, precision="bf16"), 0, CPU)
    assert half["train"]["precision"] == "bf16"
    assert not np.array_equal(half_prediction, full_prediction)
    assert len(np.unique(half_prediction[:, 0])) > 0.9 * len(np.unique(full_prediction[:, 0]))
    for task in TASKS:
        assert half["test"][task]["auc"] == pytest.approx(full["test"][task]["auc"], abs=0.01)


def test_a_compiled_model_trains_to_the_eager_numbers(data: Processed) -> None:
    tiny = {"bottom_units": [8], "tower_units": [4]}
    cfg = config(max_epochs=1)
    eager, _ = train_seed("shared_bottom", tiny, data, cfg, 0, CPU)
    compiled, _ = train_seed("shared_bottom", tiny, data, dataclasses.replace(cfg, compile=True), 0, CPU)
    assert compiled["train"]["compile"] is True
    assert compiled["history"][0]["train_loss"] == pytest.approx(eager["history"][0]["train_loss"], rel=1e-5)
    for task in TASKS:
        assert compiled["test"][task]["auc"] == pytest.approx(eager["test"][task]["auc"], abs=1e-4)


def test_a_run_selected_as_a_whole_also_records_each_task_at_its_own_best_epoch(mmoe_run) -> None:
    """per_task_selection: each task's test metric at its own best validation epoch within the run,
    the chance Single-Task gets; the run itself stays selected on the mean."""
    record, _ = mmoe_run
    history = record["history"]
    alternative = record["per_task_selection"]
    for task in TASKS:
        best = int(np.argmax([h["validation"][task]["auc"] for h in history])) + 1
        assert alternative["best_epoch"][task] == best
        assert alternative["validation"][task] == history[best - 1]["validation"][task]
        assert 0.0 <= alternative["test"][task]["auc"] <= 1.0
    same = [t for t in TASKS if alternative["best_epoch"][t] == record["best_epoch"][t]]
    for task in same:  # the same epoch: the same weights, the same test metric
        assert alternative["test"][task] == record["test"][task]


def test_per_task_selection_equals_the_shadow_of_a_whole_run_while_neither_stops(data: Processed) -> None:
    """With patience past the epoch cap neither run stops early, so selection: per_task picks and reads
    exactly what the mean-selected run records as per_task_selection."""
    whole, _ = train_seed("mmoe", SMALL, data, config(max_epochs=3, patience=4), 0, CPU)
    per_task, _ = train_seed("mmoe", SMALL, data, config(max_epochs=3, patience=4, selection="per_task"), 0, CPU)
    assert "per_task_selection" not in per_task  # it already selects per task
    assert per_task["best_epoch"] == whole["per_task_selection"]["best_epoch"]
    assert per_task["test"] == whole["per_task_selection"]["test"]
    assert without_timings(per_task)["history"] == without_timings(whole)["history"]
