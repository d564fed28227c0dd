"""Cross-Stitch Networks (Misra, Shrivastava, Gupta, Hebert, CVPR 2016, Eq. 1; PLE Fig. 1e).

One network per task (its own embedding and layers); after every layer a cross-stitch unit mixes
the tasks' activations linearly: ``h'_k = sum_j a_kj h_j`` with a learned (tasks x tasks) matrix
per layer. Misra et al. learn one value per task pair (and channel, for convolutions); on
fully-connected layers that is one scalar per pair. Initialised as they recommend: ``a_kk`` =
``stitch_self`` (0.9) and the rest of each row spread evenly (0.1 / (tasks - 1)), so each task starts
mostly itself. With the identity as every unit the model is Single-Task.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from models.base import MTLModel
from models.layers import MLP, mostly_self
from models.registry import register_model


@register_model("cross_stitch")
class CrossStitch(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        units: tuple[int, ...] = (128, 64),
        stitch_self: float = 0.9,
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        if not units:
            raise ValueError("cross_stitch needs at least one layer in units")
        self.embeddings = nn.ModuleDict({t: self.make_embedding() for t in self.task_names})
        self.layers = nn.ModuleList()
        in_dim = self.input_dim
        for width in units:
            self.layers.append(nn.ModuleDict({t: MLP(in_dim, (width,)) for t in self.task_names}))
            in_dim = width
        n = len(self.task_names)
        self.stitches = nn.ParameterList([nn.Parameter(mostly_self(n, stitch_self)) for _ in units])
        self.towers = self.make_towers(in_dim, tower_units)

    def extract(self, x_cat, x_num):
        h = torch.stack([self.embeddings[t](x_cat, x_num) for t in self.task_names])  # (tasks, batch, in)
        for layer, stitch in zip(self.layers, self.stitches):
            h = torch.stack([layer[t](h[k]) for k, t in enumerate(self.task_names)])  # (tasks, batch, width)
            h = torch.einsum("kj,jbd->kbd", stitch, h)
        return {t: h[k] for k, t in enumerate(self.task_names)}, {}
