"""Tests for the stacked step (``replication.training.steps.StackedStep``): seeds trained together as one batched computation.

An ensemble's seed does not bit-match its lone run (the batched products add in another order), but
it starts from the same weights and reads the same batches, so over a few epochs on the census
slice the two agree to float noise: the same epochs, the same selected epochs, test AUCs within
1e-4. Any mix-up between seeds (another seed's batches, weights or gradients) moves them by far
more. Runs use the census slice of ``tests/test_train.py`` on the CPU with one thread.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from models.registry import model_spec
from replication.runner import train_model
from replication.io import write_json
from replication.training import TrainConfig, record_path, train_seed, train_seeds
from replication.training.steps import Stack
from tests.test_train import CPU, SMALL, config, data, full_data  # noqa: F401 (fixtures)

SEEDS = [0, 1, 2]
pytestmark = pytest.mark.usefixtures("one_thread")


def ensemble_config(**overrides) -> TrainConfig:
    return config(**{"max_epochs": 4, "patience": 2, "ensemble": 3, **overrides})


@pytest.mark.parametrize("model, hparams", [("shared_bottom", {}), ("ple", SMALL | {"n_levels": 2}),
                                            ("single_task", {}), ("l2_constrained", {})])
def test_each_seed_of_an_ensemble_agrees_with_its_lone_run(data, model, hparams) -> None:
    """Shared bottom's seeds stop at different epochs (3, 4, 3 here), so seeds leave the stack midway;
    single-task selects per task; L2-constrained adds its penalty inside the batched step."""
    cfg = ensemble_config()
    together = train_seeds(model, hparams, data, cfg, SEEDS, CPU, show_epochs=False)
    for seed, (record, prediction) in zip(SEEDS, together):
        lone, lone_prediction = train_seed(model, hparams, data, cfg, seed, CPU, show_epochs=False)
        assert record["seed"] == seed and record["status"] == "ok"
        assert sorted(record) == sorted(lone)
        assert record["epochs_run"] == lone["epochs_run"] and record["best_epoch"] == lone["best_epoch"]
        assert record["history"][0]["train_loss"] == pytest.approx(lone["history"][0]["train_loss"], rel=1e-6)
        for task, metrics in record["test"].items():
            assert metrics["auc"] == pytest.approx(lone["test"][task]["auc"], abs=1e-4)
        np.testing.assert_allclose(prediction, lone_prediction, rtol=0, atol=1e-4)
    assert len({r["epochs_run"] for r, _ in together}) > 1 or model != "shared_bottom"


@pytest.mark.parametrize("model", models.list_models())
def test_every_model_trains_in_an_ensemble(data, model) -> None:
    cfg = ensemble_config(max_epochs=1, ensemble=2)
    together = train_seeds(model, {}, data, cfg, [0, 1], CPU, show_epochs=False)
    assert [r["seed"] for r, _ in together] == [0, 1]
    for record, prediction in together:
        assert record["status"] == "ok" and record["epochs_run"] == 1 and record["train"]["ensemble"] == 2
        assert prediction.shape == (data.splits["test"].rows, 2) and np.isfinite(prediction).all()
    assert together[0][1].tolist() != together[1][1].tolist()  # two seeds, two models


def test_a_stack_keeps_the_rows_it_is_told_with_their_optimizer_state() -> None:
    torch.manual_seed(0)
    params = {"w": torch.randn(3, 4, 2), "b": torch.randn(3, 2)}
    stack = Stack(params, {"buf": torch.arange(3.0)}, TrainConfig(lr=0.1))
    (stack.params["w"].sum() * 2 + stack.params["b"].pow(2).sum()).backward()
    stack.optimizer.step()
    kept = stack.keep([0, 2], TrainConfig(lr=0.1))
    torch.testing.assert_close(kept.params["w"], stack.params["w"][[0, 2]].detach(), rtol=0, atol=0)
    torch.testing.assert_close(kept.buffers["buf"], torch.tensor([0.0, 2.0]), rtol=0, atol=0)
    before = stack.optimizer.state[stack.params["b"]]
    after = kept.optimizer.state[kept.params["b"]]
    torch.testing.assert_close(after["exp_avg_sq"], before["exp_avg_sq"][[0, 2]], rtol=0, atol=0)
    assert int(after["step"]) == int(before["step"]) == 1
    # A further step moves the kept rows exactly as it moves them in the full stack.
    for s in (stack, kept):
        s.optimizer.zero_grad()
        (s.params["w"].sum() * 2 + s.params["b"].pow(2).sum()).backward()
        s.optimizer.step()
    torch.testing.assert_close(kept.params["b"], stack.params["b"][[0, 2]].detach(), rtol=0, atol=0)


POISONED = '''
import torch
from models.shared_bottom import SharedBottom


class Poisoned(SharedBottom):
    """Shared bottom whose outputs are infinite for the seeds whose draw below falls under 0.5."""

    model_name = "poisoned"

    def __init__(self, schema, **hparams):
        super().__init__(schema, **hparams)
        self.register_buffer("poison", torch.where(torch.rand(()) < 0.5, float("inf"), 1.0))

    def forward(self, x_cat, x_num):
        out = super().forward(x_cat, x_num)
        if self.training:
            out.outputs[self.tasks[0].name] = out.outputs[self.tasks[0].name] * self.poison
        return out
'''


def test_a_diverging_seed_leaves_the_ensemble_and_the_others_train_on(data, tmp_path: Path) -> None:
    source = tmp_path / "poisoned.py"
    source.write_text(textwrap.dedent(POISONED), encoding="utf-8")
    name = model_spec(f"{source}:Poisoned")
    poisoned = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        poisoned.append(bool(models.create_model(name, data.schema).poison.isinf()))
    assert 0 < sum(poisoned) < len(SEEDS), "the test needs some seeds poisoned and some not"
    records = train_model(name, {}, data, ensemble_config(), SEEDS, tmp_path / "runs")
    for seed, bad, record in zip(SEEDS, poisoned, records):
        assert record["status"] == ("failed" if bad else "ok")
        assert json.loads(record_path(tmp_path / "runs", seed).read_text()) == record
        if bad:
            assert record["failure"]["epoch"] == 1 and record["epochs_run"] == 0
        else:
            assert record["epochs_run"] >= 3 and np.isfinite(record["history"][-1]["train_loss"])


def test_records_of_an_ensemble_say_so_and_share_its_time(data, tmp_path: Path) -> None:
    records = train_model("mmoe", SMALL, data, ensemble_config(ensemble=2), SEEDS, tmp_path)
    assert [r["train"]["ensemble"] for r in records] == [2, 2, 2]
    assert records[0]["seconds"] == records[1]["seconds"]  # seeds 0 and 1 trained together; seed 2 alone
    write_json(tmp_path / "copy.json", records[2])
    assert json.loads((tmp_path / "copy.json").read_text()) == json.loads(record_path(tmp_path, 2).read_text())
