"""Uncertainty weighting (Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
Losses for Scene Geometry and Semantics", CVPR 2018, Eq. 7): each task ``k`` has a learnable
log-variance ``s_k = log sigma_k^2`` (initially 0) and the batch loss is
``sum_k (exp(-s_k) L_k / 2 + s_k / 2)`` plus the model's regularization, differentiated with respect to
the model's parameters and the ``s_k`` alike.

torchjd's ``UW`` scalarizer, which applies Eq. 7's regression form to every task (the paper's Eq. 10
derives ``exp(-s_k) L_k + s_k / 2`` for a classification task: twice the weight; torchjd, like most
implementations, keeps one form). The ``s_k`` are learned by this method's own Adam at the run's
``train.lr`` (without its weight decay), stepped after the model's optimizer; both are checkpointed.
The weights noted are ``exp(-s_k) / 2``; the loss reported is the losses' sum under them plus the
penalty (without the ``s_k / 2`` terms).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torchjd.scalarization import UW

from replication.weighting.base import Weighting, weighted_sum


class Uncertainty(Weighting):
    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.uw = UW(len(self.tasks)).to(device)
        self.optimizer = torch.optim.Adam(self.uw.parameters(), lr=cfg.lr)

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        total = self.uw(losses)
        if penalty is not None:
            total = total + penalty
        total.backward()
        weights = 0.5 * torch.exp(-self.uw.log_var.detach())
        self.note_weights(weights)
        reported = weighted_sum(losses.detach(), weights)
        return reported if penalty is None else reported + penalty.detach()

    def step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "uw": self.uw.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.uw.load_state_dict(state["uw"])
        self.optimizer.load_state_dict(state["optimizer"])


WEIGHTING = Uncertainty
