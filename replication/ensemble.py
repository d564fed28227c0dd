"""Train several seeds of one model together, as one batched computation (``train.ensemble`` > 1).

The seeds' models are built exactly as lone runs build them (each seed seeds everything, then builds
the model), and their parameters are stacked along a new leading dimension
(``torch.func.stack_module_state``). Every step runs the model once over all seeds with
``torch.func.vmap`` of ``torch.func.functional_call``: seed k reads its own batch (its own shuffle,
seeded as a lone run's) through its own parameters. The loss summed over seeds has, for each seed's
parameters, that seed's gradient alone, and Adam is elementwise, so one Adam over the stacked
parameters is one Adam per seed. Validation, model selection, early stopping and divergence are per
seed; a seed that stops or fails leaves the stack (its optimizer state is sliced away with it), so
the others no longer pay for it. Each seed ends with a record in the format of a lone run's.

An ensemble's seed k does not bit-match a lone run of seed k: the batched matrix products add in
another order, so the last bits differ after the first step and the runs drift apart as any two
floating-point orders do. Their metrics agree in distribution (tested); records say
``train.ensemble`` so that one can tell them apart.

On a GPU, where a small model's step is dominated by kernel launches, this is the main lever: ten
seeds cost about one. On a CPU, where the arithmetic dominates, expect little (see README).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Mapping

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from models import create_model
from replication.data.processed import Processed, Split
from replication.progress import log, progress
from replication.seeding import rng_state, seed_everything, set_rng_state
from replication.runfolder import SeedCheckpoint
from replication.train import (
    TrainConfig, autocast, diverged, evaluate, finish_seed, joint_loss, loss_weight_schedule, make_optimizer,
    selection_groups, selection_score, shadow_groups, stopped, to_predictions,
)


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


def build_ensemble(model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, seeds: list[int],
                   device: torch.device):
    """The seeds' models (built as lone runs build them), the meta-device template that runs any
    seed's parameters, their :class:`Stack`, and the batched step: (stacked params, buffers, x_cat,
    x_num, y of shape (seeds, batch, ...), task weights) -> (seeds,) losses."""
    models = []
    for seed in seeds:
        seed_everything(seed)
        models.append(create_model(model_name, data.schema, **hparams).to(device))
    template = _WithPenalty(copy.deepcopy(models[0]).to("meta"))
    params, buffers = stack_module_state([_WithPenalty(m) for m in models])
    tasks = data.tasks

    def loss_of(p, b, x_cat, x_num, y, weights):
        outputs, penalty = functional_call(template, (p, b), (x_cat, x_num))
        return joint_loss(outputs, y, tasks, weights) + penalty

    step_loss = vmap(loss_of, in_dims=(0, 0, 0, 0, 0, None))
    return models, template, Stack(params, buffers, cfg), torch.compile(step_loss) if cfg.compile else step_loss


def ensemble_epoch(step_loss, stack: Stack, train: Split, orders: torch.Tensor, weights: torch.Tensor,
                   cfg: TrainConfig) -> torch.Tensor:
    """One pass of every stacked seed over ``train``, seed k's batches taken in ``orders[k]``; one
    Adam step per batch. Returns each seed's loss summed over rows, on the device."""
    loss_sum = torch.zeros(orders.shape[0], device=orders.device)
    for start in range(0, train.rows, cfg.batch_size):
        idx = orders[:, start:start + cfg.batch_size]
        with autocast(cfg.precision, orders.device):
            losses = step_loss(stack.params, stack.buffers, train.x_cat[idx], train.x_num[idx], train.y[idx], weights)
        stack.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        stack.optimizer.step()
        loss_sum += losses.detach() * idx.shape[1]
    return loss_sum


def train_ensemble(model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig,
                   seeds: list[int], device: torch.device, show_epochs: bool = True,
                   checkpoint: SeedCheckpoint | None = None,
                   checkpoint_seconds: float = 30.0) -> list[tuple[dict[str, Any], np.ndarray | None]]:
    """Train ``seeds`` together; returns each seed's (record, test predictions or None if it failed),
    in the order of ``seeds``. ``checkpoint`` holds the whole ensemble's state (see train_seed)."""
    started = time.perf_counter()
    tasks = data.tasks
    models, template, stack, step_loss = build_ensemble(model_name, hparams, data, cfg, seeds, device)
    keys = list(models[0].state_dict())
    shuffles = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    w0, gamma = loss_weight_schedule(cfg, tasks, device)
    train, val = data.splits["train"].to(device), data.splits["validation"].to(device)
    groups = [selection_groups(m, tasks, data.schema["main_task"], cfg.selection) for m in models]
    shadows = [shadow_groups(mine, tasks) for mine in groups]
    histories: list[list[dict[str, Any]]] = [[] for _ in seeds]
    failures: list[dict[str, Any] | None] = [None for _ in seeds]
    alive = list(range(len(seeds)))  # positions in ``seeds`` of the seeds still training, stack order
    first_epoch, seconds_before = 1, 0.0
    saved = checkpoint.load_epoch() if checkpoint is not None else None
    if saved is not None:
        alive, histories, failures = saved["alive"], saved["histories"], saved["failures"]
        stack = Stack({n: p.to(device) for n, p in saved["params"].items()},
                      {n: b.to(device) for n, b in saved["buffers"].items()}, cfg, saved["optimizer"])
        for shuffle, state in zip(shuffles, saved["shuffles"]):
            shuffle.set_state(state)
        set_rng_state(saved["rng"])
        for mine, shadow, theirs in zip(groups, shadows, saved["groups"], strict=True):
            for group, (score, epoch, state) in zip(mine + shadow, theirs, strict=True):
                group.score, group.epoch, group.state = score, epoch, state
        first_epoch, seconds_before = saved["epoch"] + 1, saved["seconds"]
        log(f"{model_name} seeds {seeds}: resuming after epoch {saved['epoch']} from {checkpoint.folder}")

    last_saved = time.perf_counter()
    epochs = progress(range(first_epoch, cfg.max_epochs + 1), desc=f"{model_name} seeds {seeds[0]}-{seeds[-1]}",
                      unit="epoch", leave=False, disable=not show_epochs)
    for epoch in epochs:
        if not alive:
            break
        weights = w0 * gamma ** (epoch - 1)
        orders = torch.stack([torch.randperm(train.rows, generator=shuffles[i], device=device) for i in alive])
        template.train()
        loss_sum = ensemble_epoch(step_loss, stack, train, orders, weights, cfg)
        train_losses = (loss_sum / train.rows).tolist()  # one host synchronisation per epoch
        predictions = _predict(template, stack, val, tasks, cfg)
        keep = []
        for row, i in enumerate(alive):
            if not np.isfinite(train_losses[row]):
                failures[i] = diverged(model_name, seeds[i], epoch, train_losses[row])
                continue
            metrics = evaluate(predictions[row], data.splits["validation"].y_numpy, tasks)
            for group in groups[i] + shadows[i]:
                group.update(epoch, metrics, lambda: stack.state_of(row, keys))
            histories[i].append({"epoch": epoch, "train_loss": train_losses[row], "validation": metrics})
            if not stopped(epoch, groups[i], cfg):
                keep.append(row)
        epochs.set_postfix(val=f"{np.mean([selection_score(h[-1]['validation'], tasks) for h in histories if h]):.4f}")
        if len(keep) < len(alive):
            alive = [alive[row] for row in keep]
            if alive:
                stack = stack.keep(keep, cfg)
        if alive and checkpoint is not None and time.perf_counter() - last_saved >= checkpoint_seconds:
            checkpoint.save_epoch({
                "epoch": epoch, "alive": alive, "histories": histories, "failures": failures,
                "params": {n: p.detach() for n, p in stack.params.items()}, "buffers": stack.buffers,
                "optimizer": stack.optimizer.state_dict(), "shuffles": [s.get_state() for s in shuffles],
                "rng": rng_state(), "groups": [[(g.score, g.epoch, g.state) for g in mine + shadow]
                                              for mine, shadow in zip(groups, shadows)],
                "seconds": seconds_before + time.perf_counter() - started,
            })
            last_saved = time.perf_counter()

    seconds = (seconds_before + time.perf_counter() - started) / len(seeds)  # the ensemble's time, shared
    return [finish_seed(model_name, hparams, models[i], groups[i], shadows[i], histories[i], failures[i], data, cfg,
                        seeds[i], device, seconds) for i in range(len(seeds))]


@torch.no_grad()
def _predict(template: torch.nn.Module, stack: Stack, split: Split, tasks, cfg: TrainConfig) -> np.ndarray:
    """(alive seeds, rows, tasks) float64 predictions of every alive seed on ``split``, in fp32 as
    :func:`replication.train.predict`'s; each vmapped call covers ``eval_batch_size`` rows in all,
    shared among the seeds, to bound memory."""
    def outputs_of(p, b, x_cat, x_num):
        return functional_call(template, (p, b), (x_cat, x_num))[0]

    batched = vmap(outputs_of, in_dims=(0, 0, None, None))
    rows = max(1, cfg.eval_batch_size // len(next(iter(stack.params.values()))))
    template.eval()
    chunks = []
    for start in range(0, split.rows, rows):
        out = batched(stack.params, stack.buffers, split.x_cat[start:start + rows], split.x_num[start:start + rows])
        chunks.append(to_predictions(out, tasks))
    template.train()
    return torch.cat(chunks, dim=1).double().cpu().numpy()
