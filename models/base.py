"""The model contract shared by every model in the zoo.

Inputs: ``x_cat`` (batch, n_categorical) int64 codes, 0 reserved for values unseen in training, and
``x_num`` (batch, n_numeric) float32. Output: :class:`MTLOutput` with one logit (binary task) or one
prediction (regression task) of shape (batch,) per task name, and the gate weights of gated models,
each (batch, n_experts) summing to 1 over experts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from models.layers import MLP, FeatureEmbedding

TASK_TYPES = ("binary", "regression")
SHARED = "shared"  # owner of experts every task may use, in gate and expert labels


def expert_labels(owner: str, n: int) -> tuple[str, ...]:
    return tuple(f"{owner}/{i}" for i in range(n))


class MTLOutput(NamedTuple):
    """What every model's ``forward`` returns (a pytree, so ``torch.func`` can batch it)."""

    outputs: dict[str, torch.Tensor]  # task name -> (batch,) logit or prediction
    gates: dict[str, torch.Tensor]  # gate name -> (batch, n_experts); empty for ungated models


@dataclass(frozen=True)
class TaskSpec:
    name: str
    type: str  # "binary" or "regression"

    def __post_init__(self) -> None:
        if self.type not in TASK_TYPES:
            raise ValueError(f"task {self.name!r} has type {self.type!r}; expected one of {TASK_TYPES}")


@dataclass(frozen=True)
class InputSpec:
    """What a model needs to know of its input: categorical cardinalities and the numeric width."""

    cardinalities: tuple[int, ...]
    n_numeric: int

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any]) -> "InputSpec":
        features = schema["features"]
        return cls(
            cardinalities=tuple(int(f["cardinality"]) for f in features["categorical"]),
            n_numeric=len(features["numeric"]),
        )


def tasks_from_schema(schema: Mapping[str, Any]) -> tuple[TaskSpec, ...]:
    return tuple(TaskSpec(t["name"], t["type"]) for t in schema["tasks"])


class MTLModel(nn.Module):
    """Base class: input embedding, one tower per task, and the sharing structure in between.

    Subclasses implement :meth:`extract`, mapping the embedded input ``(batch, input_dim)`` to one
    representation per task and the gate weights. ``tasks_independent`` is True only for models
    that share no parameter between tasks (Single-Task); the trainer then selects each task's
    epoch on that task's own validation metric.
    """

    model_name: str = ""
    tasks_independent: bool = False

    def __init__(self, schema: Mapping[str, Any], *, embedding_dim: int = 8, embedding_std: float = 0.01) -> None:
        """The input hyperparameters every model shares (a model's ``**common`` passes them here).

        ``embedding_std``: embeddings start as N(0, std^2). ``nn.Embedding``'s default std of 1
        makes the 31 x dim embedded inputs swamp the numeric ones; on census validation it costs
        about 0.003 income AUC (MMoE, seed 0: 0.9444 at std 1 against 0.9476 at std 0.01).
        """
        super().__init__()
        if embedding_dim < 1 or embedding_std <= 0:
            raise ValueError(f"need embedding_dim >= 1 and embedding_std > 0, got {embedding_dim}, {embedding_std}")
        self.input_spec = InputSpec.from_schema(schema)
        self.tasks = tasks_from_schema(schema)
        self.task_names = tuple(t.name for t in self.tasks)
        if len(set(self.task_names)) != len(self.task_names):
            raise ValueError(f"duplicate task names in schema: {self.task_names}")
        self.embedding_dim = embedding_dim
        self.embedding_std = embedding_std

    def make_embedding(self) -> FeatureEmbedding:
        return FeatureEmbedding(self.input_spec.cardinalities, self.input_spec.n_numeric, self.embedding_dim,
                                self.embedding_std)

    @property
    def input_dim(self) -> int:
        return len(self.input_spec.cardinalities) * self.embedding_dim + self.input_spec.n_numeric

    def make_towers(self, in_dim: int, units: tuple[int, ...]) -> nn.ModuleDict:
        """One MLP tower per task, ending in a single output unit."""
        return nn.ModuleDict({t: MLP(in_dim, tuple(units), out_dim=1) for t in self.task_names})

    def extract(
        self, x_cat: torch.Tensor, x_num: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        raise NotImplementedError

    def gate_experts(self) -> dict[str, tuple[str, ...]]:
        """For each gate ``forward`` reports, the expert behind each of its columns, labelled
        ``{owner}/{index}`` with owner a task name (a task-specific expert) or ``shared``. Gate names
        are ``level{j}/{name}`` in multi-level models. Empty for ungated models."""
        return {}

    def task_modules(self) -> dict[str, list[nn.Module]]:
        """For each task, the modules whose parameters only that task's loss depends on. Gradient
        balancing methods (:mod:`replication.weighting`) combine the tasks' gradients of every other
        parameter, :meth:`shared_parameters`. Default: each task's tower; a model with more
        task-specific parts declares them (declaring too few is safe, only slower: a parameter only
        one task uses then gets that task's gradient through the method's combination)."""
        return {t: [self.towers[t]] for t in self.task_names}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters of no task's :meth:`task_modules`: those several tasks' losses depend on."""
        own = {id(p) for modules in self.task_modules().values() for m in modules for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    def regularization(self) -> torch.Tensor | None:
        """An extra term the trainer adds to the joint loss, or None (most models). Models whose tasks
        are tied through the loss rather than through shared parameters (L2-Constrained) return it."""
        return None

    def forward(self, x_cat: torch.Tensor, x_num: torch.Tensor) -> MTLOutput:
        reps, gates = self.extract(x_cat, x_num)
        outputs = {t: self.towers[t](reps[t]).squeeze(-1) for t in self.task_names}
        return MTLOutput(outputs, gates)
