"""The one training loop: every run, lone or stacked seeds, a tuning trial or a benchmark, goes
through :func:`train_seeds` with a pluggable step (:mod:`replication.training.steps`).

The whole data set lives as tensors on the device; batches are slices of a shuffled index, so there
is no per-row DataLoader and no host synchronisation inside an epoch. The joint loss is PLE's
Eqs. 8-10 (:mod:`replication.training.objective`).

Model selection: after every epoch the validation metrics are computed; the selected epoch is the one
with the best validation score (``train.selection``: ``mean`` over tasks of AUC, or of -MSE for
regression tasks; ``main_task``, the main task's alone; ``per_task``, each task read at its own best
epoch), and training stops after ``patience`` epochs without improvement (of every task, for
``per_task``). Models that share no parameter between tasks always select each task on its own
validation metric. Test metrics are computed once, for the selected weights only. A multi-task run
selected as a whole also records, as ``per_task_selection``, each task's test metric at its own best
validation epoch among the epochs it trained: the selection chance Single-Task gets, read from the
same run, so that a report can say whether a verdict depends on the rule.

Interruptions lose nothing: the loop's full state is saved to a checkpoint folder
(:class:`replication.runfolder.SeedCheckpoint`) every ``checkpoint_seconds`` and resumed from; the
records equal those of an uninterrupted run. A loss that becomes NaN or infinite ends that seed with
a record of status ``failed`` (the reason and the epoch), which tables show as a missing seed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

import models
from models import get_model_class
from models.registry import model_hparams
from replication.data.processed import Processed, Split
from replication.progress import log, progress
from replication.provenance import environment
from replication.runfolder import SeedCheckpoint
from replication.seeding import rng_state, set_rng_state
from replication.training.config import TrainConfig
from replication.training.evaluation import (
    Selection, evaluate, gate_usage, predict, selection_groups, selection_score, shadow_groups, stopped,
)
from replication.training.steps import SeedStep, StackedStep

RECORD_FORMAT = 1


@functools.lru_cache(maxsize=None)
def training_code_digest(model_name: str, weighting: str) -> str:
    """SHA-256 over the sources that decide a run's numbers: this package (the trainer), the metrics,
    the seeding, the processed-data loader, every file of the model zoo, the file of the model's
    class, and the loss weighting's interface and method. Read once per process, model and method
    (every seed's checkpoint key uses it)."""
    from replication import metrics, seeding, weighting as weightings
    from replication.data import processed

    files = {*Path(__file__).parent.glob("*.py"), Path(metrics.__file__), Path(seeding.__file__),
             Path(processed.__file__), Path(weightings.__file__), Path(weightings.base.__file__),
             weightings.weighting_source(weighting),
             *Path(models.__file__).parent.glob("*.py"), Path(inspect.getsourcefile(get_model_class(model_name)))}
    digest = hashlib.sha256()
    for path in sorted(p.resolve() for p in files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def seed_checkpoint(root: Path, model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig,
                    seed: int | list[int], device: torch.device, out_dir: Path) -> SeedCheckpoint:
    """The checkpoint folder of one seed of one run, or of seeds trained together (a list), under
    ``root`` (see :class:`SeedCheckpoint`)."""
    key = {
        "model": str(model_name), "hparams": {**model_hparams(model_name), **hparams},
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("seed_workers", "num_threads", "executor")},
        "data_hash": data.protocol_hash, "seed": seed, "device": str(device), "torch": torch.__version__,
        "code": training_code_digest(model_name, cfg.weighting), "out": str(Path(out_dir).resolve()), "format": RECORD_FORMAT,
    }
    text = json.dumps(key, sort_keys=True, default=str)
    name = f"seed{seed}" if isinstance(seed, int) else f"seeds{'_'.join(map(str, seed))}"
    return SeedCheckpoint(Path(root) / f"{model_name}-{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}")


def train_seeds(model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, seeds: list[int],
                device: torch.device, show_epochs: bool = True, checkpoint: SeedCheckpoint | None = None,
                checkpoint_seconds: float = 30.0, on_epoch: Callable[[int, Mapping[str, Any]], bool] | None = None,
                step: type | None = None) -> list[tuple[dict[str, Any], np.ndarray | None]]:
    """Train ``seeds`` through ``step`` (default: :class:`~replication.training.steps.StackedStep`
    when ``cfg.ensemble`` > 1, else :class:`~replication.training.steps.SeedStep`, which takes one
    seed); returns each seed's (record, test predictions), the predictions None for a failed seed or
    data without a test split. With ``checkpoint``, the state is saved there at most every
    ``checkpoint_seconds`` (0: after every epoch) and a saved state is resumed from.
    ``on_epoch(epoch, validation metrics)``, called for each seed after each epoch's evaluation,
    stops that seed when it returns True (a tuning trial's pruning rule)."""
    started = time.perf_counter()
    tasks = data.tasks
    step = (step or (StackedStep if cfg.ensemble > 1 else SeedStep))(model_name, hparams, data, cfg, seeds, device)
    shuffles = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    train, val = data.splits["train"].to(device), data.splits["validation"].to(device)
    groups = [selection_groups(m, tasks, data.schema["main_task"], cfg.selection) for m in step.models]
    shadows = [shadow_groups(mine, tasks) for mine in groups]
    histories: list[list[dict[str, Any]]] = [[] for _ in seeds]
    failures: list[dict[str, Any] | None] = [None for _ in seeds]
    alive = list(range(len(seeds)))  # positions in ``seeds`` of the seeds still training, in step order
    label = f"{model_name} seed {seeds[0]}" if len(seeds) == 1 else f"{model_name} seeds {seeds}"
    first_epoch, seconds_before = 1, 0.0
    saved = checkpoint.load_epoch() if checkpoint is not None else None
    if saved is not None:
        alive, histories, failures = saved["alive"], saved["histories"], saved["failures"]
        step.load(saved["step"])
        for shuffle, state in zip(shuffles, saved["shuffles"]):
            shuffle.set_state(state)
        set_rng_state(saved["rng"])
        for mine, shadow, theirs in zip(groups, shadows, saved["groups"], strict=True):
            for group, (score, epoch, state) in zip(mine + shadow, theirs, strict=True):
                group.score, group.epoch, group.state = score, epoch, state
        first_epoch, seconds_before = saved["epoch"] + 1, saved["seconds"]
        log(f"{label}: resuming after epoch {saved['epoch']} from {checkpoint.folder}")
    last_saved = time.perf_counter()
    epochs = progress(range(first_epoch, cfg.max_epochs + 1), desc=label, unit="epoch", leave=False,
                      disable=not show_epochs)
    for epoch in epochs:
        if not alive:
            break
        step.start_epoch(epoch)
        orders = [torch.randperm(train.rows, generator=shuffles[i], device=device) for i in alive]
        tick = time.perf_counter()
        summaries = step.run_epoch(train, orders)
        tock = time.perf_counter()
        predictions = step.predictions(val)
        metrics = [evaluate(predictions[row], data.splits["validation"].y_numpy, tasks)
                   if np.isfinite(summaries[row]["train_loss"]) else None for row in range(len(alive))]
        # Seconds per seed: seeds stacked in one step share the epoch's time.
        seconds = {"train_seconds": (tock - tick) / len(alive),
                   "validation_seconds": (time.perf_counter() - tock) / len(alive)}
        keep = []
        for row, i in enumerate(alive):
            if not np.isfinite(summaries[row]["train_loss"]):
                failures[i] = diverged(model_name, seeds[i], epoch, summaries[row]["train_loss"])
                continue
            for group in groups[i] + shadows[i]:
                group.update(epoch, metrics[row], lambda: step.weights_of(row))
            histories[i].append({"epoch": epoch, **summaries[row], "validation": metrics[row], **seconds})
            if not (stopped(epoch, groups[i], cfg) or on_epoch is not None and on_epoch(epoch, metrics[row])):
                keep.append(row)
        scores = [selection_score(histories[i][-1]["validation"], tasks) for i in alive if histories[i]]
        if scores:
            epochs.set_postfix(val=f"{np.mean(scores):.4f}")
        if len(keep) < len(alive):
            alive = [alive[row] for row in keep]
            if alive:
                step.keep(keep)
        if alive and checkpoint is not None and time.perf_counter() - last_saved >= checkpoint_seconds:
            checkpoint.save_epoch({
                "epoch": epoch, "alive": alive, "histories": histories, "failures": failures, "step": step.state(),
                "shuffles": [s.get_state() for s in shuffles], "rng": rng_state(),
                "groups": [[(g.score, g.epoch, g.state) for g in mine + shadow] for mine, shadow in zip(groups, shadows)],
                "seconds": seconds_before + time.perf_counter() - started,
            })
            last_saved = time.perf_counter()
    seconds = (seconds_before + time.perf_counter() - started) / len(seeds)  # stacked seeds share the time
    return [finish_seed(model_name, hparams, step.models[i], groups[i], shadows[i], histories[i], failures[i], data,
                        cfg, seeds[i], device, seconds) for i in range(len(seeds))]


def train_seed(model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, seed: int,
               device: torch.device, show_epochs: bool = True, checkpoint: SeedCheckpoint | None = None,
               checkpoint_seconds: float = 30.0, on_epoch: Callable[[int, Mapping[str, Any]], bool] | None = None,
               ) -> tuple[dict[str, Any], np.ndarray | None]:
    """One seed alone (:func:`train_seeds` with a :class:`~replication.training.steps.SeedStep`)."""
    return train_seeds(model_name, hparams, data, cfg, [seed], device, show_epochs, checkpoint, checkpoint_seconds,
                       on_epoch, step=SeedStep)[0]



def diverged(model_name: str, seed: int, epoch: int, train_loss: float) -> dict[str, Any]:
    """The failure entry of a seed whose training loss became NaN or infinite, logged."""
    failure = {"epoch": epoch, "reason": f"training loss became {train_loss}"}
    log(f"{model_name} seed {seed}: FAILED in epoch {epoch}: {failure['reason']}; recorded as failed")
    return failure


def finish_seed(model_name: str, hparams: Mapping[str, Any], model: torch.nn.Module, groups: list[Selection],
                shadow: list[Selection], history: list[dict[str, Any]], failure: dict[str, Any] | None,
                data: Processed, cfg: TrainConfig, seed: int, device: torch.device,
                seconds: float) -> tuple[dict[str, Any], np.ndarray | None]:
    """A trained seed's record and test predictions: each selection group's selected weights are
    loaded into ``model`` and predict its tasks on the test split (a failed seed: its record alone);
    then the ``shadow`` groups' (:func:`shadow_groups`), for the record's ``per_task_selection``."""
    tasks = data.tasks
    record = {
        "format": RECORD_FORMAT,
        "status": "ok" if failure is None else "failed",
        "model": model_name,
        "hparams": {**model_hparams(model_name), **hparams},
        "train": asdict(cfg),
        "seed": seed,
        "dataset": data.schema["dataset"],
        "task_group": data.schema["task_group"],
        "split_seed": data.schema["split_seed"],
        "data_hash": data.protocol_hash,
        "tasks": [{"name": t.name, "type": t.type} for t in tasks],
        "main_task": data.schema["main_task"],
    }
    if data.set_hash is not None:
        record["replicate_data_hash"] = data.schema["data_hash"]
    if failure is not None:
        record |= {"failure": failure, "epochs_run": len(history), "seconds": seconds,
                   "environment": environment(str(device)), "history": history}
        return record, None

    if "test" not in data.splits:  # a tuning trial: validation only (replication.tuning)
        record |= {"validation": {t.name: history[g.epoch - 1]["validation"][t.name] for g in groups for t in g.tasks},
                   "best_epoch": {t.name: g.epoch for g in groups for t in g.tasks},
                   "epochs_run": len(history), "seconds": seconds, "history": history}
        return record, None
    test = data.splits["test"].to(device)
    test_prediction, best_epoch, val_best = _selected(model, groups, history, test, tasks, cfg)
    # Gated models are selected as a whole (one group), so the loaded state is the selected one.
    gates = gate_usage(model, test, cfg.eval_batch_size) if len(groups) == 1 else {}
    record |= {
        "validation": val_best,
        "test": evaluate(test_prediction, data.splits["test"].y_numpy, tasks),
        "best_epoch": best_epoch,
    }
    if shadow:
        prediction, epochs, validation = _selected(model, shadow, history, test, tasks, cfg)
        record["per_task_selection"] = {"validation": validation, "best_epoch": epochs,
                                        "test": evaluate(prediction, data.splits["test"].y_numpy, tasks)}
    record |= {
        "epochs_run": len(history),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "gates_test": gates,
        "seconds": seconds,
        "environment": environment(str(device)),
        "history": history,
    }
    return record, test_prediction


def _selected(model: torch.nn.Module, groups: list[Selection], history: list[dict[str, Any]], test: Split, tasks,
              cfg: TrainConfig) -> tuple[np.ndarray, dict[str, int], dict[str, Any]]:
    """Test predictions of every task under its group's selected weights (loaded into ``model`` in
    turn), with each task's selected epoch and validation metrics."""
    test_prediction = np.empty((test.rows, len(tasks)))
    best_epoch, val_best = {}, {}
    for group in groups:
        model.load_state_dict(group.state)
        prediction = predict(model, test, tasks, cfg.eval_batch_size)
        for t in group.tasks:
            k = tasks.index(t)
            test_prediction[:, k] = prediction[:, k]
            best_epoch[t.name] = group.epoch
            val_best[t.name] = history[group.epoch - 1]["validation"][t.name]
    return test_prediction, best_epoch, val_best
