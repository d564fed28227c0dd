"""Tensor-Factorisation sharing (Yang & Hospedales, ICLR 2017, Tucker variant; an MMoE-paper baseline).

A shared input embedding, then bottom layers whose per-task weights are the task slices of one
Tucker-factorised tensor. For a layer d_in -> d_out and K tasks:

    W = S x_1 U1 x_2 U2 x_3 U3,   i.e.   W[i, o, k] = sum_{a,b,c} S[a, b, c] U1[i, a] U2[o, b] U3[k, c]

with core S (r1, r2, r3), U1 (d_in, r1), U2 (d_out, r2), U3 (K, r3); task k's layer is
``h_k = relu(x_k W[:, :, k] + b_k)``. The first layer reads the shared embedding, so all K tasks'
outputs come from one einsum; later layers read each task's own previous output (one batched einsum).
Each task's tower reads its last layer. The tasks share U1, U2 and S; U3's row k is what is task k's.

Decisions the paper leaves open or that differ from it:

* Ranks ``ranks = (r1, r2, r3)``, the same for every layer, each clipped to its mode's size:
  ``r1 = min(ranks[0], d_in)``, ``r2 = min(ranks[1], d_out)``, ``r3 = min(ranks[2], K)``. The mode-n
  unfolding of W has rank at most that mode's size, so a larger rank only adds redundant parameters.
  With the default ``ranks[2]`` (32) the task mode is full (r3 = K): each task gets its own r1 x r2
  core combination ``S x_3 U3[k]`` and the tasks share the input and output subspaces U1, U2; a
  ``ranks[2]`` below K also ties the tasks' cores to an r3-dimensional span.
* Initialisation: Yang & Hospedales initialise S and U by decomposing pretrained single-task weights
  (their "knowledge sharing" initialisation). That needs a trained Single-Task model, which a model
  here cannot load (models know no files), so the factors start random instead: U1, U2, U3 with
  orthonormal columns (what a higher-order SVD would give) and S ~ N(0, s^2) with
  ``s^2 = d_out K / (3 r1 r2 r3)``, which gives the composed W a mean squared entry of 1 / (3 d_in):
  the fan-in scale of ``nn.Linear``'s default (Uniform(+-1/sqrt(d_in)), std 1/sqrt(3 d_in)) that every
  other model's layers use. Biases are per task, free (not factorised) and drawn as ``nn.Linear``'s.
* Of the paper's factorisations (Tucker, Tensor-Train, last-axis flattening) only Tucker is here, as
  in the MMoE paper's baseline. Only the bottom layers are factorised; the towers are ordinary per-task
  MLPs, as in every model of the zoo.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from models.base import MTLModel
from models.registry import register_model


class TuckerLayer(nn.Module):
    """K task-specific ``d_in -> d_out`` ReLU layers whose weights are slices of one Tucker tensor.

    Input: the shared (batch, d_in) or per-task (K, batch, d_in). Output: (K, batch, d_out).
    """

    def __init__(self, in_dim: int, out_dim: int, n_tasks: int, ranks: tuple[int, int, int]) -> None:
        super().__init__()
        r1, r2, r3 = min(ranks[0], in_dim), min(ranks[1], out_dim), min(ranks[2], n_tasks)
        self.in_dim, self.out_dim, self.n_tasks, self.ranks = in_dim, out_dim, n_tasks, (r1, r2, r3)
        self.core = nn.Parameter(torch.randn(r1, r2, r3) * math.sqrt(out_dim * n_tasks / (3 * r1 * r2 * r3)))
        self.u_in = nn.Parameter(nn.init.orthogonal_(torch.empty(in_dim, r1)))
        self.u_out = nn.Parameter(nn.init.orthogonal_(torch.empty(out_dim, r2)))
        self.u_task = nn.Parameter(nn.init.orthogonal_(torch.empty(n_tasks, r3)))
        bound = 1.0 / math.sqrt(in_dim)
        self.bias = nn.Parameter(torch.empty(n_tasks, out_dim).uniform_(-bound, bound))

    def weight(self) -> torch.Tensor:
        """W = S x_1 U1 x_2 U2 x_3 U3: (d_in, d_out, K); ``weight()[:, :, k]`` is task k's matrix."""
        return torch.einsum("abc,ia,ob,kc->iok", self.core, self.u_in, self.u_out, self.u_task)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight()
        if x.dim() == 2:  # shared input (batch, d_in): every task's layer in one product
            h = torch.einsum("bi,iok->kbo", x, w)
        else:  # per-task input (K, batch, d_in)
            h = torch.einsum("kbi,iok->kbo", x, w)
        return torch.relu(h + self.bias.unsqueeze(1))  # (K, batch, d_out)


@register_model("tensor_factorization")
class TensorFactorization(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        bottom_units: tuple[int, ...] = (128,),
        ranks: tuple[int, int, int] = (32, 32, 32),
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        ranks = tuple(int(r) for r in ranks)
        if len(ranks) != 3 or min(ranks) < 1:
            raise ValueError(f"tensor_factorization needs three ranks >= 1 (r1, r2, r3), got {ranks}")
        if not bottom_units:
            raise ValueError("tensor_factorization needs at least one layer in bottom_units")
        self.embedding = self.make_embedding()
        layers = []
        in_dim = self.input_dim
        for width in bottom_units:
            layers.append(TuckerLayer(in_dim, width, len(self.task_names), ranks))
            in_dim = width
        self.layers = nn.ModuleList(layers)
        self.towers = self.make_towers(in_dim, tower_units)

    def extract(self, x_cat, x_num):
        h = self.embedding(x_cat, x_num)  # (batch, input_dim), shared by the tasks
        for layer in self.layers:
            h = layer(h)  # (K, batch, width)
        return {t: h[k] for k, t in enumerate(self.task_names)}, {}
