"""Asymmetric Sharing (Tang et al., RecSys 2020, Sec. 3 and Fig. 1b).

Every task has its own bottom; one task's bottom output (the source) is also fed into every other
task's tower, fused with that task's own bottom output:
``y_s = t_s(f_s(x))`` and, for k != s, ``y_k = t_k(fuse(f_k(x), f_s(x)))`` with ``fuse`` one of
concat, sum or mean. Which task feeds the others is a parameter (default: the main task, the first
in the schema). The other tasks' losses reach the source's bottom through the fusion, which is what
makes the sharing asymmetric. The input embedding is shared, as in every sharing model here.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from models.base import MTLModel
from models.layers import MLP
from models.registry import register_model

FUSIONS = {
    "concat": lambda own, source: torch.cat([own, source], dim=-1),
    "sum": lambda own, source: own + source,
    "mean": lambda own, source: (own + source) / 2,
}


@register_model("asymmetric_sharing")
class AsymmetricSharing(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        source_task: str = "",
        fusion: str = "concat",
        bottom_units: tuple[int, ...] = (128,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        self.source_task = source_task or self.task_names[0]
        if self.source_task not in self.task_names:
            raise ValueError(f"source_task {source_task!r} is not a task; the tasks are {list(self.task_names)}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion {fusion!r} is not one of {', '.join(FUSIONS)}")
        self.fusion = fusion
        self.embedding = self.make_embedding()
        self.bottoms = nn.ModuleDict({t: MLP(self.input_dim, tuple(bottom_units)) for t in self.task_names})
        width = self.bottoms[self.source_task].out_dim
        fused = 2 * width if fusion == "concat" else width
        self.towers = nn.ModuleDict({
            t: MLP(width if t == self.source_task else fused, tuple(tower_units), out_dim=1) for t in self.task_names
        })

    def extract(self, x_cat, x_num):
        x = self.embedding(x_cat, x_num)
        own = {t: self.bottoms[t](x) for t in self.task_names}
        source = own[self.source_task]
        fuse = FUSIONS[self.fusion]
        return {t: h if t == self.source_task else fuse(h, source) for t, h in own.items()}, {}
