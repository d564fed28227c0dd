"""The one reader of run records (``RUNS/<model>/seed_K.json``): every command that tables them
(aggregate, stats, leaderboard, sweep, experts, compare, figures) reads them through this module.

Each record is checked where it is read, so that a damaged one can never give a silently wrong table:

- a file that is not JSON, lacks a key a table reads, or holds a value of the wrong type is refused
  (:class:`RecordError`, naming the file, what is wrong and how to fix it);
- a record of status ``ok`` whose test metric is not a finite number (NaN or infinite: Python's json
  reads both) is counted as a failed seed, with the reason as its failure: every table leaves it out,
  shows its seed as missing and names it with :func:`failure_note`, the same note everywhere.

Statistics and reporting read records through here and never import torch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from replication.config import ConfigError
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.progress import log

Runs = Path | Sequence[Path]

# The keys every record must have, with their types, and those of a finished (``ok``) or failed run.
COMMON_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": int, "status": str, "model": str, "seed": int, "dataset": str, "task_group": str,
    "split_seed": int, "data_hash": str, "tasks": list, "train": dict,
}
OK_KEYS: dict[str, type | tuple[type, ...]] = {"test": dict, "best_epoch": dict, "n_parameters": int}
FAILED_KEYS: dict[str, type | tuple[type, ...]] = {"failure": dict}
RETRAIN = "train that seed again (delete the file and rerun `python -m replication train` with the same --out)"


class RecordError(ConfigError):
    """A run record that cannot be read or lacks what the tables need."""


def _type_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))


def _check_keys(record: dict, keys: dict[str, type | tuple[type, ...]], path: Path) -> None:
    """Refuse a record that lacks one of ``keys`` or holds a value of another type (a bool is no int)."""
    for key, kind in keys.items():
        if key not in record:
            raise RecordError(f"run record {path} has no {key!r} key; it was not written by this version's "
                              f"`train` or was edited. {RETRAIN.capitalize()}")
        value = record[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise RecordError(f"run record {path}: {key!r} is {value!r} ({type(value).__name__}), expected "
                              f"{_type_name(kind)}. {RETRAIN.capitalize()}")


def _test_metrics(record: dict, path: Path) -> list[tuple[str, str, Any]]:
    """(task, metric, value) of every task's test metric; refuses a task without its metric or
    its selected epoch, and a value that is not a number."""
    out = []
    for task in record["tasks"]:
        if not isinstance(task, dict) or task.get("type") not in METRIC_FOR_TASK_TYPE or not isinstance(task.get("name"), str):
            raise RecordError(f"run record {path}: task entry {task!r} needs a name and a type of "
                              f"{sorted(METRIC_FOR_TASK_TYPE)}. {RETRAIN.capitalize()}")
        metric = METRIC_FOR_TASK_TYPE[task["type"]].name
        metrics = record["test"].get(task["name"])
        value = metrics.get(metric) if isinstance(metrics, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"run record {path}: test.{task['name']}.{metric} is {value!r}, expected a number. "
                              f"{RETRAIN.capitalize()}")
        if not isinstance(record["best_epoch"].get(task["name"]), int):
            raise RecordError(f"run record {path}: best_epoch.{task['name']} is missing or not an integer. "
                              f"{RETRAIN.capitalize()}")
        out.append((task["name"], metric, value))
    return out


def check_record(record: Any, path: Path) -> dict:
    """``record`` checked (see the module docstring), with ``"source"`` set to ``path``; an ``ok``
    record with a non-finite test metric comes back as a failed one."""
    if not isinstance(record, dict):
        raise RecordError(f"run record {path} holds a {type(record).__name__}, not a JSON object. {RETRAIN.capitalize()}")
    _check_keys(record, COMMON_KEYS, path)
    if record["status"] not in ("ok", "failed"):
        raise RecordError(f"run record {path}: status is {record['status']!r}, expected 'ok' or 'failed'. "
                          f"{RETRAIN.capitalize()}")
    record = {**record, "source": str(path)}
    if record["status"] == "failed":
        _check_keys(record, FAILED_KEYS, path)
        return record
    _check_keys(record, OK_KEYS, path)
    bad = [(task, metric, value) for task, metric, value in _test_metrics(record, path) if not math.isfinite(value)]
    if bad:
        reason = "; ".join(f"test {metric} of {task} is {value}" for task, metric, value in bad)
        record |= {"status": "failed", "failure": {"epoch": None, "reason": f"{reason} (not a finite number)"}}
    return record


def read_record(path: Path) -> dict:
    """One run record file, read and checked (:func:`check_record`)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"run record {path} is not valid JSON ({error}); it was cut short or edited. "
                          f"{RETRAIN.capitalize()}") from None
    return check_record(record, path)


def _folders(runs: Runs) -> list[Path]:
    return [Path(runs)] if isinstance(runs, (str, Path)) else [Path(d) for d in runs]


def load_all_records(runs: Runs) -> list[dict]:
    """Every run record (``<model>/seed_K.json``) under one folder or several, failed runs included,
    each checked (:func:`read_record`) and with the path of its file under ``"source"`` (its
    predictions lie beside it). A model found in two folders is refused: which runs to use would be
    a guess."""
    records: list[dict] = []
    seen: dict[str, Path] = {}
    for directory in _folders(runs):
        if not directory.is_dir():
            raise ConfigError(f"run folder {directory} does not exist; run `python -m replication train` (or dvc repro) first")
        files = sorted(directory.glob("*/seed_*.json"))
        if not files:
            raise ConfigError(f"no run records (*/seed_*.json) under {directory}; run `python -m replication train` first")
        for model in sorted({f.parent.name for f in files}):
            if model in seen:
                raise ConfigError(f"model {model!r} has runs under both {seen[model]} and {directory}; pass each model's runs once")
            seen[model] = directory
        records += [read_record(f) for f in files]
    return records


def failure_note(record: dict) -> str:
    """How every table and message names a failed seed: model, seed, epoch (when known) and reason."""
    epoch = record["failure"].get("epoch")
    where = f", epoch {epoch}" if epoch is not None else ""
    return f"{record['model']} seed {record['seed']}{where}: {record['failure'].get('reason', 'no reason recorded')}"


def failed_runs(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if r["status"] != "ok"]


def finished_runs(records: Sequence[dict], runs: Runs) -> list[dict]:
    """The records of status ``ok``, naming each failed one on stderr; refuses a set with none."""
    for r in failed_runs(records):
        log(f"left out: {failure_note(r)} ({r['source']})")
    finished = [r for r in records if r["status"] == "ok"]
    if not finished:
        raise ConfigError(f"every run under {', '.join(map(str, _folders(runs)))} failed; see their records' "
                          f"failure field")
    return finished


def load_records(runs: Runs) -> list[dict]:
    """The records of the runs that finished (status ``ok``) under ``runs``, the loader every table
    uses; a failed run (its loss diverged, or its test metric is not finite) is never averaged in: it
    is named on stderr and tables show its seed as missing."""
    return finished_runs(load_all_records(runs), runs)


# The wall-clock fields of a record: a run's and each epoch's seconds. Everything else is decided by the
# code, the data, the configuration and the seed (the same on one machine, interrupted or not).
EPOCH_TIMING_KEYS = ("train_seconds", "validation_seconds")


def without_timings(record: dict) -> dict:
    """``record`` less its wall-clock fields (:data:`EPOCH_TIMING_KEYS` and ``seconds``): what two runs
    of one seed on one machine must share exactly, whatever interrupted them."""
    out = {k: v for k, v in record.items() if k != "seconds"}
    if "history" in out:
        out["history"] = [{k: v for k, v in h.items() if k not in EPOCH_TIMING_KEYS} for h in out["history"]]
    return out


# What two runs of one seed may differ in besides their timings: where and when they ran.
PLACE_KEYS = ("environment", "source")


def run_differences(a: Path, b: Path) -> list[str]:
    """Every difference between two run folders (``<model>/seed_K.json`` and their test predictions)
    that is not a timing or a place (:func:`without_timings`, :data:`PLACE_KEYS`): a seed in one folder
    only, a record field that differs (named by its path), or predictions that differ. Empty: the two
    folders hold the same runs, number for number."""
    def runs(folder: Path) -> dict[str, Path]:
        files = {f"{p.parent.name}/{p.name}": p for p in Path(folder).glob("*/seed_*.json")}
        if not files:
            raise ConfigError(f"no run records (*/seed_*.json) under {folder}")
        return files

    mine, theirs = runs(a), runs(b)
    out = [f"{name}: only in {a}" for name in sorted(set(mine) - set(theirs))]
    out += [f"{name}: only in {b}" for name in sorted(set(theirs) - set(mine))]
    for name in sorted(set(mine) & set(theirs)):
        left, right = (without_timings({k: v for k, v in read_record(p).items() if k not in PLACE_KEYS})
                       for p in (mine[name], theirs[name]))
        out += [f"{name}: {path}" for path in _differing(left, right)]
        predictions = [p.with_name(p.name.replace(".json", ".test_predictions.npz")) for p in (mine[name], theirs[name])]
        if any(p.exists() for p in predictions) and not _same_arrays(*predictions):
            out.append(f"{name}: test predictions")
    return out


def _differing(left: Any, right: Any, path: str = "") -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        return [d for key in sorted(set(left) | set(right), key=str)
                for d in _differing(left.get(key, _ABSENT), right.get(key, _ABSENT), f"{path}.{key}" if path else str(key))]
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [d for i, (x, y) in enumerate(zip(left, right)) for d in _differing(x, y, f"{path}[{i}]")]
    return [] if left == right or (_is_nan(left) and _is_nan(right)) else [path]


_ABSENT = object()


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _same_arrays(a: Path, b: Path) -> bool:
    import numpy as np

    if not (a.exists() and b.exists()):
        return False
    with np.load(a) as x, np.load(b) as y:
        return set(x.files) == set(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)
