"""Progressive Layered Extraction (Tang et al., RecSys 2020, Eqs. 2-7).

Each extraction level has, per task k, ``m_k`` task-specific experts and ``m_s`` shared experts.
Eqs. 2-4 (CGC): ``g_k(x) = w_k(x) S_k(x)`` with ``w_k(x) = softmax(W_k x)`` over the stacked
[task-k experts ; shared experts]. Eqs. 6-7 (PLE): level j's gate for task k selects on the level
(j-1) output of task k (not on x), and every non-final level also has a shared gate over ALL experts
of the level (every task's and the shared ones), selecting on the level (j-1) shared output; its
output feeds the next level's shared experts. Towers read the last level's task outputs. A PLE with
one level is exactly CGC (no shared gate): see :mod:`models.cgc`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from models.base import SHARED, MTLModel, expert_labels
from models.layers import ExpertGroup, Gate, linear_by_input, mix
from models.registry import register_model


class ExtractionLayer(nn.Module):
    """One extraction network (PLE Fig. 5 / Eq. 6).

    Inputs: per-task selectors/inputs ``{task: (batch, in_dim)}`` and the shared input
    ``(batch, in_dim)``. Outputs: ``{task: (batch, dim)}``, the shared output (or None on the final
    level) and the gate weights ``{task or "shared": (batch, n_gated_experts)}``.
    """

    def __init__(
        self,
        in_dim: int,
        task_names: Sequence[str],
        n_task_experts: int,
        n_shared_experts: int,
        expert_units: Sequence[int],
        shared_gate: bool,
    ) -> None:
        super().__init__()
        self.task_names = tuple(task_names)
        self.task_experts = nn.ModuleDict(
            {t: ExpertGroup(in_dim, n_task_experts, expert_units) for t in self.task_names}
        )
        self.shared_experts = ExpertGroup(in_dim, n_shared_experts, expert_units)
        self.task_gates = nn.ModuleDict({t: Gate(in_dim, n_task_experts + n_shared_experts) for t in self.task_names})
        n_all = len(self.task_names) * n_task_experts + n_shared_experts
        self.shared_gate = Gate(in_dim, n_all) if shared_gate else None
        self.out_dim = self.shared_experts.out_dim

    def gate_experts(self) -> dict[str, tuple[str, ...]]:
        """Each gate's experts in column order: task gates see [own ; shared], the shared gate all."""
        own = {t: expert_labels(t, self.task_experts[t].n_experts) for t in self.task_names}
        shared = expert_labels(SHARED, self.shared_experts.n_experts)
        labels = {t: own[t] + shared for t in self.task_names}
        if self.shared_gate is not None:
            labels[SHARED] = sum((own[t] for t in self.task_names), ()) + shared
        return labels

    def forward(
        self, task_inputs: dict[str, torch.Tensor], shared_input: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict[str, torch.Tensor]]:
        names = self.task_names
        # Every first layer and gate of the level as one matrix product per input (linear_by_input):
        # on level 1 all of them read the embedding; later levels read each task's and the shared input.
        calls = [(shared_input, self.shared_experts.first)]
        calls += [(task_inputs[t], self.task_experts[t].first) for t in names]
        calls += [(task_inputs[t], self.task_gates[t].linear) for t in names]
        if self.shared_gate is not None:
            calls.append((shared_input, self.shared_gate.linear))
        first = linear_by_input(calls)
        n = len(names)
        shared = self.shared_experts.activate(first[0])  # (batch, m_s, dim)
        own = {t: self.task_experts[t].activate(first[1 + i]) for i, t in enumerate(names)}  # (batch, m_k, dim)
        gates = {t: self.task_gates[t].activate(first[1 + n + i]) for i, t in enumerate(names)}
        outputs = {t: mix(gates[t], torch.cat([own[t], shared], dim=1)) for t in names}
        shared_output = None
        if self.shared_gate is not None:
            gates[SHARED] = self.shared_gate.activate(first[-1])
            every_expert = torch.cat([*(own[t] for t in names), shared], dim=1)
            shared_output = mix(gates[SHARED], every_expert)
        return outputs, shared_output, gates


@register_model("ple")
class PLE(MTLModel):
    """Stacked extraction levels; gate weights are reported as ``level{j}/{task or shared}``."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        n_levels: int = 2,
        n_task_experts: int = 2,
        n_shared_experts: int = 2,
        expert_units: tuple[int, ...] = (64,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        if n_levels < 1:
            raise ValueError(f"PLE needs n_levels >= 1, got {n_levels}")
        self.embedding = self.make_embedding()
        levels = []
        in_dim = self.input_dim
        for j in range(n_levels):
            level = ExtractionLayer(
                in_dim, self.task_names, n_task_experts, n_shared_experts, expert_units,
                shared_gate=j < n_levels - 1,
            )
            levels.append(level)
            in_dim = level.out_dim
        self.levels = nn.ModuleList(levels)
        self.towers = self.make_towers(in_dim, tower_units)

    def task_modules(self):
        """Each task's tower, and its experts and gate in the last level (whose outputs reach no other
        task: the last level has no shared gate); lower levels' task experts feed the shared gate."""
        last = self.levels[-1]
        return {t: [last.task_experts[t], last.task_gates[t], self.towers[t]] for t in self.task_names}

    def gate_experts(self):
        return {f"level{j}/{name}": labels for j, level in enumerate(self.levels, start=1)
                for name, labels in level.gate_experts().items()}

    def extract(self, x_cat, x_num):
        shared = self.embedding(x_cat, x_num)
        task_inputs = {t: shared for t in self.task_names}
        all_gates: dict[str, torch.Tensor] = {}
        for j, level in enumerate(self.levels, start=1):
            task_inputs, shared, gates = level(task_inputs, shared)
            all_gates.update({f"level{j}/{name}": g for name, g in gates.items()})
        return task_inputs, all_gates
