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
from torchjd.aggregation import Aggregator, WeightedAggregator
from torchjd.aggregation._nash_mtl import _NashMTLWeighting
from torchjd.autojac import backward as jacobian_backward, jac_to_grad

from replication.weighting.base import Weighting, weighted_sum


class NashMTLMethod(Weighting):
    defaults = {"max_norm": 1.0, "update_weights_every": 1, "optim_niter": 20}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.shared, self.others = _split_parameters(model)
        self.weighting = ClarabelNashMTLWeighting(n_tasks=len(self.tasks), **self.params)
        self.aggregator = WeightedAggregator(self.weighting)

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        return _combined_backward(self, self.aggregator, losses, penalty)

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


def _combined_backward(method: Weighting, aggregator: Aggregator, losses: torch.Tensor,
                       penalty: torch.Tensor | None) -> torch.Tensor:
    """A gradient method's backward pass (each such module holds this same function: a run's code digest
    covers only its method's module and :mod:`replication.weighting.base`).

    The Jacobian of the task ``losses`` (shape (tasks,)) with respect to the model's shared parameters,
    (tasks, parameters), is combined by ``aggregator`` into their gradient (torchjd's ``backward`` and
    ``jac_to_grad``); every other parameter gets the gradient of the plain sum of the losses; the
    ``penalty``'s gradient is added to every parameter. Notes the task weights the aggregator applied
    (ones where it has none or the model shares nothing) and returns the losses' sum under them plus
    the penalty, detached."""
    weights = torch.ones_like(losses.detach())
    if method.shared:
        jacobian_backward(losses, inputs=method.shared, retain_graph=True)
        applied = jac_to_grad(method.shared, aggregator)
        if applied is not None:
            weights = applied.detach().to(losses.dtype)
    if method.others:
        torch.autograd.backward(losses.sum(), inputs=method.others, retain_graph=penalty is not None)
    if penalty is not None and penalty.requires_grad:
        penalty.backward()
    method.note_weights(weights)
    reported = weighted_sum(losses.detach(), weights)
    return reported if penalty is None else reported + penalty.detach()


def _split_parameters(model: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``model``'s trainable parameters: (its shared ones, every other one)."""
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    own = {id(p) for p in shared}
    return shared, [p for p in model.parameters() if p.requires_grad and id(p) not in own]
