"""Train one model over several seeds: :func:`train_model` checks the model against the zoo's
contract, cuts the seeds into units of work (:mod:`replication.training.units`) with their
checkpoints, and hands them to the executor ``train.executor`` names (:mod:`replication.executors`:
this machine's processes, or Ray tasks on a cluster, where a task whose worker dies is run again and
resumes from the same checkpoints). The records are the same wherever the units run. With ``reuse``,
a seed already trained under the same configuration in another folder is copied, not trained again
(:func:`reuse_runs`)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

from replication.config import ConfigError
from replication.contract import CHECK_ROWS, check_contract
from replication.data.processed import Processed, Replicates
from replication.executors import make_executor
from replication.io import atomic_open, write_json
from replication.progress import log, progress
from replication.records import read_record
from replication.runfolder import run_folder_lock
from replication.training.config import TrainConfig
from replication.training.loop import RECORD_FORMAT, seed_checkpoint
from replication.training.units import WorkUnit, predictions_path, record_path

# Training keys that decide only where and in how many processes a seed runs, never its numbers (a seed
# gives the same record whichever process trains it: tests/test_train.py).
PLACEMENT_KEYS = ("seed_workers", "num_threads", "executor")
# Record fields that say how a configuration was chosen, not what it trains: a reused run takes the new one's.
CHOICE_FIELDS = ("tuning",)


def train_model(model_name: str, hparams: Mapping[str, Any], data: Processed | Replicates, cfg: TrainConfig,
                seeds: list[int], out_dir: Path, checkpoints: Path | None = None,
                checkpoint_seconds: float = 30.0, record_fields: Mapping[str, Any] | None = None,
                reuse: Path | None = None) -> list[dict[str, Any]]:
    """Train every seed and write, per seed, its predictions and then its record (both atomic).

    The model is first checked against the zoo's contract on a few training rows. With
    ``checkpoints`` (a folder), every seed can be resumed after an interruption (see
    :class:`SeedCheckpoint`); the seeds' checkpoint folders are removed once every seed is written.
    The units of work run where ``cfg.executor`` says (:mod:`replication.executors`: this machine, or
    a Ray cluster); the files are the same either way. Seeds whose loss diverged get a ``failed``
    record and are listed in a warning. ``data`` may be a replicate set: each seed reads its own.
    ``record_fields`` are added to every record as it is written (the model's source, the search that
    chose a tuned configuration). With ``reuse`` (a run folder), the seeds it holds under the same
    configuration are copied from it (:func:`reuse_runs`) and only the others are trained."""
    # Absolute paths: a unit of work may run in another working directory (a Ray worker, another node).
    out_dir = Path(out_dir).absolute()
    checkpoints = None if checkpoints is None else Path(checkpoints).absolute()
    executor = make_executor(cfg)  # refuses an executor that cannot run here (Ray not installed)
    data.require_seeds(seeds)
    first = data.for_seed(seeds[0])
    unknown_tasks = sorted((set(cfg.loss_weights) | set(cfg.loss_weight_decay)) - {t.name for t in first.tasks})
    if unknown_tasks:
        raise ConfigError(f"loss weights name task(s) {unknown_tasks} not in the data; its tasks are "
                          f"{[t.name for t in first.tasks]}")
    if checkpoint_seconds < 0:
        raise ConfigError(f"--checkpoint-seconds {checkpoint_seconds}: use 0 (after every epoch) or more seconds")
    if cfg.ensemble > 1 and isinstance(data, Replicates):
        raise ConfigError(f"train.ensemble = {cfg.ensemble} trains seeds together on one data set, but this data gives "
                          f"each seed its own replicate ({data.directory}); use train.ensemble=1 for it")
    head = first.splits["train"].head(CHECK_ROWS)
    check_contract(model_name, first.schema, hparams, head.x_cat, head.x_num)
    with executor:
        device = executor.device(cfg.device)  # this machine's, or the Ray cluster's (auto: a GPU if it has one)
        with run_folder_lock(out_dir):
            reused = [] if reuse is None else reuse_runs(Path(reuse), model_name, hparams, data, cfg, seeds, out_dir,
                                                         record_fields or {})
            copied = {record["seed"] for record in reused}
            seeds = [seed for seed in seeds if seed not in copied]
            if not seeds:
                return reused
            marks = {seed: None if checkpoints is None else
                     seed_checkpoint(checkpoints, model_name, hparams, data, cfg, seed, device, out_dir)
                     for seed in seeds}
            chunks = [seeds[i:i + cfg.ensemble] for i in range(0, len(seeds), cfg.ensemble)]
            ensemble_marks = {tuple(chunk): None if checkpoints is None or cfg.ensemble == 1 else
                              seed_checkpoint(checkpoints, model_name, hparams, data, cfg, chunk, device, out_dir)
                              for chunk in chunks}
            units = [WorkUnit(model_name, hparams, cfg, tuple(chunk), device, out_dir, {s: marks[s] for s in chunk},
                              ensemble_marks[tuple(chunk)], checkpoint_seconds, dict(record_fields or {}))
                     for chunk in chunks]
            bar = progress(total=len(seeds), desc=model_name, unit="seed")
            by_unit = executor.run(units, data, done=lambda unit: bar.update(len(unit.seeds)))
            records = reused + [record for unit_records in by_unit for record in unit_records]
            for mark in [*marks.values(), *ensemble_marks.values()]:
                if mark is not None:
                    shutil.rmtree(mark.folder, ignore_errors=True)
            if checkpoints is not None and checkpoints.is_dir() and not any(checkpoints.iterdir()):
                checkpoints.rmdir()
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        log(f"WARNING {model_name}: {len(failed)} of {len(records)} seeds failed and are recorded as failed: " +
            "; ".join(f"seed {r['seed']} in epoch {r['failure']['epoch']} ({r['failure']['reason']})" for r in failed))
    return records


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def reuse_runs(source: Path, model_name: str, hparams: Mapping[str, Any], data: Processed | Replicates,
               cfg: TrainConfig, seeds: list[int], out_dir: Path, record_fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Copy into ``out_dir`` each seed of ``seeds`` that ``source`` holds trained under this very
    configuration: the same model, model parameters, training parameters (where it ran aside:
    :data:`PLACEMENT_KEYS`), data, seed, record format and ``record_fields`` (the fields that say how the
    configuration was chosen aside: :data:`CHOICE_FIELDS`, which the copy takes from ``record_fields``).
    Such a seed would train to the same numbers, so its predictions and record are copied, the record
    naming ``source`` in ``reused_from``. ``source`` must hold runs of this code: a DVC stage that
    depends on it and on the training code sees to that. Returns the copied records."""
    from models.registry import model_hparams

    wanted = {"model": str(model_name), "format": RECORD_FORMAT, "status": "ok",
              "hparams": {**model_hparams(model_name), **hparams},
              "train": {k: v for k, v in asdict(cfg).items() if k not in PLACEMENT_KEYS},
              **{k: v for k, v in record_fields.items() if k not in CHOICE_FIELDS}}
    copied = []
    for seed in seeds:
        record_file, predictions_file = record_path(source, seed), predictions_path(source, seed)
        if not (record_file.is_file() and predictions_file.is_file()):
            continue
        record = read_record(record_file)
        found = {**{k: record.get(k) for k in wanted}, "train": {k: v for k, v in record["train"].items()
                                                                 if k not in PLACEMENT_KEYS}}
        if record["seed"] != seed or record["data_hash"] != data.for_seed(seed).protocol_hash or \
                _canonical(found) != _canonical(wanted):
            continue
        with atomic_open(predictions_path(out_dir, seed), "wb") as handle:
            handle.write(predictions_file.read_bytes())
        record = {**{k: v for k, v in record.items() if k != "source"},  # read_record's, not the file's
                  **record_fields, "reused_from": str(source)}
        write_json(record_path(out_dir, seed), record)
        log(f"{model_name} seed {seed}: trained under the same configuration in {source}; copied, not trained again")
        copied.append(record)
    return copied
