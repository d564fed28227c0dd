"""Dynamic weight average, DWA (Liu, Johns and Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019, Eq. 7): epoch ``t``'s weight of task ``k`` is
``K exp(w_k / T) / sum_i exp(w_i / T)`` with ``w_k = L_k(t-1) / L_k(t-2)`` the ratio of its mean
training losses over the two previous epochs, ``K`` the number of tasks and ``T`` the
``temperature`` (default 2, the paper's); 1 for every task in the first two epochs.

Own code: torchjd's ``DWA`` averages the batches' losses itself, while the paper's ``L_k`` is the
epoch's mean loss, which the trainer hands over per row (:meth:`end_epoch`). The batch loss is the
losses' sum under the epoch's weights plus the model's regularization. The last two epochs' losses are
checkpointed.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from replication.weighting.base import Weighting, weighted_sum


class DynamicWeightAverage(Weighting):
    defaults = {"temperature": 2.0}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.history: list[list[float]] = []  # the mean task losses of the last two epochs, oldest first
        self.weights = torch.ones(len(self.tasks), device=device)

    def start_epoch(self, epoch: int) -> None:
        if len(self.history) < 2:
            self.weights = torch.ones(len(self.tasks), device=self.device)
            return
        older, newer = (torch.tensor(h, dtype=torch.float64) for h in self.history)
        weights = len(self.tasks) * torch.softmax(newer / older / float(self.params["temperature"]), dim=0)
        self.weights = weights.to(device=self.device, dtype=torch.float32)

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        self.note_weights(self.weights)
        total = weighted_sum(losses, self.weights)
        if penalty is not None:
            total = total + penalty
        total.backward()
        return total.detach()

    def end_epoch(self, task_losses: Sequence[float]) -> None:
        self.history = [*self.history, [float(v) for v in task_losses]][-2:]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.history = [list(h) for h in state["history"]]


WEIGHTING = DynamicWeightAverage
