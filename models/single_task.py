"""Single-Task baseline: one independent network per task (the reference for MTL gain, PLE Eq. 11).

Each task has its own embedding, bottom MLP and tower; no parameter is shared, so training the tasks
together with a summed loss is the same as training them apart, and the trainer selects each task's
epoch on that task's own validation metric (``tasks_independent``).
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from models.base import MTLModel
from models.layers import MLP
from models.registry import register_model


@register_model("single_task")
class SingleTask(MTLModel):
    tasks_independent = True

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        bottom_units: tuple[int, ...] = (128,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        self.embeddings = nn.ModuleDict({t: self.make_embedding() for t in self.task_names})
        self.bottoms = nn.ModuleDict({t: MLP(self.input_dim, tuple(bottom_units)) for t in self.task_names})
        self.towers = self.make_towers(self.bottoms[self.task_names[0]].out_dim, tower_units)

    def task_modules(self):
        return {t: [self.embeddings[t], self.bottoms[t], self.towers[t]] for t in self.task_names}

    def extract(self, x_cat, x_num):
        reps = {t: self.bottoms[t](self.embeddings[t](x_cat, x_num)) for t in self.task_names}
        return reps, {}
