"""CAGrad: conflict-averse gradient descent (Liu et al., "Conflict-Averse Gradient Descent for
Multi-task Learning", NeurIPS 2021, Algorithm 1): the update ``d = g0 + (c ||g0|| / ||g_w||) g_w``
maximises the worst task's improvement within a ball of radius ``c ||g0||`` around the average
gradient ``g0``, ``g_w`` the combination of the tasks' gradients solving the dual problem (without the
optional ``1 / (1 + c^2)`` rescaling of the authors' code). ``c`` (default 0.4, the paper's choice on
NYUv2 and Cityscapes); ``norm_eps`` guards the division.

torchjd's ``CAGrad`` (its dual problem solved by Clarabel through cvxpy), on the shared parameters'
gradients; task-specific parameters get the plain sum's gradient, the penalty's gradient is added to
every parameter. The weights noted are the effective ones (``1/tasks + c ||g0|| w / ||g_w||``).
"""

from __future__ import annotations

from torchjd.aggregation import CAGrad

from replication.weighting.base import GradientWeighting


class CAGradMethod(GradientWeighting):
    defaults = {"c": 0.4, "norm_eps": 0.0001}

    def make_aggregator(self):
        return CAGrad(c=self.params["c"], norm_eps=self.params["norm_eps"])


WEIGHTING = CAGradMethod
