"""Check that a model keeps the zoo's contract (``models.base``) before any training is spent on it.

The model is built for the real data's schema and run forward on a batch of the data's first
training rows. Every violation found is named in one :class:`models.registry.ModelError`: the
outputs must be a :class:`models.base.MTLOutput` with exactly one finite ``(batch,)`` tensor per task
of the schema, and every gate a finite, non-negative ``(batch, n)`` tensor whose rows sum to 1,
labelled by ``gate_experts()`` with one label per column.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import torch

from models import MTLOutput, create_model, get_model_class
from models.registry import ModelError, exception_location

CHECK_ROWS = 64  # rows of the training split the check runs on
GATE_SUM_TOLERANCE = 1e-4  # float32 softmax rows sum to 1 within a few ulps


def error_location(error: BaseException, name: str) -> str:
    """Where ``error`` was raised, preferring a line of the file that defines the model."""
    return exception_location(error, prefer=inspect.getsourcefile(get_model_class(name)))


def check_contract(name: str, schema: Mapping[str, Any], hparams: Mapping[str, Any], x_cat: torch.Tensor,
                   x_num: torch.Tensor) -> None:
    """Build model ``name`` with ``hparams`` for ``schema``, run it on ``(x_cat, x_num)`` and raise a
    ModelError listing every way its output breaks the contract (see the module docstring)."""
    try:
        model = create_model(name, schema, **hparams)
    except ModelError:
        raise
    except Exception as error:
        raise ModelError(f"model {name}: building it for the data's schema failed at {error_location(error, name)}: "
                         f"{type(error).__name__}: {error}") from error
    try:
        with torch.no_grad():
            out = model(x_cat, x_num)
    except Exception as error:
        raise ModelError(f"model {name}: forward on {len(x_cat)} rows of the data failed at "
                         f"{error_location(error, name)}: {type(error).__name__}: {error}") from error
    problems = contract_violations(model, out, [t["name"] for t in schema["tasks"]], len(x_cat))
    if problems:
        raise ModelError(f"model {name} breaks the model contract (models/base.py) on the data's first "
                         f"{len(x_cat)} training rows:\n" + "\n".join(f"  - {p}" for p in problems))


def contract_violations(model: torch.nn.Module, out: Any, tasks: list[str], batch: int) -> list[str]:
    """Every way ``out`` (the model's forward on ``batch`` rows) breaks the contract, as sentences."""
    if not isinstance(out, MTLOutput):
        return [f"forward returned {type(out).__name__}, not models.base.MTLOutput; return "
                f"MTLOutput(outputs={{task: (batch,) tensor}}, gates={{}})"]
    problems = []
    outputs = out.outputs if isinstance(out.outputs, Mapping) else {}
    if not isinstance(out.outputs, Mapping):
        problems.append(f"outputs is a {type(out.outputs).__name__}, not a dict of task name -> tensor")
    missing, extra = [t for t in tasks if t not in outputs], sorted(set(outputs) - set(tasks))
    if missing:
        problems.append(f"outputs lack task(s) {missing}; the data's tasks are {tasks}: return one output per task")
    if extra:
        problems.append(f"outputs have key(s) {extra} that are not tasks of the data ({tasks}): remove them")
    for task in (t for t in tasks if t in outputs):
        problems += _tensor_problems(f"outputs[{task!r}]", outputs[task], (batch,),
                                     "one logit (binary task) or prediction (regression) per row")
    gates = out.gates if isinstance(out.gates, Mapping) else {}
    if not isinstance(out.gates, Mapping):
        problems.append(f"gates is a {type(out.gates).__name__}, not a dict of gate name -> tensor (empty if ungated)")
    labels = model.gate_experts()
    if set(labels) != set(gates):
        problems.append(f"gate_experts() labels gates {sorted(labels)} but forward returns gates {sorted(gates)}; "
                        f"label every gate forward returns, and only those")
    for name, weights in gates.items():
        # An unlabelled gate is reported above; its width is then taken as it comes.
        width = len(labels[name]) if name in labels else _last_dim(weights)
        found = _tensor_problems(f"gates[{name!r}]", weights, (batch, width),
                                 f"one weight per row and expert ({width} labelled by gate_experts())")
        problems += found
        if found:
            continue
        if (weights < 0).any():
            problems.append(f"gates[{name!r}] has negative weights (min {weights.min().item():.4g}); use a softmax")
        sums = weights.double().sum(-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=GATE_SUM_TOLERANCE, rtol=0):
            problems.append(f"gates[{name!r}] rows sum to {sums.min().item():.6g}..{sums.max().item():.6g}, not 1; "
                            f"use a softmax over the experts")
    return problems


def _last_dim(value: Any) -> int:
    return value.shape[-1] if torch.is_tensor(value) and value.ndim else 0


def _tensor_problems(where: str, value: Any, shape: tuple[int, ...], meaning: str) -> list[str]:
    if not torch.is_tensor(value):
        return [f"{where} is a {type(value).__name__}, not a tensor"]
    if tuple(value.shape) != shape:
        return [f"{where} has shape {tuple(value.shape)}; expected {shape}: {meaning}"]
    if not value.is_floating_point():
        return [f"{where} has dtype {value.dtype}; expected a floating-point tensor"]
    n_nan, n_inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
    if n_nan or n_inf:
        return [f"{where} is not finite: {n_nan} NaN and {n_inf} inf of {value.numel()} values"]
    return []
