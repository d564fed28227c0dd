"""GradDrop: gradient sign dropout (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models
with Gradient Sign Dropout", NeurIPS 2020, Algorithm 1, lines 10-15): for each shared parameter, the
positive sign purity ``P = (1 + sum_t g_t / sum_t |g_t|) / 2`` of the tasks' gradients decides, against
one uniform draw ``U``, which sign survives: tasks whose gradient has the chosen sign keep it, the others
are masked (``leak``: the fraction of every gradient that passes regardless, default 0).

torchjd's ``GradDrop``, applied to the tasks' gradients of the shared parameters (the paper applies it
to the gradients at a shared activation layer, which the interface does not see); its draws come from
torch's global generator, which the trainer seeds and checkpoints. Task-specific parameters get the
plain sum's gradient, the penalty's gradient is added to every parameter. GradDrop masks per
coordinate, so it has no task weights: the weights noted are ones.
"""

from __future__ import annotations

import torch
from torchjd.aggregation import GradDrop

from replication.weighting.base import GradientWeighting


class GradDropMethod(GradientWeighting):
    defaults = {"leak": 0.0}

    def make_aggregator(self):
        return GradDrop(leak=torch.full((len(self.tasks),), float(self.params["leak"]), device=self.device))


WEIGHTING = GradDropMethod
