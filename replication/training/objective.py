"""What a training step minimises: PLE's joint loss (Eqs. 8-10) over the tasks' labelled rows, with
per-task weights that may decay by epoch, under the configured precision; and the optimizer."""

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


def joint_loss(outputs: Mapping[str, torch.Tensor], y: torch.Tensor, tasks, weights: torch.Tensor) -> torch.Tensor:
    """PLE Eq. 8-10: weighted sum over tasks of each task's loss over its labelled rows only."""
    total = outputs[tasks[0].name].new_zeros(())
    for k, task in enumerate(tasks):
        target = y[:, k]
        observed = ~torch.isnan(target)
        target = torch.where(observed, target, torch.zeros_like(target))
        per_row = LOSS_FOR_TASK_TYPE[task.type](outputs[task.name], target)
        task_loss = (per_row * observed).sum() / observed.sum().clamp(min=1)
        total = total + weights[k] * task_loss
    return total


def autocast(precision: str, device: torch.device):
    """The training steps' precision: bfloat16 autocast for ``bf16`` (matrix products in bf16, losses
    and softmax in fp32, as torch's autocast policy has it), nothing for ``fp32``. Validation and test
    predictions are always fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_predictions(outputs: Mapping[str, torch.Tensor], tasks) -> torch.Tensor:
    """(..., rows, tasks) probabilities (binary tasks) or values (regression tasks)."""
    return torch.stack([PREDICTION_FOR_TASK_TYPE[t.type](outputs[t.name]) for t in tasks], dim=-1)


def loss_weight_schedule(cfg: TrainConfig, tasks, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_k0, gamma_k) per task (PLE Eqs. 9-10); epoch t's weights are ``w0 * gamma ** (t - 1)``."""
    w0 = torch.tensor([cfg.loss_weights.get(t.name, 1.0) for t in tasks], device=device)
    gamma = torch.tensor([cfg.loss_weight_decay.get(t.name, 1.0) for t in tasks], device=device)
    return w0, gamma


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Adam:
    """The trainer's optimizer: Adam with ``cfg``'s learning rate and weight decay; with
    ``cfg.fused_adam``, its fused kernel (one per step for all parameters, not a loop over them)."""
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_adam or None)
