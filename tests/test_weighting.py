"""The loss weighting interface (replication/weighting): the method registry, the static weights of
PLE Eq. 10, what a run records per epoch, the models' shared parameters, and the protocol staying
blind to the weighting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from models import create_model
from models.base import TaskSpec
from replication.config import ConfigError
from replication.data.processed import Processed, load_processed
from replication.data.synthetic import SyntheticConfig, generate_synthetic
from replication.protocol import loss_weighting, protocol_hash
from replication.records import without_timings
from replication.training import train_seed, train_seeds
from replication.training.config import TrainConfig
from replication.weighting import available_weightings, weighting_class
from replication.weighting.base import Weighting, weighted_sum

CPU = torch.device("cpu")
TASKS = (TaskSpec("task1", "regression"), TaskSpec("task2", "regression"))
pytestmark = pytest.mark.usefixtures("one_thread")


def config(**overrides) -> TrainConfig:
    base = dict(max_epochs=3, patience=3, batch_size=256, device="cpu", eval_batch_size=4096, seed_workers=1,
                num_threads=1)
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Processed:
    root = tmp_path_factory.mktemp("weighting")
    generate_synthetic(SyntheticConfig(correlation=0.5, rows=1500, dim=8, validation_fraction=0.2,
                                       test_fraction=0.2), root / "data")
    return load_processed(root / "data")


def test_registry_lists_methods_and_refuses_an_unknown_one() -> None:
    assert "static" in available_weightings() and "base" not in available_weightings()
    assert weighting_class("static").name() == "static"
    for bad in ("nope", "base", "../static", "Static"):
        with pytest.raises(ConfigError, match=r"train.weighting = .* is not a loss weighting method; use one of .*static"):
            weighting_class(bad)


def test_config_refuses_unknown_method_parameters_and_static_weights_under_another_method() -> None:
    with pytest.raises(ConfigError, match=r"\['temperature'\] are not parameters of static \(it accepts: none\)"):
        config(weighting_params={"temperature": 2}).validate("train")
    with pytest.raises(ConfigError, match="is not a loss weighting method"):
        config(weighting="nope").validate("train")


def test_weighted_sum_adds_in_task_order_and_static_follows_ple_eq10() -> None:
    losses = torch.tensor([0.5, 2.0])
    assert weighted_sum(losses, torch.tensor([2.0, 0.25])).item() == 1.5
    static = weighting_class("static")(TASKS, config(loss_weights={"task1": 2.0},
                                                     loss_weight_decay={"task2": 0.5}), CPU, None)
    for epoch, expected in ((1, [2.0, 1.0]), (3, [2.0, 0.25])):
        static.start_epoch(epoch)
        assert static.batch_weights().tolist() == expected
    assert static.epoch_weights() == {"task1": 2.0, "task2": 0.625}  # the mean over the two batches noted
    assert static.epoch_weights() == {"task1": 0.0, "task2": 0.0}  # it resets


def test_static_backward_is_the_weighted_sum_plus_penalty() -> None:
    p = torch.tensor([1.0, 3.0], requires_grad=True)
    static = weighting_class("static")(TASKS, config(loss_weights={"task2": 0.5}), CPU, None)
    static.start_epoch(1)
    reported = static.backward(torch.stack([p[0] ** 2, p[1] ** 2]), (p ** 2).sum() * 0.1)
    assert reported.item() == pytest.approx(1.0 + 0.5 * 9.0 + 0.1 * 10.0)
    torch.testing.assert_close(p.grad, torch.tensor([2.0 + 0.2, 0.5 * 6.0 + 0.6]))


def test_history_records_task_losses_weights_and_epoch_seconds(data: Processed) -> None:
    record, _ = train_seed("mmoe", {}, data, config(loss_weight_decay={"task2": 0.5}), 0, CPU)
    for entry in record["history"]:
        assert entry["loss_weights"] == {"task1": 1.0, "task2": 0.5 ** (entry["epoch"] - 1)}
        assert entry["train_loss"] == pytest.approx(entry["task_train_loss"]["task1"]
                                                    + entry["loss_weights"]["task2"] * entry["task_train_loss"]["task2"],
                                                    rel=1e-5)
        assert entry["train_seconds"] > 0 and entry["validation_seconds"] > 0
    assert record["train"]["weighting"] == "static" and record["train"]["weighting_params"] == {}


def test_weighting_is_an_entry_property_not_the_protocols(data: Processed) -> None:
    equal, _ = train_seed("shared_bottom", {}, data, config(max_epochs=1), 0, CPU)
    weighted, _ = train_seed("shared_bottom", {}, data, config(max_epochs=1, loss_weights={"task1": 2.0}), 0, CPU)
    renamed = {**equal, "train": {**equal["train"], "weighting": "dwa", "weighting_params": {"temperature": 1}}}
    assert protocol_hash(equal) == protocol_hash(weighted) == protocol_hash(renamed)
    assert loss_weighting(equal) == "equal" and loss_weighting(weighted) == "w0 task1=2"
    assert equal["test"] != weighted["test"]


def test_stacked_seeds_refuse_a_method_with_per_seed_state(data: Processed, monkeypatch) -> None:
    class PerSeed(Weighting):
        stackable = False

    monkeypatch.setattr("replication.training.steps.weighting_class", lambda name: PerSeed)
    with pytest.raises(ConfigError, match="set train.ensemble: 1"):
        train_seeds("mmoe", {}, data, config(ensemble=2), [0, 1], CPU)


def test_stacked_seeds_record_the_static_weights_of_a_lone_run(data: Processed) -> None:
    cfg = config(max_epochs=2, loss_weight_decay={"task1": 0.5})
    stacked = train_seeds("mmoe", {}, data, dataclasses.replace(cfg, ensemble=2), [0, 1], CPU)
    lone, _ = train_seed("mmoe", {}, data, cfg, 1, CPU)
    for (record, _), seed in zip(stacked, (0, 1)):
        assert [h["loss_weights"] for h in record["history"]] == [h["loss_weights"] for h in lone["history"]]
        assert set(record["history"][0]["task_train_loss"]) == {"task1", "task2"}


def test_shared_parameters_are_what_several_tasks_use(data: Processed) -> None:
    def shared(name: str, **hparams) -> set[str]:
        model = create_model(name, data.schema, **hparams)
        ids = {id(p) for p in model.shared_parameters()}
        return {n.split(".")[0] for n, p in model.named_parameters() if id(p) in ids}

    assert shared("single_task") == set() and shared("l2_constrained") == set()
    assert shared("shared_bottom") == {"embedding", "bottom"}
    assert shared("mmoe") == {"embedding", "experts"}  # gates and towers are each one task's
    ple = create_model("ple", data.schema, n_levels=2)
    last = {id(p) for p in ple.levels[-1].task_experts.parameters()}
    first = {id(p) for p in ple.levels[0].task_experts.parameters()}
    ids = {id(p) for p in ple.shared_parameters()}
    assert first <= ids and not last & ids  # level 1's task experts feed the shared gate; level 2's do not


def test_resumed_run_records_the_same_weights_as_an_uninterrupted_one(data: Processed, tmp_path: Path) -> None:
    from replication.runfolder import SeedCheckpoint

    cfg = config(max_epochs=3, loss_weight_decay={"task2": 0.5})
    whole, _ = train_seed("mmoe", {}, data, cfg, 0, CPU)
    checkpoint = SeedCheckpoint(tmp_path / "ckpt")
    train_seed("mmoe", {}, data, dataclasses.replace(cfg, max_epochs=2), 0, CPU, checkpoint=checkpoint,
               checkpoint_seconds=0)
    resumed, _ = train_seed("mmoe", {}, data, cfg, 0, CPU, checkpoint=checkpoint, checkpoint_seconds=0)
    assert without_timings(resumed)["history"] == without_timings(whole)["history"]
