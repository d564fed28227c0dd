"""Random loss weighting, RLW (Lin et al., "Reasonable Effectiveness of Random Weighting: A Litmus Test
for Multi-Task Learning", TMLR 2022, Sec. 3): each batch's task weights are
``softmax(z)``, ``z ~ N(0, I)`` drawn afresh (the paper's default distribution); the batch loss is the
losses' sum under them plus the model's regularization.

Own code (torchjd's ``Random`` scalarizer draws the same weights but does not expose them, and the
weights applied are logged). The draws come from torch's global generator on the losses' device,
which the trainer seeds from the run's seed and saves in its checkpoints, so this method has no state
of its own. The weights sum to 1 (the plain sum's weights sum to the number of tasks).
"""

from __future__ import annotations

import torch

from replication.weighting.base import Weighting, weighted_sum


class RandomLossWeighting(Weighting):
    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        weights = torch.softmax(torch.randn(len(self.tasks), device=losses.device), dim=0)
        self.note_weights(weights)
        total = weighted_sum(losses, weights)
        if penalty is not None:
            total = total + penalty
        total.backward()
        return total.detach()


WEIGHTING = RandomLossWeighting
