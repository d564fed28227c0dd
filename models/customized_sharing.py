"""Customized Sharing (Tang et al., RecSys 2020, Sec. 3 and Fig. 1c).

Each task has its own bottom, and one bottom is shared by all tasks; task k's tower reads the
concatenation of the shared bottom's output and its own: ``y_k = t_k([f_s(x) ; f_k(x)])``. The
embedding is shared (the input representation, as in every sharing model here but Single-Task).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from models.base import MTLModel
from models.layers import MLP
from models.registry import register_model


@register_model("customized_sharing")
class CustomizedSharing(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        shared_units: tuple[int, ...] = (64,),
        task_units: tuple[int, ...] = (64,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        self.embedding = self.make_embedding()
        self.shared_bottom = MLP(self.input_dim, tuple(shared_units))
        self.task_bottoms = nn.ModuleDict({t: MLP(self.input_dim, tuple(task_units)) for t in self.task_names})
        in_dim = self.shared_bottom.out_dim + self.task_bottoms[self.task_names[0]].out_dim
        self.towers = self.make_towers(in_dim, tower_units)

    def task_modules(self):
        return {t: [self.task_bottoms[t], self.towers[t]] for t in self.task_names}

    def extract(self, x_cat, x_num):
        x = self.embedding(x_cat, x_num)
        shared = self.shared_bottom(x)
        return {t: torch.cat([shared, self.task_bottoms[t](x)], dim=-1) for t in self.task_names}, {}
