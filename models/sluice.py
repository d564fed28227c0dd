"""Sluice Networks (Ruder, Bingel, Augenstein, Søgaard, AAAI 2019, "Latent multi-task architecture learning").

A shared input layer (the embedding; the paper's Fig. 1), then per task a stack of layers, each layer's
output split into ``n_subspaces`` equal subspaces G_{k,l,1..m}. After every layer l an alpha unit, one
learned (K m x K m) matrix, mixes every task's subspaces:

    G~_{k,l,a} = sum_{j,b} alpha_l[(k, a), (j, b)] G_{j,l,b}     (rows and columns task-major: k*m + a)

and task k's next layer reads its mixed subspaces concatenated, ``h~_{k,l}``. Task k's tower reads the
beta unit's combination of its mixed outputs of every layer (the skip connections):
``r_k = sum_l beta[k, l] h~_{k,l}``. With every alpha the identity and beta all on the last layer the
model is Single-Task over a shared embedding.

Decisions (the paper, and the authors' released code, sebastianruder/sluice-networks, where it helps):

* alpha init: ``alpha_self`` (0.9) on the diagonal, the rest of each row spread evenly
  ((1 - 0.9) / (K m - 1)), so every subspace starts mostly itself, as Misra et al.'s cross-stitch
  init (and the released code's for one subspace). The code's init for two subspaces (a fixed
  0.95/0.05 pattern, written for two tasks, rows not summing to 1) does not generalise to K tasks and
  m subspaces, so it is not used.
* beta: plain learned weights, no softmax (as the released code's layer-stitch units), initialised
  uniform 1/L; plain weights can put all of a task's weight on one layer exactly.
* Every layer must have the same width, since beta sums the layers' outputs.
* Orthogonality penalty: Ruder et al. add ``L_c = sum_k sum_l ||G_{k,l,1}^T G_{k,l,2}||_F^2`` with G the
  subspaces' matrices; the released code penalises the layers' *weight* matrices split by subspace, not
  activations. Done the same way here, so :meth:`regularization` needs no stored activations (it takes
  no input, and activations kept from the last forward would tie the penalty to call order): for each
  task and layer, the weight W (width, d_in) is split by output rows (units) into W_1..W_m, so
  ``G_a = W_a^T`` and the term is ``orthogonality_weight * sum_{a<b} ||W_a W_b^T||_F^2`` (every pair
  when m > 2): the subspaces' units are pushed to orthogonal input directions. Default weight 0: no
  penalty (``regularization`` returns None); a weight > 0 needs ``n_subspaces >= 2``.
* The paper's layers are BiLSTMs over word sequences; census rows are not sequences, so layers are
  Linear + ReLU.
* The learned values are module attributes: ``alphas[l]`` (K m, K m) per layer and ``betas`` (K, L).
  They are not per-sample gates, so ``gates`` stays empty.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Mapping

import torch
from torch import nn

from models.base import MTLModel
from models.layers import mostly_self
from models.registry import register_model


@register_model("sluice")
class Sluice(MTLModel):
    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        units: tuple[int, ...] = (64, 64),
        n_subspaces: int = 2,
        alpha_self: float = 0.9,
        orthogonality_weight: float = 0.0,
        tower_units: tuple[int, ...] = (32,),
        **common: Any,
    ) -> None:
        super().__init__(schema, **common)
        units = tuple(int(u) for u in units)
        if not units:
            raise ValueError("sluice needs at least one layer in units")
        if len(set(units)) != 1:
            raise ValueError(f"sluice's beta sums the layers' outputs, so every layer needs the same width; got {units}")
        width = units[0]
        if n_subspaces < 1 or width % n_subspaces:
            raise ValueError(f"n_subspaces {n_subspaces} does not divide the layer width {width}")
        if orthogonality_weight < 0 or (orthogonality_weight > 0 and n_subspaces < 2):
            raise ValueError(f"orthogonality_weight {orthogonality_weight} needs to be >= 0, and 0 unless "
                             f"n_subspaces >= 2 (got n_subspaces {n_subspaces})")
        self.n_subspaces = n_subspaces
        self.orthogonality_weight = float(orthogonality_weight)
        n_tasks = len(self.task_names)
        self.embedding = self.make_embedding()
        self.layers = nn.ModuleList()
        in_dim = self.input_dim
        for _ in units:
            self.layers.append(nn.ModuleDict({t: nn.Linear(in_dim, width) for t in self.task_names}))
            in_dim = width
        self.alphas = nn.ParameterList(
            [nn.Parameter(mostly_self(n_tasks * n_subspaces, alpha_self)) for _ in units]
        )
        self.betas = nn.Parameter(torch.full((n_tasks, len(units)), 1.0 / len(units)))
        self.towers = self.make_towers(width, tower_units)

    def subspace_labels(self) -> tuple[str, ...]:
        """The row/column order of every alpha matrix: ``{task}/{subspace}``, task-major."""
        return tuple(f"{t}/{a}" for t in self.task_names for a in range(self.n_subspaces))

    def regularization(self) -> torch.Tensor | None:
        if self.orthogonality_weight == 0:
            return None
        total = self.alphas[0].new_zeros(())
        for layer in self.layers:
            for linear in layer.values():
                blocks = linear.weight.chunk(self.n_subspaces, dim=0)  # m x (width / m, d_in)
                for w_a, w_b in combinations(blocks, 2):
                    total = total + (w_a @ w_b.T).square().sum()
        return self.orthogonality_weight * total

    def extract(self, x_cat, x_num):
        x = self.embedding(x_cat, x_num)  # (batch, input_dim), the shared input layer
        n_tasks, m = len(self.task_names), self.n_subspaces
        inputs = [x] * n_tasks
        mixed_outputs = []
        for layer, alpha in zip(self.layers, self.alphas):
            h = torch.stack([torch.relu(layer[t](inputs[k])) for k, t in enumerate(self.task_names)])
            _, batch, width = h.shape  # (K, batch, width)
            g = h.view(n_tasks, batch, m, width // m)  # task j, subspace b
            mixed = torch.einsum("kajb,jnbs->knas", alpha.view(n_tasks, m, n_tasks, m), g)
            mixed = mixed.reshape(n_tasks, batch, width)  # (K, batch, width)
            mixed_outputs.append(mixed)
            inputs = list(mixed)
        stacked = torch.stack(mixed_outputs)  # (L, K, batch, width)
        reps = torch.einsum("kl,lknd->knd", self.betas, stacked)  # (K, batch, width)
        return {t: reps[k] for k, t in enumerate(self.task_names)}, {}
