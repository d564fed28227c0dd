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

import torch
from torchjd.aggregation import Aggregator, AlignedMTL
from torchjd.autojac import backward as jacobian_backward, jac_to_grad

from replication.weighting.base import Weighting, weighted_sum


class AlignedMTLMethod(Weighting):
    defaults = {"scale_mode": "min"}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.shared, self.others = _split_parameters(model)
        self.aggregator = AlignedMTL(scale_mode=self.params["scale_mode"])

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        return _combined_backward(self, self.aggregator, losses, penalty)


WEIGHTING = AlignedMTLMethod


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
