"""The pluggable step of the training loop (:mod:`replication.training.loop`): an epoch over the
training rows for the seeds it trains, their validation predictions, copies of their weights and the
state a checkpoint keeps. The loop does everything else (shuffles, selection, stopping, records).

- :class:`SeedStep`: one seed's model and its Adam: a lone run.
- :class:`StackedStep` (``train.ensemble`` > 1): several seeds of one model trained together as one
  batched computation. The seeds' models are built exactly as lone runs build them (each seed seeds
  everything, then builds the model), and their parameters are stacked along a new leading dimension
  (``torch.func.stack_module_state``). Every step runs the model once over all seeds with
  ``torch.func.vmap`` of ``torch.func.functional_call``: seed k reads its own batch (its own shuffle,
  seeded as a lone run's) through its own parameters. The loss summed over seeds has, for each seed's
  parameters, that seed's gradient alone, and Adam is elementwise, so one Adam over the stacked
  parameters is one Adam per seed. A seed that stops or fails leaves the stack (its optimizer state is
  sliced away with it), so the others no longer pay for it.

  A stacked seed k does not bit-match a lone run of seed k: the batched matrix products add in
  another order, so the last bits differ after the first step and the runs drift apart as any two
  floating-point orders do. Their metrics agree in distribution (tested); records say
  ``train.ensemble`` so that one can tell them apart. On a GPU, where a small model's step is
  dominated by kernel launches, this is the main lever: ten seeds cost about one. On a CPU, where the
  arithmetic dominates, expect little (docs/speed.md).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from models import create_model
from replication.data.processed import Processed, Split
from replication.seeding import seed_everything
from replication.training.config import TrainConfig
from replication.training.evaluation import predict
from replication.config import ConfigError
from replication.training.objective import autocast, make_optimizer, task_losses, to_predictions
from replication.weighting import Weighting, weighting_class
from replication.weighting.base import weighted_sum


def train_epoch(model: torch.nn.Module, step_model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                weighting: Weighting, train: Split, order: torch.Tensor, tasks,
                cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over ``train`` in batches of ``cfg.batch_size`` rows taken in ``order``: forward
    (``step_model``: the model, or its compiled form), the tasks' losses and the model's
    regularization, the backward pass of the run's loss ``weighting``, one Adam step per batch.
    Returns the reported loss and each task's loss, summed over rows, on the device (no host
    synchronisation)."""
    loss_sum = torch.zeros((), device=order.device)
    task_sum = torch.zeros(len(tasks), device=order.device)
    for start in range(0, train.rows, cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        with autocast(cfg.precision, order.device):
            out = step_model(train.x_cat[idx], train.x_num[idx])
            losses = task_losses(out.outputs, train.y[idx], tasks)
            penalty = model.regularization()
        optimizer.zero_grad(set_to_none=True)
        loss = weighting.backward(losses, penalty)
        optimizer.step()
        weighting.step()
        loss_sum += loss * len(idx)
        task_sum += losses.detach() * len(idx)
    return loss_sum, task_sum


def epoch_summary(train_loss: float, task_sum: list[float], rows: int, tasks,
                  weights: Mapping[str, float]) -> dict[str, Any]:
    """One seed's training entry of an epoch's history: the reported loss per row, each task's loss
    per row (from its sum over the ``rows``), and the task weights its loss weighting applied."""
    return {"train_loss": train_loss, "task_train_loss": {t.name: v / rows for t, v in zip(tasks, task_sum)},
            "loss_weights": dict(weights)}


class SeedStep:
    """One seed's model and its Adam (a lone run); ``seeds`` holds that one seed."""

    def __init__(self, model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig,
                 seeds: list[int], device: torch.device) -> None:
        (seed,) = seeds
        seed_everything(seed)
        model = create_model(model_name, data.schema, **hparams).to(device)
        self.models = [model]
        self.step_model = torch.compile(model) if cfg.compile else model
        self.optimizer = make_optimizer(model.parameters(), cfg)
        self.weighting = weighting_class(cfg.weighting)(data.tasks, cfg, device, model)
        self.tasks, self.cfg = data.tasks, cfg

    def start_epoch(self, epoch: int) -> None:
        self.weighting.start_epoch(epoch)

    def run_epoch(self, train: Split, orders: list[torch.Tensor]) -> list[dict[str, Any]]:
        """One pass over ``train`` in ``orders[0]``; its :func:`epoch_summary`."""
        loss_sum, task_sum = train_epoch(self.models[0], self.step_model, self.optimizer, self.weighting, train,
                                         orders[0], self.tasks, self.cfg)
        task_sum = task_sum.tolist()  # the host synchronisations of the epoch
        summary = epoch_summary(float(loss_sum) / train.rows, task_sum, train.rows, self.tasks, self.weighting.epoch_weights())
        self.weighting.end_epoch([v / train.rows for v in task_sum])
        return [summary]

    def predictions(self, split: Split) -> list[np.ndarray]:
        return [predict(self.models[0], split, self.tasks, self.cfg.eval_batch_size)]

    def weights_of(self, row: int) -> dict[str, torch.Tensor]:
        return copy.deepcopy(self.models[0].state_dict())

    def keep(self, rows: list[int]) -> None:
        """Nothing to drop: a lone seed that stops ends the loop."""

    def state(self) -> dict[str, Any]:
        return {"model": self.models[0].state_dict(), "optimizer": self.optimizer.state_dict(),
                "weighting": self.weighting.state_dict()}

    def load(self, state: Mapping[str, Any]) -> None:
        self.models[0].load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.weighting.load_state_dict(state["weighting"])



class _WithPenalty(torch.nn.Module):
    """The model's outputs and its regularization term (zero when it has none) from one call, so
    that ``functional_call`` swaps in one seed's parameters for both."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor):
        out = self.model(x_cat, x_num)
        penalty = self.model.regularization()
        return out.outputs, (x_num.new_zeros(()) if penalty is None else penalty)


class Stack:
    """The alive seeds' stacked parameters and buffers with one Adam over them."""

    def __init__(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], cfg: TrainConfig,
                 optimizer_state: dict | None = None) -> None:
        self.params = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()}
        self.buffers = buffers
        self.optimizer = make_optimizer(self.params.values(), cfg)
        if optimizer_state is not None:
            self.optimizer.load_state_dict(optimizer_state)

    def keep(self, rows: list[int], cfg: TrainConfig) -> "Stack":
        """The stack of the seeds at ``rows`` only, their optimizer state carried over."""
        index = torch.tensor(rows, device=next(iter(self.params.values())).device)
        state = self.optimizer.state_dict()  # its per-parameter dicts are the optimizer's own: build new ones
        state["state"] = {i: {k: (v.index_select(0, index) if v.dim() > 0 else v.clone()) if torch.is_tensor(v) else v
                              for k, v in slot.items()} for i, slot in state["state"].items()}
        return Stack({n: p.index_select(0, index) for n, p in self.params.items()},
                     {n: b.index_select(0, index) for n, b in self.buffers.items()}, cfg, state)

    def state_of(self, row: int, keys) -> dict[str, torch.Tensor]:
        """Seed ``row``'s weights as a state dict of the model (its ``keys``; the stack's names carry
        the ``model.`` prefix of :class:`_WithPenalty`), copied."""
        return {k: (self.params.get(f"model.{k}") if f"model.{k}" in self.params else self.buffers[f"model.{k}"])[row]
                .detach().clone() for k in keys}


class StackedStep:
    """The alive seeds of one model stacked (module docstring); ``models[i]`` is seed i's model as
    built (its selected weights are loaded into it at the end)."""

    def __init__(self, model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig,
                 seeds: list[int], device: torch.device) -> None:
        method = weighting_class(cfg.weighting)
        if not method.stackable:
            raise ConfigError(f"train.weighting = {cfg.weighting!r} gives each seed its own weights or gradients, "
                              "which seeds stacked in one step cannot have; set train.ensemble: 1")
        self.weighting = method(data.tasks, cfg, device, None)
        self.models = []
        for seed in seeds:
            seed_everything(seed)
            self.models.append(create_model(model_name, data.schema, **hparams).to(device))
        self.template = _WithPenalty(copy.deepcopy(self.models[0]).to("meta"))
        params, buffers = stack_module_state([_WithPenalty(m) for m in self.models])
        self.stack = Stack(params, buffers, cfg)
        self.keys = list(self.models[0].state_dict())
        self.tasks, self.cfg = data.tasks, cfg
        template, tasks = self.template, self.tasks

        def loss_of(p, b, x_cat, x_num, y, weights):
            outputs, penalty = functional_call(template, (p, b), (x_cat, x_num))
            losses = task_losses(outputs, y, tasks)
            return weighted_sum(losses, weights) + penalty, losses

        step_loss = vmap(loss_of, in_dims=(0, 0, 0, 0, 0, None))
        self.step_loss = torch.compile(step_loss) if cfg.compile else step_loss

    def start_epoch(self, epoch: int) -> None:
        self.weighting.start_epoch(epoch)

    def run_epoch(self, train: Split, orders: list[torch.Tensor]) -> list[dict[str, Any]]:
        """One pass of every stacked seed over ``train``, seed k's batches taken in ``orders[k]``; one
        Adam step per batch. Each seed's :func:`epoch_summary`."""
        orders = torch.stack(orders)
        self.template.train()
        loss_sum = torch.zeros(orders.shape[0], device=orders.device)
        task_sum = torch.zeros(orders.shape[0], len(self.tasks), device=orders.device)
        for start in range(0, train.rows, self.cfg.batch_size):
            idx = orders[:, start:start + self.cfg.batch_size]
            with autocast(self.cfg.precision, orders.device):
                totals, losses = self.step_loss(self.stack.params, self.stack.buffers, train.x_cat[idx],
                                                train.x_num[idx], train.y[idx], self.weighting.batch_weights())
            self.stack.optimizer.zero_grad(set_to_none=True)
            totals.sum().backward()
            self.stack.optimizer.step()
            loss_sum += totals.detach() * idx.shape[1]
            task_sum += losses.detach() * idx.shape[1]
        weights = self.weighting.epoch_weights()
        return [epoch_summary(loss, per_task, train.rows, self.tasks, weights)  # the epoch's host synchronisations
                for loss, per_task in zip((loss_sum / train.rows).tolist(), task_sum.tolist())]

    @torch.no_grad()
    def predictions(self, split: Split) -> np.ndarray:
        """(alive seeds, rows, tasks) float64 predictions of every alive seed on ``split``, in fp32 as
        :func:`replication.training.evaluation.predict`'s; each vmapped call covers ``eval_batch_size``
        rows in all, shared among the seeds, to bound memory."""
        template, stack = self.template, self.stack

        def outputs_of(p, b, x_cat, x_num):
            return functional_call(template, (p, b), (x_cat, x_num))[0]

        batched = vmap(outputs_of, in_dims=(0, 0, None, None))
        rows = max(1, self.cfg.eval_batch_size // len(next(iter(stack.params.values()))))
        template.eval()
        chunks = []
        for start in range(0, split.rows, rows):
            out = batched(stack.params, stack.buffers, split.x_cat[start:start + rows], split.x_num[start:start + rows])
            chunks.append(to_predictions(out, self.tasks))
        template.train()
        return torch.cat(chunks, dim=1).double().cpu().numpy()

    def weights_of(self, row: int) -> dict[str, torch.Tensor]:
        return self.stack.state_of(row, self.keys)

    def keep(self, rows: list[int]) -> None:
        self.stack = self.stack.keep(rows, self.cfg)

    def state(self) -> dict[str, Any]:
        return {"params": {n: p.detach() for n, p in self.stack.params.items()}, "buffers": self.stack.buffers,
                "optimizer": self.stack.optimizer.state_dict(), "weighting": self.weighting.state_dict()}

    def load(self, state: Mapping[str, Any]) -> None:
        device = next(iter(self.stack.params.values())).device
        self.stack = Stack({n: p.to(device) for n, p in state["params"].items()},
                           {n: b.to(device) for n, b in state["buffers"].items()}, self.cfg, state["optimizer"])
        self.weighting.load_state_dict(state["weighting"])
