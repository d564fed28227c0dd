"""PCGrad: gradient surgery (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020,
Algorithm 1): each task's gradient of the shared parameters, where it conflicts with another task's
(negative inner product), loses its projection on it, ``g_i <- g_i - (g_i . g_j / ||g_j||^2) g_j``, the
other tasks taken in random order; the update is the sum of the projected gradients.

torchjd's ``PCGrad`` (its random orders are drawn from torch's global generator, which the trainer
seeds and checkpoints). It is a weighting of the Jacobian's rows, so the task weights noted are the
effective ones (1 each when no gradients conflict: then PCGrad is the plain sum). Task-specific
parameters get the plain sum's gradient, the penalty's gradient is added to every parameter.
"""

from __future__ import annotations

from torchjd.aggregation import PCGrad

from replication.weighting.base import GradientWeighting


class PCGradMethod(GradientWeighting):
    def make_aggregator(self):
        return PCGrad()


WEIGHTING = PCGradMethod
