"""Shared bottom with gated task residuals: an example of a model brought from outside the zoo.

Compare it with every model already trained, under the same protocol and seeds:

    python -m replication compare --model examples/my_model.py:MyModel

One shared bottom MLP ``h(x)`` serves every task; each task k adds a residual MLP ``r_k(x)`` through a
softmax gate over two experts, "the shared representation" and "the shared representation plus the
task's residual":

    z_k = g_k0(x) h(x) + g_k1(x) (h(x) + r_k(x)) = h(x) + g_k1(x) r_k(x),    g_k(x) = softmax(W_k x)

so each task decides per row how far to move away from what the tasks share; the tower ``t_k`` maps
``z_k`` to the task's logit. With ``g_k1 = 0`` it is a shared-bottom model, with a large residual
close to a single-task one.

What any model has to do (``models/base.py``; ``compare`` checks it on the real data before training):
subclass ``MTLModel``, take the data's schema and keyword hyperparameters (passing the shared input
ones, ``**common``, on to ``MTLModel``), and return ``MTLOutput(outputs, gates)`` from ``forward``
(``MTLModel.forward`` builds it from ``extract`` and ``self.towers``): one ``(batch,)`` logit per task
name and, per gate, ``(batch, n_experts)`` weights summing to 1, labelled by ``gate_experts()``.

Records and tables call this model ``mymodel`` (the class name lower-cased; a class attribute
``model_name = "..."`` chooses another). Its hyperparameters come from ``params.yaml``'s
``model_common`` and, when present, ``models.mymodel`` (``--set models.mymodel.residual_units=[16]``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from models.base import SHARED, MTLModel


def mlp(in_dim: int, units: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU for each width in ``units``."""
    layers: list[nn.Module] = []
    for width in units:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers)


class MyModel(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        bottom_units: Sequence[int] = (128,),
        residual_units: Sequence[int] = (32,),
        tower_units: Sequence[int] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        self.embedding = self.make_embedding()
        self.bottom = mlp(self.input_dim, bottom_units)
        width = bottom_units[-1]
        self.residuals = nn.ModuleDict({
            t: nn.Sequential(mlp(self.input_dim, residual_units), nn.Linear(residual_units[-1], width))
            for t in self.task_names
        })
        self.gates = nn.ModuleDict({t: nn.Linear(self.input_dim, 2) for t in self.task_names})
        self.towers = self.make_towers(width, tower_units)

    def gate_experts(self) -> dict[str, tuple[str, ...]]:
        # Column 0 weighs the shared representation, column 1 the task's own residual path.
        return {t: (f"{SHARED}/0", f"{t}/0") for t in self.task_names}

    def extract(self, x_cat: torch.Tensor, x_num: torch.Tensor):
        x = self.embedding(x_cat, x_num)
        shared = self.bottom(x)
        gates = {t: torch.softmax(self.gates[t](x), dim=-1) for t in self.task_names}
        reps = {t: shared + gates[t][:, 1:] * self.residuals[t](x) for t in self.task_names}
        return reps, gates
