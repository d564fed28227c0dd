"""Building blocks shared by the zoo: feature embedding, MLPs, expert groups and gates."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class FeatureEmbedding(nn.Module):
    """Embed every categorical feature and concatenate the numeric ones.

    All categorical features share one table with per-feature offsets, so the lookup is a single
    ``nn.Embedding`` call. (batch, n_cat) int64 + (batch, n_num) -> (batch, n_cat * dim + n_num).
    The table starts as N(0, ``std``^2).
    """

    def __init__(self, cardinalities: Sequence[int], n_numeric: int, dim: int, std: float = 0.01) -> None:
        super().__init__()
        cards = torch.tensor([0, *cardinalities], dtype=torch.long)
        self.register_buffer("offsets", torch.cumsum(cards, 0)[:-1], persistent=False)
        self.table = nn.Embedding(max(int(cards.sum()), 1), dim)
        nn.init.normal_(self.table.weight, std=std)
        self.out_dim = len(cardinalities) * dim + n_numeric

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> torch.Tensor:
        # index_select's backward (index_add) is several times faster on CPU than nn.Embedding's.
        codes = (x_cat + self.offsets).flatten()
        emb = self.table.weight.index_select(0, codes).view(x_cat.shape[0], -1)
        return torch.cat([emb, x_num], dim=1)


class MLP(nn.Sequential):
    """Linear + ReLU for each hidden width, then an optional linear output layer."""

    def __init__(self, in_dim: int, units: Sequence[int], out_dim: int | None = None) -> None:
        layers: list[nn.Module] = []
        for width in units:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            in_dim = width
        if out_dim is not None:
            layers.append(nn.Linear(in_dim, out_dim))
            in_dim = out_dim
        super().__init__(*layers)
        self.out_dim = in_dim


class ExpertGroup(nn.Module):
    """``n_experts`` independent MLP experts (ReLU after every layer) that read the same input.

    The experts' first layers are fused into one ``Linear(in_dim, n_experts * width)``, which has
    the same initialisation distribution as separate layers (fan-in ``in_dim``) but is one matrix
    product; deeper layers are batched per expert. (batch, in_dim) -> (batch, n_experts, units[-1]).
    """

    def __init__(self, in_dim: int, n_experts: int, units: Sequence[int]) -> None:
        super().__init__()
        if n_experts < 1 or not units:
            raise ValueError(f"an expert group needs n_experts >= 1 and at least one layer, got {n_experts}, {units}")
        self.n_experts = n_experts
        self.first = nn.Linear(in_dim, n_experts * units[0])
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, width in zip(units[:-1], units[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(n_experts, fan_in, width).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_experts, width).uniform_(-bound, bound)))
        self.out_dim = units[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.first(x))

    def activate(self, first: torch.Tensor) -> torch.Tensor:
        """The experts from their first layer's pre-activation ``self.first(x)`` (which
        :func:`linear_by_input` may compute together with other layers reading ``x``)."""
        h = torch.relu(first).unflatten(-1, (self.n_experts, -1))
        for weight, bias in zip(self.weights, self.biases):
            h = torch.relu(torch.einsum("bei,eio->beo", h, weight) + bias)
        return h


class Gate(nn.Module):
    """Softmax gate: (batch, in_dim) selector -> (batch, n_experts) weights summing to 1."""

    def __init__(self, in_dim: int, n_experts: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n_experts)

    def forward(self, selector: torch.Tensor) -> torch.Tensor:
        return self.activate(self.linear(selector))

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """The weights from the logits ``self.linear(selector)``."""
        return torch.softmax(logits, dim=-1)


def linear_by_input(calls: Sequence[tuple[torch.Tensor, nn.Linear]]) -> list[torch.Tensor]:
    """``[layer(x) for x, layer in calls]``, computed as one matrix product per distinct input
    tensor: the layers that read the same tensor (the same object) have their weights concatenated
    for the forward pass. The parameters stay separate (their initialisation, names and gradients
    are the layers' own); only the rounding of the input's gradient changes, which is now summed
    inside one product. Fewer, larger products (and in bf16 fewer casts) make PLE's epoch faster on a
    CPU (benchmarks/README.md, "Profiles")."""
    groups: list[tuple[torch.Tensor, list[int]]] = []
    for i, (x, _) in enumerate(calls):
        group = next((members for tensor, members in groups if tensor is x), None)
        if group is None:
            groups.append((x, [i]))
        else:
            group.append(i)
    out: list[torch.Tensor | None] = [None] * len(calls)
    for x, members in groups:
        layers = [calls[i][1] for i in members]
        if len(layers) == 1:
            out[members[0]] = layers[0](x)
            continue
        weight = torch.cat([layer.weight for layer in layers])
        bias = torch.cat([layer.bias for layer in layers])
        parts = torch.nn.functional.linear(x, weight, bias).split([layer.out_features for layer in layers], dim=-1)
        for i, part in zip(members, parts):
            out[i] = part
    return out  # type: ignore[return-value]  # every slot is filled


def mix(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gated sum: (batch, n_experts) weights x (batch, n_experts, dim) experts -> (batch, dim)."""
    # Broadcast-multiply and sum: a batched (1 x n) @ (n x dim) product per row is far slower.
    return (weights.unsqueeze(-1) * experts).sum(dim=1)


def mostly_self(n: int, self_weight: float) -> torch.Tensor:
    """(n, n) mixing matrix: ``self_weight`` on the diagonal, the rest of each row spread evenly.

    Misra et al.'s recommended start for cross-stitch units (0.9 / 0.1): each unit begins mostly
    itself, so the tasks begin nearly apart and learn how much to mix."""
    if n == 1:
        return torch.ones(1, 1)
    other = (1.0 - self_weight) / (n - 1)
    return torch.full((n, n), other) + torch.eye(n) * (self_weight - other)
