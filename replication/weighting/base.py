"""The interface every loss weighting method implements (:class:`Weighting`), and the weighted sum.

The training step (:mod:`replication.training.steps`) computes, for each batch, the tasks' losses as
a vector (task order of the data's schema) and the model's regularization term, and hands them to the
run's method, which performs the backward pass: a loss weighting method differentiates its weighted
sum, a gradient method combines per-task gradients of the parameters the model declares as shared
(:meth:`models.base.MTLModel.shared_parameters`) and gives every other parameter the gradient of the
plain sum. The step then takes the optimizer's step and calls :meth:`Weighting.step` for the method's
own parameters, if any.

A method owns its state: :meth:`Weighting.state_dict` is saved in a run's checkpoint beside the
optimizer's and restored by :meth:`Weighting.load_state_dict`, so a killed run resumes to the same
numbers. After each epoch the loop records :meth:`Weighting.epoch_weights` (the task weights the
method applied, averaged over the epoch's batches) in the run's history.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from replication.config import ConfigError


def weighted_sum(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_k weights[k] * losses[k]``, added in task order from zero (PLE Eq. 8)."""
    total = losses.new_zeros(())
    for k in range(losses.shape[-1]):
        total = total + weights[k] * losses[..., k]
    return total


class Weighting:
    """A loss weighting or gradient balancing method for one model's training (one seed).

    ``tasks``: the data's tasks in order; ``cfg``: the run's training configuration (a method reads its
    own parameters from ``cfg.weighting_params``, checked by :meth:`check_params`); ``model``: the model
    it trains (``None`` in a stacked step, which only takes :attr:`stackable` methods).
    """

    #: Whether several seeds stacked in one batched step (``train.ensemble`` > 1) may share this method:
    #: only when its weights are the same for every seed at every batch and it needs no per-task gradient.
    stackable = False
    #: The parameters this method accepts in ``train.weighting_params``, with their defaults.
    defaults: Mapping[str, Any] = {}

    def __init__(self, tasks, cfg, device: torch.device, model: torch.nn.Module | None) -> None:
        self.tasks = tuple(tasks)
        self.params = {**self.defaults, **self.check_params(cfg.weighting_params)}
        self.device = device
        self.model = model
        self._weight_sum = torch.zeros(len(self.tasks), device=device)
        self._batches = 0

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(cls.defaults))
        if unknown:
            accepted = ", ".join(sorted(cls.defaults)) or "none"
            raise ConfigError(f"train.weighting_params {unknown} are not parameters of {cls.name()} "
                              f"(it accepts: {accepted})")
        return dict(params)

    @classmethod
    def name(cls) -> str:
        return cls.__module__.rsplit(".", 1)[-1]

    @classmethod
    def describe(cls, params: Mapping[str, Any]) -> str:
        """The leaderboard's name of this method under ``params`` (non-default ones shown)."""
        shown = {k: v for k, v in params.items() if cls.defaults.get(k) != v}
        return cls.name() + "".join(f" {k}={v}" for k, v in sorted(shown.items()))

    def start_epoch(self, epoch: int) -> None:
        """Called before epoch ``epoch`` (from 1)."""

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        """Backward pass of one batch from its task ``losses`` (shape (tasks,)) and the model's
        regularization ``penalty``; returns the scalar loss to report (detached)."""
        raise NotImplementedError

    def batch_weights(self) -> torch.Tensor:
        """A :attr:`stackable` method's task weights for the next batch (noted for
        :meth:`epoch_weights`): the stacked step applies them to every seed's losses itself."""
        raise NotImplementedError(f"{self.name()} is not stackable")

    def step(self) -> None:
        """Update the method's own parameters after the optimizer's step (most have none)."""

    def end_epoch(self, task_losses: Sequence[float]) -> None:
        """Called after each epoch with its mean training loss per task (per row)."""

    def note_weights(self, weights: torch.Tensor) -> None:
        """Add one batch's applied task weights to the epoch's average (:meth:`epoch_weights`)."""
        self._weight_sum += weights.detach()
        self._batches += 1

    def epoch_weights(self) -> dict[str, float]:
        """The task weights applied in the epoch now ending, averaged over its batches; resets."""
        mean = (self._weight_sum / max(self._batches, 1)).tolist()
        self._weight_sum.zero_()
        self._batches = 0
        return {t.name: w for t, w in zip(self.tasks, mean)}

    def state_dict(self) -> dict[str, Any]:
        return {"weight_sum": self._weight_sum.clone(), "batches": self._batches}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._weight_sum = state["weight_sum"].to(self.device).clone()
        self._batches = state["batches"]


class GradientWeighting(Weighting):
    """A gradient balancing method: the Jacobian of the task losses with respect to the model's shared
    parameters (:meth:`models.base.MTLModel.shared_parameters`), shape (tasks, parameters), is combined
    by the method's aggregator (:meth:`make_aggregator`, a torchjd ``Aggregator``) into their gradient;
    every other parameter gets the gradient of the plain sum of the losses; the penalty's gradient is
    added to every parameter. The task weights noted are those the aggregator applied (ones where it
    has none, or where the model shares nothing)."""

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.shared = [p for p in model.shared_parameters() if p.requires_grad]
        own = {id(p) for p in self.shared}
        self.others = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
        self.aggregator = self.make_aggregator()

    def make_aggregator(self):
        raise NotImplementedError

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        """Returns the losses' sum under the applied weights plus the penalty, detached."""
        from torchjd.autojac import backward as jacobian_backward, jac_to_grad  # only gradient methods need it

        weights = torch.ones_like(losses.detach())
        if self.shared:
            jacobian_backward(losses, inputs=self.shared, retain_graph=True)
            applied = jac_to_grad(self.shared, self.aggregator)
            if applied is not None:
                weights = applied.detach().to(losses.dtype)
        if self.others:
            torch.autograd.backward(losses.sum(), inputs=self.others, retain_graph=penalty is not None)
        if penalty is not None and penalty.requires_grad:
            penalty.backward()
        self.note_weights(weights)
        reported = weighted_sum(losses.detach(), weights)
        return reported if penalty is None else reported + penalty.detach()

