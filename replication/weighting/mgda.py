"""MGDA: the multiple-gradient descent algorithm as Sener & Koltun use it ("Multi-Task Learning as
Multi-Objective Optimization", NeurIPS 2018): the update of the shared parameters is the min-norm point
of the convex hull of the tasks' gradients, ``min_a ||sum_t a_t g_t||^2`` over the simplex (Eq. 3),
found by the Frank-Wolfe solver of Algorithm 2 (``epsilon``: the step size below which it stops;
``max_iters``). Task-specific parameters get the plain sum's gradient (the paper's Algorithm 2 gives
each task's own parameters its own gradient, which is the same thing), the penalty's gradient is added
to every parameter.

torchjd's ``MGDA``, on the gradients of the shared parameters themselves (not the paper's upper bound
MGDA-UB on a shared representation, which the interface does not see). The weights noted are the
solver's ``a`` (they sum to 1).
"""

from __future__ import annotations

from torchjd.aggregation import MGDA

from replication.weighting.base import GradientWeighting


class MGDAMethod(GradientWeighting):
    defaults = {"epsilon": 0.001, "max_iters": 100}

    def make_aggregator(self):
        return MGDA(epsilon=self.params["epsilon"], max_iters=self.params["max_iters"])


WEIGHTING = MGDAMethod
