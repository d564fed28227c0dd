"""Multi-Level MMoE (Tang et al., RecSys 2020, Fig. 1g): stacked MMoE levels, gates reading x.

Level 1 is MMoE (Ma et al., KDD 2018, Eqs. 5-6): experts ``f^1_i(x)`` and per-task gates give
``h^1_k = sum_i g^1_k(x)_i f^1_i(x)``. Every further level j has its own experts, shared by all
tasks, applied to each task's previous representation, and per-task gates that again read ``x``
(not the previous level, which is PLE's choice, Eq. 6): ``h^j_k = sum_i g^j_k(x)_i f^j_i(h^{j-1}_k)``.
The PLE paper shows the structure without equations; this is our reading of it. Gate weights are
reported as ``level{j}/{task}``; with one level the model is MMoE.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from models.base import SHARED, MTLModel, expert_labels
from models.layers import ExpertGroup, Gate, mix
from models.registry import register_model


@register_model("ml_mmoe")
class MultiLevelMMoE(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        n_levels: int = 2,
        n_experts: int = 4,
        expert_units: tuple[int, ...] = (64,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        if n_levels < 1:
            raise ValueError(f"ML-MMoE needs n_levels >= 1, got {n_levels}")
        self.embedding = self.make_embedding()
        experts, gates = [], []
        in_dim = self.input_dim
        for _ in range(n_levels):
            experts.append(ExpertGroup(in_dim, n_experts, tuple(expert_units)))
            gates.append(nn.ModuleDict({t: Gate(self.input_dim, n_experts) for t in self.task_names}))
            in_dim = experts[-1].out_dim
        self.experts = nn.ModuleList(experts)
        self.gates = nn.ModuleList(gates)
        self.towers = self.make_towers(in_dim, tower_units)

    def gate_experts(self):
        return {f"level{j}/{t}": expert_labels(SHARED, experts.n_experts)
                for j, experts in enumerate(self.experts, start=1) for t in self.task_names}

    def extract(self, x_cat, x_num):
        x = self.embedding(x_cat, x_num)
        batch, n_tasks = x.shape[0], len(self.task_names)
        reps = None
        all_gates: dict[str, torch.Tensor] = {}
        for j, (experts, gates) in enumerate(zip(self.experts, self.gates), start=1):
            if reps is None:  # level 1: one expert pass serves every task
                outs = [experts(x)] * n_tasks
            else:  # the shared experts applied to every task's representation in one batched pass
                stacked = experts(torch.cat([reps[t] for t in self.task_names]))  # (tasks * batch, E, dim)
                outs = stacked.split(batch)
            level_gates = {t: gates[t](x) for t in self.task_names}
            reps = {t: mix(level_gates[t], out) for t, out in zip(self.task_names, outs)}
            all_gates.update({f"level{j}/{t}": g for t, g in level_gates.items()})
        return reps, all_gates
