"""FAMO: fast adaptive multitask optimization (Liu et al., "FAMO: Fast Adaptive Multitask
Optimization", NeurIPS 2023, Algorithm 1): with task logits ``w`` (initially 0) and ``z = softmax(w)``,
the batch loss is ``c sum_k z_k log(L_k - b_k + eps)``, ``c = 1 / sum_k z_k / (L_k - b_k + eps)`` held
constant (so the update is the convex combination of the tasks' gradients with weights
``c z_k / (L_k - b_k + eps)``; ``b = 0``); after the model's step the logits take one Adam step (``lr``
0.025, ``weight_decay`` 0.001: the paper's) along ``-grad_w z^T delta``, ``delta_k = log L_k(before) -
log L_k(after)``, which favours the tasks whose losses fell the least.

torchjd's ``FAMO`` scalarizer. Algorithm 1 measures ``L_k(after)`` by recomputing the losses of the
same batch after the step; this interface sees only the current batch's losses, so the 'after' losses of
a step are the next batch's losses (one forward pass fewer; a step's change is then measured across two
batches, which adds the batches' difference as noise). The logits, their Adam and the last batch's
losses are checkpointed (torchjd's private attributes ``_optimizer`` and ``_prev_losses``: torchjd is
pinned). The weights noted are the effective ``c z_k / (L_k + eps)`` (they sum to 1); the loss reported
is the losses' sum under them plus the penalty.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torchjd.scalarization import FAMO

from replication.weighting.base import Weighting, weighted_sum

EPSILON = 1e-8  # torchjd's FAMO's


class FastAdaptiveMultitask(Weighting):
    defaults = {"lr": 0.025, "weight_decay": 0.001}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.famo = FAMO(len(self.tasks), lr=self.params["lr"], weight_decay=self.params["weight_decay"]).to(device)

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        if self.famo._prev_losses is not None:
            self.famo.update(losses.detach())  # the previous step's logit update, judged by this batch's losses
        total = self.famo(losses)
        if penalty is not None:
            total = total + penalty
        total.backward()
        z = torch.softmax(self.famo._w.detach(), dim=0)
        ratio = z / (losses.detach() - self.famo.min_losses + EPSILON)
        weights = ratio / ratio.sum()
        self.note_weights(weights)
        reported = weighted_sum(losses.detach(), weights)
        return reported if penalty is None else reported + penalty.detach()

    def state_dict(self) -> dict[str, Any]:
        optimizer = self.famo._optimizer
        return {**super().state_dict(), "famo": self.famo.state_dict(),
                "optimizer": None if optimizer is None else optimizer.state_dict(),
                "previous_losses": self.famo._prev_losses}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.famo.load_state_dict(state["famo"])
        if state["optimizer"] is not None:
            self.famo._optimizer = torch.optim.Adam([self.famo._w], lr=self.famo.lr, weight_decay=self.famo.weight_decay)
            self.famo._optimizer.load_state_dict(state["optimizer"])
        previous = state["previous_losses"]
        self.famo._prev_losses = None if previous is None else previous.to(self.device).clone()


WEIGHTING = FastAdaptiveMultitask
