"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., "Multi-Task Learning as a
Bargaining Game", ICML 2022, Algorithm 1): the update of the shared parameters is ``sum_t a_t g_t`` with
``a`` the Nash bargaining solution ``G a = 1 / a`` (``G`` the gradients' Gramian, normalised), found by
the paper's sequence of convex problems (``optim_niter`` of them at most), recomputed every
``update_weights_every`` batches and warm-started from the last; the update's norm is clipped to
``max_norm`` (0: no clipping). Defaults: the authors'.

torchjd's Nash-MTL weighting with one change: torchjd solves each convex problem with ECOS, which is
GPL-3.0, so this module hands the same cvxpy problem to Clarabel (Apache-2.0, the solver torchjd's
CAGrad uses). Task-specific parameters get the plain sum's gradient, the penalty's gradient is added to
every parameter. The weights noted are ``a`` (after clipping). Its state (the last ``a``, the Gramian's
normalisation, the batch count) is checkpointed.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import cvxpy as cp
import torch
from torchjd.aggregation import WeightedAggregator
from torchjd.aggregation._nash_mtl import _NashMTLWeighting

from replication.weighting.base import GradientWeighting


class NashMTLMethod(GradientWeighting):
    defaults = {"max_norm": 1.0, "update_weights_every": 1, "optim_niter": 20}

    def make_aggregator(self):
        self.weighting = ClarabelNashMTLWeighting(n_tasks=len(self.tasks), **self.params)
        return WeightedAggregator(self.weighting)

    def state_dict(self) -> dict[str, Any]:
        w = self.weighting
        return {**super().state_dict(), "nash_mtl": {"prvs_alpha": w.prvs_alpha.copy(), "step": w.step,
                                                     "normalization_factor": w.normalization_factor.copy()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        w, saved = self.weighting, state["nash_mtl"]
        w.prvs_alpha, w.step = saved["prvs_alpha"].copy(), saved["step"]
        w.normalization_factor = saved["normalization_factor"].copy()
        if w.step > 0:  # torchjd builds its problem at the first batch only
            w._init_optim_problem()


class ClarabelNashMTLWeighting(_NashMTLWeighting):
    """torchjd's Nash-MTL weighting with its cvxpy problem solved by Clarabel instead of ECOS."""

    _REQUIRED_DEPS = ["numpy", "cvxpy", "clarabel"]

    def _init_optim_problem(self) -> None:
        super()._init_optim_problem()
        self.prob = _SolvedByClarabel(self.prob)


class _SolvedByClarabel:
    """A cvxpy problem whose ``solve`` uses Clarabel whatever solver its caller names."""

    def __init__(self, problem: cp.Problem) -> None:
        self.problem = problem

    def solve(self, **_ignored) -> float:
        with warnings.catch_warnings():  # torchjd's problem is not DPP: cvxpy says so at every solve
            warnings.filterwarnings("ignore", message="You are solving a parameterized problem that is not DPP")
            return self.problem.solve(solver=cp.CLARABEL)


WEIGHTING = NashMTLMethod
