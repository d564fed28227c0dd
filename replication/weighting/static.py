"""Static weights: PLE's loss schedule (Tang et al., RecSys 2020, Eqs. 9-10), equal weights by default.

Epoch t's weight of task k is ``w_k0 * gamma_k ** (t - 1)`` (Eq. 10), with ``w_k0`` from
``train.loss_weights`` and ``gamma_k`` from ``train.loss_weight_decay`` (missing tasks: 1); the batch
loss is ``sum_k w_k L_k`` (Eq. 8) plus the model's regularization. With neither set this is equal
weighting, the papers' and every default run's.
"""

from __future__ import annotations

import torch

from replication.weighting.base import Weighting, weighted_sum


class Static(Weighting):
    stackable = True

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.w0 = torch.tensor([cfg.loss_weights.get(t.name, 1.0) for t in self.tasks], device=device)
        self.gamma = torch.tensor([cfg.loss_weight_decay.get(t.name, 1.0) for t in self.tasks], device=device)
        self.weights = self.w0

    def start_epoch(self, epoch: int) -> None:
        self.weights = self.w0 * self.gamma ** (epoch - 1)

    def batch_weights(self) -> torch.Tensor:
        self.note_weights(self.weights)
        return self.weights

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        total = weighted_sum(losses, self.batch_weights())
        if penalty is not None:
            total = total + penalty
        total.backward()
        return total.detach()


WEIGHTING = Static
