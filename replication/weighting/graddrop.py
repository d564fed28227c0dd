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
from torchjd.aggregation import Aggregator, GradDrop
from torchjd.autojac import backward as jacobian_backward, jac_to_grad

from replication.weighting.base import Weighting, weighted_sum


class GradDropMethod(Weighting):
    defaults = {"leak": 0.0}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.shared, self.others = _split_parameters(model)
        self.aggregator = GradDrop(leak=torch.full((len(self.tasks),), float(self.params["leak"]), device=device))

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        return _combined_backward(self, self.aggregator, losses, penalty)


WEIGHTING = GradDropMethod


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
