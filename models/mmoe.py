"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018, Eqs. 5-6).

``f_k(x) = sum_i g_k(x)_i f_i(x)`` with ``g_k(x) = softmax(W_k x)``: n experts shared by all tasks,
one softmax gate per task selecting on the input x, one tower per task: ``y_k = h_k(f_k(x))``.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from models.base import SHARED, MTLModel, expert_labels
from models.layers import ExpertGroup, Gate, mix
from models.registry import register_model


@register_model("mmoe")
class MMoE(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        n_experts: int = 4,
        expert_units: tuple[int, ...] = (64,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        self.embedding = self.make_embedding()
        self.experts = ExpertGroup(self.input_dim, n_experts, tuple(expert_units))
        self.gates = nn.ModuleDict({t: Gate(self.input_dim, n_experts) for t in self.task_names})
        self.towers = self.make_towers(self.experts.out_dim, tower_units)

    def task_modules(self):
        return {t: [self.gates[t], self.towers[t]] for t in self.task_names}

    def gate_experts(self):
        return {t: expert_labels(SHARED, self.experts.n_experts) for t in self.task_names}

    def extract(self, x_cat, x_num):
        x = self.embedding(x_cat, x_num)
        experts = self.experts(x)  # (batch, n_experts, dim)
        gates = {t: self.gates[t](x) for t in self.task_names}
        return {t: mix(g, experts) for t, g in gates.items()}, gates
