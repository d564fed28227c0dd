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

import torch
from torchjd.aggregation import Aggregator, MGDA
from torchjd.autojac import backward as jacobian_backward, jac_to_grad

from replication.weighting.base import Weighting, weighted_sum


class MGDAMethod(Weighting):
    defaults = {"epsilon": 0.001, "max_iters": 100}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.shared, self.others = _split_parameters(model)
        self.aggregator = MGDA(epsilon=self.params["epsilon"], max_iters=self.params["max_iters"])

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        return _combined_backward(self, self.aggregator, losses, penalty)


WEIGHTING = MGDAMethod


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
