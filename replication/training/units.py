"""Units of work: what an executor (:mod:`replication.executors`) runs, in this process, in a worker
process or in a Ray task. A :class:`WorkUnit` trains one model's chunk of seeds (one seed, or
``train.ensemble`` seeds stacked), or restores those its checkpoints say finished, and writes per
seed its predictions and then its record, each atomically; it does the same wherever it runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from models.registry import ModelError
from replication.contract import error_location
from replication.data.processed import Processed
from replication.io import atomic_open, save_npz, write_json
from replication.progress import log
from replication.runfolder import SeedCheckpoint
from replication.training.config import TrainConfig
from replication.training.loop import train_seed, train_seeds


def _set_up_process(threads: int) -> None:
    torch.set_num_threads(threads)
    # Denormal floats appear as training converges and make CPU kernels several times slower
    # (measured: 20 s -> 6 s per PLE epoch here); flushing them to zero costs no accuracy.
    torch.set_flush_denormal(True)


_worker_data: Processed | None = None


def _set_up_worker(threads: int, data: Processed) -> None:
    global _worker_data
    _set_up_process(threads)
    _worker_data = data


def unit_data(data: Processed | None) -> Processed:
    """The data a unit of work trains on: ``data``, or (None, in a local worker process) the copy the
    worker's initialiser received."""
    return data if data is not None else _worker_data


def _train_and_save(model_name: str, hparams: Mapping[str, Any], data: Processed | None, cfg: TrainConfig,
                    seeds: list[int], device: torch.device, out_dir: Path, show_epochs: bool,
                    marks: Mapping[int, SeedCheckpoint | None], ensemble_mark: SeedCheckpoint | None,
                    checkpoint_seconds: float, record_fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Train one unit of work: one seed, or (``cfg.ensemble`` > 1) a few seeds together, each
    restored instead when its checkpoint says it finished; then write, per seed, its predictions and
    then its record (both atomic). In a worker process ``data`` is None and the copy its initialiser
    received is used. An exception raised while training becomes a ModelError naming where it arose."""
    data = unit_data(data)
    records = {}
    for seed in seeds:
        mark = marks[seed]
        if mark is not None and mark.finished():
            records[seed] = json.loads(mark.record_file.read_text(encoding="utf-8"))
            if mark.predictions_file.is_file():
                with atomic_open(predictions_path(out_dir, seed), "wb") as handle:
                    handle.write(mark.predictions_file.read_bytes())
            write_json(record_path(out_dir, seed), records[seed])
            log(f"{model_name} seed {seed}: finished before the interruption; restored from {mark.folder}")
    todo = [seed for seed in seeds if seed not in records]
    if todo:
        try:
            if cfg.ensemble > 1:
                results = train_seeds(model_name, hparams, data, cfg, todo, device, show_epochs, ensemble_mark,
                                      checkpoint_seconds)
            else:
                results = [train_seed(model_name, hparams, data.for_seed(seed), cfg, seed, device, show_epochs,
                                      marks[seed], checkpoint_seconds) for seed in todo]
        except Exception as error:
            where = error_location(error, model_name)
            raise ModelError(f"{model_name} seed(s) {', '.join(map(str, todo))}: training failed at {where}: "
                             f"{type(error).__name__}: {error}") from error
        for seed, (record, test_prediction) in zip(todo, results):
            records[seed] = _save_seed(record | dict(record_fields), test_prediction, data.for_seed(seed), out_dir,
                                       marks[seed])
    if ensemble_mark is not None:
        ensemble_mark.epoch_file.unlink(missing_ok=True)
    return [records[seed] for seed in seeds]


def _save_seed(record: dict[str, Any], test_prediction: np.ndarray | None, data: Processed, out_dir: Path,
               mark: SeedCheckpoint | None) -> dict[str, Any]:
    """Write a trained seed's predictions (none for a failed seed) and then its record, and keep both
    in its checkpoint folder: a failure is as final as a success, and a rerun repeats neither."""
    seed = record["seed"]
    predictions = predictions_path(out_dir, seed)
    if test_prediction is None:
        predictions.unlink(missing_ok=True)
        write_json(record_path(out_dir, seed), record)
        if mark is not None:
            mark.save_finished(record, None)
        return record
    save_npz(predictions, prediction=test_prediction, y=data.splits["test"].y_numpy,
             tasks=np.array([t.name for t in data.tasks]))
    write_json(record_path(out_dir, seed), record)
    if mark is not None:
        mark.save_finished(record, predictions)
    summary = ", ".join(f"{t}: {next(iter(m.values())):.4f}" for t, m in record["test"].items())
    log(f"{record['model']} seed {seed}: test {summary}; best epoch {record['best_epoch']}, "
        f"{record['epochs_run']} epochs, {record['seconds']:.0f} s")
    return record


def record_path(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}.json"


def predictions_path(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}.test_predictions.npz"


class TrainingInterrupted(RuntimeError):
    """A worker process or Ray task died (killed, out of memory, its node lost) before its seeds were written."""


@dataclass(frozen=True)
class Unit:
    """What an executor (:mod:`replication.executors`) knows of a unit of work: the model, its
    configuration, the seeds and device it trains, the folder it writes to; it calls ``run(data)``."""

    model_name: str
    hparams: Mapping[str, Any]
    cfg: TrainConfig
    seeds: tuple[int, ...]
    device: torch.device
    out_dir: Path


@dataclass(frozen=True)
class WorkUnit(Unit):
    """One unit of work: one model's chunk of seeds on one data set (one seed, or ``cfg.ensemble``
    seeds trained together) with its checkpoints; everything :func:`_train_and_save` needs but the
    data, which each executor hands over its own way (:mod:`replication.executors`). Whatever runs it,
    a unit trains (or restores) its seeds and writes their files in the same way."""

    marks: Mapping[int, SeedCheckpoint | None]
    ensemble_mark: SeedCheckpoint | None
    checkpoint_seconds: float
    record_fields: Mapping[str, Any]

    def run(self, data: Processed | None, show_epochs: bool = False) -> list[dict[str, Any]]:
        """Train the unit's seeds (``data`` None: the copy a local worker process was given) and
        return their records in the order of its seeds."""
        return _train_and_save(self.model_name, self.hparams, data, self.cfg, list(self.seeds), self.device,
                               self.out_dir, show_epochs, self.marks, self.ensemble_mark, self.checkpoint_seconds,
                               self.record_fields)
