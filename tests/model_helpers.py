"""Small hand-made schemas, batches and probes shared by the model tests (no data file is read)."""

from __future__ import annotations

from typing import Any

import torch

import models

BATCH = 16
CARDS = (5, 3, 7)
N_NUM = 4


def make_schema(cards=CARDS, n_num=N_NUM, tasks=(("t1", "binary"), ("t2", "binary"))) -> dict[str, Any]:
    return {
        "features": {
            "categorical": [{"name": f"c{i}", "cardinality": c} for i, c in enumerate(cards)],
            "numeric": [f"n{i}" for i in range(n_num)],
        },
        "tasks": [{"name": n, "type": t} for n, t in tasks],
        "main_task": tasks[0][0],
    }


def make_batch(cards=CARDS, n_num=N_NUM, batch=BATCH, seed=123) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if cards:
        x_cat = torch.stack([torch.randint(0, c, (batch,), generator=gen) for c in cards], dim=1)
    else:
        x_cat = torch.zeros((batch, 0), dtype=torch.int64)
    x_num = torch.randn(batch, n_num, generator=gen)
    return x_cat.to(torch.int64), x_num.to(torch.float32)


def build(name: str, schema: dict[str, Any] | None = None, seed: int = 0, **hparams: Any):
    torch.manual_seed(seed)
    return models.create_model(name, schema if schema is not None else make_schema(), **hparams)


def perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn_like(param))


def changed_tasks(model, module, batch) -> set[str]:
    """The tasks whose outputs change when ``module``'s parameters are perturbed."""
    before = model(*batch).outputs
    perturb(module)
    after = model(*batch).outputs
    return {t for t in before if not torch.allclose(before[t], after[t])}
