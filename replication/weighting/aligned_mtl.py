"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning", CVPR 2023,
Algorithm 1): the tasks' gradients of the shared parameters are aligned, i.e. replaced by the
orthogonal system with equal norms nearest to them (from the eigendecomposition of their Gramian, the
common norm the smallest singular value by default: ``scale_mode`` min, median or rmse), and summed
with equal preference weights.

torchjd's ``AlignedMTL``; task-specific parameters get the plain sum's gradient, the penalty's
gradient is added to every parameter. The weights noted are the effective weights of the tasks'
original gradients.
"""

from __future__ import annotations

from torchjd.aggregation import AlignedMTL

from replication.weighting.base import GradientWeighting


class AlignedMTLMethod(GradientWeighting):
    defaults = {"scale_mode": "min"}

    def make_aggregator(self):
        return AlignedMTL(scale_mode=self.params["scale_mode"])


WEIGHTING = AlignedMTLMethod
