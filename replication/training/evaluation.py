"""Validation and test: predictions in fp32, the metrics, the selection score and the epoch each
group of tasks selects, and early stopping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from replication.data.processed import Split
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.training.config import TrainConfig
from replication.training.objective import to_predictions


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, tasks, batch_size: int) -> np.ndarray:
    """Predictions (probabilities for binary tasks) as a (rows, tasks) float64 array, computed in
    fp32 whatever the training precision (bf16 logits would tie many rows and so move the AUC)."""
    model.eval()
    chunks = []
    for start in range(0, split.rows, batch_size):
        out = model(split.x_cat[start:start + batch_size], split.x_num[start:start + batch_size]).outputs
        chunks.append(to_predictions(out, tasks))
    model.train()
    return torch.cat(chunks).double().cpu().numpy()


@torch.no_grad()
def gate_usage(model: torch.nn.Module, split: Split, batch_size: int) -> dict[str, dict[str, list]]:
    """Mean and (population) std over the split's rows of every gate's weight on every expert: what
    PLE's Fig. 8 plots. ``{gate: {"experts": labels, "mean": [...], "std": [...]}}``; empty if ungated."""
    labels = model.gate_experts()
    if not labels:
        return {}
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    for start in range(0, split.rows, batch_size):
        gates = model(split.x_cat[start:start + batch_size], split.x_num[start:start + batch_size]).gates
        for name, weights in gates.items():
            weights = weights.double()
            sums[name] = sums.get(name, 0) + weights.sum(0)
            squares[name] = squares.get(name, 0) + (weights * weights).sum(0)
    model.train()
    usage = {}
    for name, total in sums.items():
        mean = total / split.rows
        std = (squares[name] / split.rows - mean * mean).clamp(min=0).sqrt()
        usage[name] = {"experts": list(labels[name]), "mean": mean.cpu().tolist(), "std": std.cpu().tolist()}
    return usage


def evaluate(prediction: np.ndarray, y: np.ndarray, tasks) -> dict[str, dict[str, float]]:
    return {
        t.name: {METRIC_FOR_TASK_TYPE[t.type].name: METRIC_FOR_TASK_TYPE[t.type].fn(y[:, k], prediction[:, k])}
        for k, t in enumerate(tasks)
    }


def selection_score(metrics: Mapping[str, Mapping[str, float]], tasks) -> float:
    """Mean over ``tasks`` of the metric oriented so that larger is better."""
    values = [METRIC_FOR_TASK_TYPE[t.type].score(metrics[t.name][METRIC_FOR_TASK_TYPE[t.type].name]) for t in tasks]
    return float(np.mean(values))


@dataclass
class Selection:
    """Best-so-far bookkeeping for a group of tasks selected together, on the score of ``scored``."""

    tasks: tuple
    scored: tuple
    score: float = -np.inf
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
               state: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Keep ``state()`` (a copy of the weights, taken only when needed) if ``epoch`` scores best."""
        score = selection_score(metrics, self.scored)
        if score > self.score:
            self.score, self.epoch = score, epoch
            self.state = state()


def selection_groups(model, tasks, main_task: str, selection: str) -> list[Selection]:
    """One group per task for models that share nothing or under ``per_task``; else one group of
    all tasks, scored on every task (``mean``) or on the main task alone (``main_task``)."""
    if model.tasks_independent or selection == "per_task":
        return [Selection((t,), (t,)) for t in tasks]
    scored = tuple(t for t in tasks if t.name == main_task) if selection == "main_task" else tuple(tasks)
    return [Selection(tuple(tasks), scored)]


def shadow_groups(groups: list[Selection], tasks) -> list[Selection]:
    """Per-task groups that follow a run selected as a whole without steering it (they never stop
    it): the ``per_task_selection`` of its record. None when the run already selects per task."""
    return [] if len(groups) == len(tasks) else [Selection((t,), (t,)) for t in tasks]


def stopped(epoch: int, groups: list[Selection], cfg: TrainConfig) -> bool:
    """Early stopping: every selection group has gone ``patience`` epochs without a better score."""
    return all(epoch - g.epoch >= cfg.patience for g in groups)
