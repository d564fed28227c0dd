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

import torch
from torchjd.aggregation import Aggregator, CAGrad
from torchjd.autojac import backward as jacobian_backward, jac_to_grad

from replication.weighting.base import Weighting, weighted_sum


class CAGradMethod(Weighting):
    defaults = {"c": 0.4, "norm_eps": 0.0001}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.shared, self.others = _split_parameters(model)
        self.aggregator = CAGrad(c=self.params["c"], norm_eps=self.params["norm_eps"])

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        return _combined_backward(self, self.aggregator, losses, penalty)


WEIGHTING = CAGradMethod


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
