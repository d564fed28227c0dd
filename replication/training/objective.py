"""What a training step minimises: the tasks' losses over their labelled rows (PLE Eq. 8's terms,
combined by the run's loss weighting method, :mod:`replication.weighting`), under the configured
precision; and the optimizer."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from replication.training.config import TrainConfig


LOSS_FOR_TASK_TYPE = {
    "binary": lambda logit, target: F.binary_cross_entropy_with_logits(logit, target, reduction="none"),
    "regression": lambda pred, target: F.mse_loss(pred, target, reduction="none"),
}


PREDICTION_FOR_TASK_TYPE = {"binary": torch.sigmoid, "regression": lambda x: x}


def task_losses(outputs: Mapping[str, torch.Tensor], y: torch.Tensor, tasks) -> torch.Tensor:
    """PLE Eq. 8's per-task terms: each task's mean loss over its labelled rows only, as a (tasks,)
    vector in task order (the run's loss weighting method combines them: :mod:`replication.weighting`)."""
    losses = []
    for k, task in enumerate(tasks):
        target = y[:, k]
        observed = ~torch.isnan(target)
        target = torch.where(observed, target, torch.zeros_like(target))
        per_row = LOSS_FOR_TASK_TYPE[task.type](outputs[task.name], target)
        losses.append((per_row * observed).sum() / observed.sum().clamp(min=1))
    return torch.stack(losses)


def autocast(precision: str, device: torch.device):
    """The training steps' precision: bfloat16 autocast for ``bf16`` (matrix products in bf16, losses
    and softmax in fp32, as torch's autocast policy has it), nothing for ``fp32``. Validation and test
    predictions are always fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_predictions(outputs: Mapping[str, torch.Tensor], tasks) -> torch.Tensor:
    """(..., rows, tasks) probabilities (binary tasks) or values (regression tasks)."""
    return torch.stack([PREDICTION_FOR_TASK_TYPE[t.type](outputs[t.name]) for t in tasks], dim=-1)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Adam:
    """The trainer's optimizer: Adam with ``cfg``'s learning rate and weight decay; with
    ``cfg.fused_adam``, its fused kernel (one per step for all parameters, not a loop over them)."""
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_adam or None)
