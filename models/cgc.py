"""Customized Gate Control (Tang et al., RecSys 2020, Eqs. 2-5): PLE's single-level form.

Per task k, ``y_k = t_k(g_k(x))`` with ``g_k(x) = w_k(x) S_k(x)``, ``w_k(x) = softmax(W_k x)`` over
the stacked [task-k experts ; shared experts]. Built as a one-level :class:`models.ple.PLE`, so a PLE
with one level has exactly this structure (same parameters, same forward).
"""

from __future__ import annotations

from typing import Any, Mapping

from models.ple import PLE
from models.registry import register_model


@register_model("cgc")
class CGC(PLE):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        n_task_experts: int = 2,
        n_shared_experts: int = 2,
        expert_units: tuple[int, ...] = (64,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(
            schema,
            n_levels=1,
            n_task_experts=n_task_experts,
            n_shared_experts=n_shared_experts,
            expert_units=expert_units,
            tower_units=tower_units,
            **common,
        )
