"""The protocol a run was trained under, and its hash: runs of one protocol hash are comparable
(paired by seed, in one table); runs of different hashes never share a table.

The protocol is what decides the numbers: the record format, the data (data set, task group, split
seed, content hash), the tasks with their metrics, and the training configuration. Left out are the
keys that only decide how a run executes (:data:`EXECUTION_KEYS`: device, worker processes, threads,
evaluation batch size, seeds trained together, precision, compilation, executor, fused Adam) and the loss weighting
(:data:`LOSS_WEIGHTING_KEYS`), which the leaderboard shows in a column of its own so that weightings
of one protocol share a table.

A tuned run (``train --tuned``, :mod:`replication.tuning`) has the training keys its search chose
(``tuning.train_keys``: learning rate, batch size, ...) replaced by the search's own protocol (budget,
objective, pruning, seeds): tuned models of one search plan share a table however their chosen values
differ, and never share one with untuned runs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from replication.weighting import describe

EXECUTION_KEYS = ("device", "seed_workers", "num_threads", "eval_batch_size", "ensemble", "precision", "compile",
                  "executor", "fused_adam")
LOSS_WEIGHTING_KEYS = ("loss_weights", "loss_weight_decay", "weighting", "weighting_params")
HASH_LENGTH = 16  # hex characters of the SHA-256


def protocol(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a run record that define its protocol (see the module docstring)."""
    tuning = record.get("tuning")
    dropped = set(EXECUTION_KEYS) | set(LOSS_WEIGHTING_KEYS) | set(tuning["train_keys"] if tuning else ())
    return {
        "format": record["format"],
        "dataset": record["dataset"],
        "task_group": record["task_group"],
        "split_seed": record["split_seed"],
        "data_hash": record["data_hash"],
        "tasks": [{"name": t["name"], "type": t["type"], "metrics": sorted(record["test"][t["name"]])}
                  for t in record["tasks"]],
        "train": {k: v for k, v in record["train"].items() if k not in dropped},
    } | ({"tuning": tuning["search"]} if tuning else {})


def protocol_hash(record: Mapping[str, Any]) -> str:
    """First 16 hex characters of the SHA-256 of the protocol as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(protocol(record), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:HASH_LENGTH]


def tuning_label(record: Mapping[str, Any]) -> str:
    """``untuned``, or ``tuned, N trials per model``: which search plan chose a run's configuration."""
    tuning = record.get("tuning")
    return "untuned" if not tuning else f"tuned, {tuning['search']['trials']} trials per model"


def loss_weighting(record: Mapping[str, Any]) -> str:
    """The run's loss weighting in brief. Static weights (``train.weighting`` static, or absent in
    older records): ``equal`` when no weight or decay is set, else e.g. ``w0 income=2; gamma
    marital=0.9`` (PLE Eqs. 9-10; unnamed tasks keep 1). Any other method: its name and the
    parameters set away from their defaults, e.g. ``dwa temperature=1``."""
    train = record["train"]
    method = train.get("weighting", "static")
    if method != "static":
        return describe(method, train.get("weighting_params", {}))
    parts = [
        f"{label} " + ",".join(f"{task}={value:g}" for task, value in sorted(train[key].items()))
        for key, label in (("loss_weights", "w0"), ("loss_weight_decay", "gamma")) if train.get(key)
    ]
    return "; ".join(parts) or "equal"


def protocol_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``key: a-value vs b-value`` for every protocol field where two records differ."""
    flat_a, flat_b = _flatten(protocol(a)), _flatten(protocol(b))
    return [f"{key}: {flat_a.get(key, '(absent)')!r} vs {flat_b.get(key, '(absent)')!r}"
            for key in sorted(set(flat_a) | set(flat_b)) if flat_a.get(key) != flat_b.get(key)]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}
