"""L2-Constrained soft sharing (Duong, Cohn, Bird, Cook, ACL 2015; an MMoE-paper baseline, Ma et al. KDD 2018).

One network per task, as in Single-Task (its own embedding, bottom MLP and tower), trained on the joint
loss plus an L2 distance between the tasks' bottom parameters (the MMoE paper writes it for two tasks
as ``alpha ||theta_1 - theta_2||^2``); for K tasks, every pair:

    L = sum_k L_k(y_k, f_k(x; theta_k)) + l2_weight * sum_{i<j} ||theta_i - theta_j||_2^2

``theta_k`` is task k's embedding table and bottom MLP (the parameters a Shared-Bottom model would
share); the towers are not constrained. The term is :meth:`regularization`, which the trainer adds to
the joint loss, so the tasks are tied through the loss and ``tasks_independent`` is False although no
parameter is shared.

Decisions the papers leave open:

* ``l2_weight`` (default 1e-4): neither paper gives a value for this data. ``l2_weight=0`` is
  Single-Task exactly, so that model returns no penalty and reports ``tasks_independent`` True.
* Initialisation: every task's embedding and bottom are drawn independently (different random values,
  created in Single-Task's order, so a seed gives both models the same initial parameters). Starting
  the tasks equal would make the penalty 0 and its gradient 0 at the first step; independent draws
  make the model start as Single-Task and let the penalty pull the tasks together.
* The sum runs over parameter pairs (``theta_i - theta_j``), not the expansion
  ``K sum ||theta_k||^2 - ||sum theta_k||^2``, which cancels badly when the tasks are close; equal
  parameters give exactly 0.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Mapping

import torch
from torch import nn

from models.base import MTLModel
from models.layers import MLP
from models.registry import register_model


@register_model("l2_constrained")
class L2Constrained(MTLModel):
    tasks_independent = False

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        bottom_units: tuple[int, ...] = (128,),
        tower_units: tuple[int, ...] = (32,),
        l2_weight: float = 1e-4,
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        if not l2_weight >= 0:
            raise ValueError(f"l2_constrained needs l2_weight >= 0, got {l2_weight}")
        self.l2_weight = float(l2_weight)
        # l2_weight 0 leaves nothing tying the tasks: Single-Task, whose tasks the trainer selects apart.
        self.tasks_independent = self.l2_weight == 0
        # Separate constructor calls: every task's embedding and bottom start from their own random draw.
        self.embeddings = nn.ModuleDict({t: self.make_embedding() for t in self.task_names})
        self.bottoms = nn.ModuleDict({t: MLP(self.input_dim, tuple(bottom_units)) for t in self.task_names})
        self.towers = self.make_towers(self.bottoms[self.task_names[0]].out_dim, tower_units)

    def task_modules(self):
        """Every parameter belongs to one task's network: the tasks meet only in the penalty."""
        return {t: [self.embeddings[t], self.bottoms[t], self.towers[t]] for t in self.task_names}

    def constrained_parameters(self, task: str) -> list[nn.Parameter]:
        """theta_k: task ``task``'s embedding and bottom parameters, in the same order for every task."""
        return [*self.embeddings[task].parameters(), *self.bottoms[task].parameters()]

    def distance(self) -> torch.Tensor:
        """sum_{i<j} ||theta_i - theta_j||^2 (unweighted), a scalar."""
        thetas = [self.constrained_parameters(t) for t in self.task_names]
        total = thetas[0][0].new_zeros(())
        for theta_i, theta_j in combinations(thetas, 2):
            for p_i, p_j in zip(theta_i, theta_j):
                total = total + (p_i - p_j).square().sum()
        return total

    def regularization(self) -> torch.Tensor | None:
        if self.l2_weight == 0:
            return None
        return self.l2_weight * self.distance()

    def extract(self, x_cat, x_num):
        reps = {t: self.bottoms[t](self.embeddings[t](x_cat, x_num)) for t in self.task_names}
        return reps, {}
