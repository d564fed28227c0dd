"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
Multitask Networks", ICML 2018, Eqs. 1-2 and Algorithm 1): the batch loss is ``sum_k w_k L_k`` with
learnable weights ``w_k`` (initially 1), and the weights descend

    L_grad = sum_k | G_k - mean_j(G_j) * r_k ** alpha |,   G_k = ||grad_W w_k L_k|| = w_k ||grad_W L_k||,

``r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0))`` the task's relative inverse training rate (``L_k(0)``:
the run's first batch's losses), the targets ``mean_j(G_j) r_k ** alpha`` held constant (as the paper
says), ``alpha`` the asymmetry (default 1.5); after each step the weights are renormalised to sum to
the number of tasks. ``W``: all the model's shared parameters (the paper takes the last shared layer
to save time; here the gradient norms cover every parameter several tasks share).

Own code (torchjd has no GradNorm); the tasks' gradients of the shared parameters come from torchjd's
``jac`` in one batched backward pass and also give the shared parameters their ``sum_k w_k g_k``; every
other parameter gets the gradient of ``sum_k w_k L_k``, the penalty's gradient is added to every
parameter. The weights have their own Adam at the run's ``train.lr`` (without weight decay), stepped
after the model's optimizer; the weights, their Adam and ``L_k(0)`` are checkpointed. The weights noted
are the ``w_k`` applied; the loss reported is the losses' sum under them plus the penalty.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torchjd.autojac import jac

from replication.weighting.base import GradientWeighting, weighted_sum


class GradNorm(GradientWeighting):
    """A gradient method in its parameters (``shared``, ``others``) but with a backward pass of its own."""

    defaults = {"alpha": 1.5}

    def __init__(self, tasks, cfg, device, model) -> None:
        super().__init__(tasks, cfg, device, model)
        self.weights = torch.ones(len(self.tasks), device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.weights], lr=cfg.lr)
        self.initial_losses: torch.Tensor | None = None

    def make_aggregator(self) -> None:
        return None  # the weights' gradients and the shared parameters' are computed in backward

    def backward(self, losses: torch.Tensor, penalty: torch.Tensor | None) -> torch.Tensor:
        weights = self.weights.detach().clone()
        if self.initial_losses is None:
            self.initial_losses = losses.detach().clone()
        if self.shared:
            jacobians = jac(losses, self.shared, retain_graph=True)  # each (tasks, *parameter shape)
            norms = torch.sqrt(sum((j.flatten(1) ** 2).sum(1) for j in jacobians))  # ||grad_W L_k||, (tasks,)
            for p, j in zip(self.shared, jacobians):
                g = torch.tensordot(weights.to(j.dtype), j, dims=1)
                p.grad = g if p.grad is None else p.grad + g
            norm_of_weighted = weights * norms  # G_k
            inverse_rate = losses.detach() / self.initial_losses
            targets = norm_of_weighted.mean() * (inverse_rate / inverse_rate.mean()) ** float(self.params["alpha"])
            self.weights.grad = (torch.sign(norm_of_weighted - targets) * norms).to(self.weights.dtype)  # dL_grad/dw_k
        if self.others:
            torch.autograd.backward(weighted_sum(losses, weights), inputs=self.others, retain_graph=penalty is not None)
        if penalty is not None and penalty.requires_grad:
            penalty.backward()
        self.note_weights(weights)
        reported = weighted_sum(losses.detach(), weights)
        return reported if penalty is None else reported + penalty.detach()

    def step(self) -> None:
        if self.weights.grad is None:
            return
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.weights *= len(self.tasks) / self.weights.sum()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "weights": self.weights.detach().clone(),
                "optimizer": self.optimizer.state_dict(), "initial_losses": self.initial_losses}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.weights.copy_(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        initial = state["initial_losses"]
        self.initial_losses = None if initial is None else initial.to(self.device).clone()


WEIGHTING = GradNorm
