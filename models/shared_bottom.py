"""Hard parameter sharing (shared bottom; Caruana 1997), the PLE paper's "Hard Sharing" (its Fig. 1a).

One embedding and one bottom MLP shared by all tasks, one tower per task:
``y_k = t_k(f(x))``.
"""

from __future__ import annotations

from typing import Any, Mapping

from models.base import MTLModel
from models.layers import MLP
from models.registry import register_model


@register_model("shared_bottom")
class SharedBottom(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        bottom_units: tuple[int, ...] = (128,),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        self.embedding = self.make_embedding()
        self.bottom = MLP(self.input_dim, tuple(bottom_units))
        self.towers = self.make_towers(self.bottom.out_dim, tower_units)

    def extract(self, x_cat, x_num):
        h = self.bottom(self.embedding(x_cat, x_num))
        return {t: h for t in self.task_names}, {}
