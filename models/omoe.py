"""One-gate Mixture-of-Experts (Ma et al., KDD 2018, Sec. 4.2, Eq. 4; after Eigen et al. 2013).

``y_k = h_k(sum_i g(x)_i f_i(x))`` with one softmax gate ``g(x) = softmax(W x)`` shared by every
task: MMoE with a single gate, the MMoE paper's ablation of per-task gates. The gate is reported
once per task (the same tensor), so read-outs line up with MMoE's.
"""

from __future__ import annotations

from typing import Any, Mapping

from models.base import SHARED, MTLModel, expert_labels
from models.layers import ExpertGroup, Gate, mix
from models.registry import register_model


@register_model("omoe")
class OMoE(MTLModel):
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
        self.gate = Gate(self.input_dim, n_experts)
        self.towers = self.make_towers(self.experts.out_dim, tower_units)

    def gate_experts(self):
        return {t: expert_labels(SHARED, self.experts.n_experts) for t in self.task_names}

    def extract(self, x_cat, x_num):
        x = self.embedding(x_cat, x_num)
        gate = self.gate(x)  # (batch, n_experts), one for all tasks
        h = mix(gate, self.experts(x))
        return {t: h for t in self.task_names}, {t: gate for t in self.task_names}
