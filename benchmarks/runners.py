"""One runner per library: build the model, train it on the training split until this project's
model selection stops it (:class:`SelectOnValidation`), timing epochs ``warmup + 1`` to
``warmup + timed``, and read the test AUC of the epoch validation selected. Each returns a plain dict
(see :func:`result`). The peers are imported inside their runners only, so this module imports without them.

Every runner trains on the same arrays (this project's processed census data), with the same batch
size, learning rate, weight decay, sizes, threads and seed number; ``benchmarks/README.md`` lists what
each library does differently that its API does not let us change.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from importlib import metadata
from typing import Any, Callable, Mapping

import numpy as np
import torch

from benchmarks.core import (DEEPCTR_TORCH, FIXED_COST_BATCH, PROJECT, TORCH_RECHUB, check_labels, deepctr_arguments,
                             epoch_seconds, feature_specs, peak_rss_mb, rechub_arguments, time_epochs, to_columns)
from replication.data.processed import Processed, Split
from replication.metrics import auc
from replication.training import TrainConfig, train_seed
from replication.training.evaluation import Selection, evaluate, selection_score, stopped
from replication.training.steps import SeedStep, StackedStep


def set_up_process(threads: int) -> None:
    """The trainer's process set-up (torch threads, denormals flushed to zero), applied to every
    library alike."""
    from replication.training.units import _set_up_process

    _set_up_process(threads)


def version(library: str) -> str:
    return metadata.version(PROJECT if library == PROJECT else library)


def result(library: str, model: str, rows: int, seconds: list[float], n_parameters: int,
           test_auc: Mapping[str, float] | None = None, tensor_mb: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"library": library, "version": version(library), "model": model, "rows": rows, "epoch_seconds": seconds,
            "epochs_trained": None, "test_auc": dict(test_auc or {}), "n_parameters": n_parameters,
            "tensor_mb": tensor_mb, "peak_rss_mb": peak_rss_mb(), **extra}


# ---------------------------------------------------------------------------------------------------
# This project


class ProjectTrainer:
    """The trainer's own step (:mod:`replication.training.steps`: a ``SeedStep``, or a
    ``StackedStep`` for several seeds) with the loop's shuffles and loss weighting, epoch after epoch,
    without the validation, model selection and checkpoints that follow each epoch in
    :func:`replication.training.train_seeds` (no library's validation pass is timed).
    ``tests/test_bench.py`` checks that it reproduces ``train_seed``'s training losses and test
    predictions exactly."""

    def __init__(self, model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig,
                 seeds: list[int], device: torch.device = torch.device("cpu")) -> None:
        self.tasks = data.tasks
        self.cfg = cfg
        step = StackedStep if len(seeds) > 1 else SeedStep
        self.step = step(model_name, hparams, data, replace(cfg, ensemble=len(seeds)), seeds, device)
        self.model = self.step.models[0]
        self.shuffles = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        self.train = data.splits["train"].to(device)
        self.device = device
        self.epochs_run = 0

    def run_epoch(self) -> float:
        """One epoch over the training split; returns its mean training loss (over the seeds)."""
        epoch = self.epochs_run + 1
        orders = [torch.randperm(self.train.rows, generator=g, device=self.device) for g in self.shuffles]
        self.step.start_epoch(epoch)
        summaries = self.step.run_epoch(self.train, orders)
        self.epochs_run = epoch
        return float(np.mean([s["train_loss"] for s in summaries]))

    def predict(self, split: Split) -> np.ndarray:
        return self.step.predictions(split.to(self.device))[0]

    def tensor_mb(self, data: Processed) -> float:
        """MiB held in tensors: every split of the data, the parameters, their gradients and Adam's state."""
        tensors = [t for s in data.splits.values() for t in (s.x_cat, s.x_num, s.y)]
        tensors += [p for p in self.model.parameters()] + [p.grad for p in self.model.parameters() if p.grad is not None]
        tensors += [v for state in self.step.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20


class SelectOnValidation:
    """This project's model selection and early stopping, applied to any library's model: after
    every epoch, the validation AUCs of ``predict("validation")`` are scored as ``cfg.selection``
    scores them (mean over tasks, or the main task's); an epoch that scores best has its
    ``predict("test")`` kept; training stops once ``cfg.patience`` epochs pass without a better score
    (never before ``min_epochs``), or at ``cfg.max_epochs``. So every library's test AUC is read at
    the epoch validation selects, as the project's trainer reads its own."""

    def __init__(self, predict: Callable[[str], np.ndarray], data: Processed, cfg: TrainConfig, min_epochs: int) -> None:
        tasks = tuple(data.tasks)
        scored = tuple(t for t in tasks if t.name == data.schema["main_task"]) if cfg.selection == "main_task" else tasks
        self.group = Selection(tasks, scored)
        self.predict, self.cfg, self.min_epochs = predict, cfg, min_epochs
        self.y_val = data.splits["validation"].y_numpy
        self.tasks = tasks
        self.epochs_run = 0

    def after_epoch(self, epoch: int) -> bool:
        """Validate epoch ``epoch`` (1-based); True when training should stop after it."""
        self.epochs_run = epoch
        self.group.update(epoch, evaluate(self.predict("validation"), self.y_val, self.tasks), lambda: self.predict("test"))
        return epoch >= self.cfg.max_epochs or (epoch >= self.min_epochs and stopped(epoch, [self.group], self.cfg))

    def outcome(self, data: Processed) -> dict[str, Any]:
        """The selected epoch, the epochs run and the test AUCs of the selected epoch's predictions."""
        return {"selected_epoch": self.group.epoch, "epochs_trained": self.epochs_run,
                "test_auc": auc_by_task(data.tasks, data.splits["test"].y_numpy, self.group.state)}


class TimingOnly:
    """A selector for a timing-only measurement: no validation; stop after ``epochs`` epochs."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def after_epoch(self, epoch: int) -> bool:
        return epoch >= self.epochs

    def outcome(self, data: Processed) -> dict[str, Any]:
        return {"epochs_trained": self.epochs}


def make_selector(select: bool, predict: Callable[[str], np.ndarray], data: Processed, cfg: TrainConfig,
                  warmup: int, timed: int) -> SelectOnValidation | TimingOnly:
    """:class:`SelectOnValidation` (never stopping before the timed epochs are done), or with
    ``select`` False a :class:`TimingOnly` that stops right after them."""
    return SelectOnValidation(predict, data, cfg, warmup + timed) if select else TimingOnly(warmup + timed)


def run_project(model: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, warmup: int, timed: int,
                seed: int, select: bool = True) -> dict[str, Any]:
    """This project as ``python -m replication train`` runs it: :func:`replication.training.train_seed`,
    the one training loop, with its validation after every epoch and its model selection, timed by the
    loop itself (each epoch's ``train_seconds`` and ``validation_seconds`` in the record's history;
    epochs ``warmup + 1`` to ``warmup + timed``). The bench's stopping rule, the one every library
    gets (:class:`SelectOnValidation`: the trainer's patience, never before the timed epochs are
    done), replaces the loop's own through ``on_epoch``; with ``select`` False it stops right after
    the timed epochs and reads no test metric. ``tensor_mb``: the data's arrays plus, per parameter,
    its value, gradient and Adam's two moments in float32."""
    epochs, tasks = warmup + timed, tuple(data.tasks)
    scored = tuple(t for t in tasks if t.name == data.schema["main_task"]) if cfg.selection == "main_task" else tasks
    best = {"score": -np.inf, "epoch": 0}

    def bench_rule(epoch: int, metrics: Mapping[str, Any]) -> bool:
        score = selection_score(metrics, scored)
        if score > best["score"]:
            best.update(score=score, epoch=epoch)
        return epoch >= epochs and (not select or epoch - best["epoch"] >= cfg.patience)

    lifted = replace(cfg, patience=cfg.max_epochs + 1, max_epochs=cfg.max_epochs if select else epochs)
    record, _ = train_seed(model, hparams, data, lifted, seed, torch.device("cpu"), show_epochs=False,
                           on_epoch=bench_rule)
    history = record["history"][warmup:epochs]
    arrays = sum(t.numel() * t.element_size() for s in data.splits.values() for t in (s.x_cat, s.x_num, s.y))
    outcome = {"epochs_trained": record["epochs_run"]}
    if select:
        outcome |= {"selected_epoch": record["best_epoch"][data.schema["main_task"]],
                    "test_auc": {t.name: record["test"][t.name]["auc"] for t in tasks}}
    return result(PROJECT, model, data.splits["train"].rows, [h["train_seconds"] for h in history],
                  record["n_parameters"], tensor_mb=(arrays + 16 * record["n_parameters"]) / 2**20,
                  validation_seconds=[h["validation_seconds"] for h in history], **outcome)


def run_project_scaling(model: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, warmup: int,
                        timed: int, seed: int, label: str) -> dict[str, Any]:
    """Epoch times only (no test metrics): the scaling section."""
    trainer = ProjectTrainer(model, hparams, data, cfg, [seed])
    seconds = time_epochs(lambda _: trainer.run_epoch(), warmup, timed)
    out = result(PROJECT, model, data.splits["train"].rows, seconds,
                 sum(p.numel() for p in trainer.model.parameters()), tensor_mb=trainer.tensor_mb(data), data=label)
    out["epochs_trained"] = trainer.epochs_run
    return out


def run_project_together(model: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, warmup: int,
                         timed: int, seed: int, together: int) -> dict[str, Any]:
    """Epoch times of ``together`` seeds trained as one ensemble (the trainer's ``StackedStep``,
    :mod:`replication.training.steps`), or of one lone run when ``together`` is 1; a lone run also
    measures its fixed cost per epoch (:func:`fixed_cost_seconds`)."""
    if together == 1:
        trainer = ProjectTrainer(model, hparams, data, cfg, [seed])
        seconds = time_epochs(lambda _: trainer.run_epoch(), warmup, timed)
        n_parameters = sum(p.numel() for p in trainer.model.parameters())
        return result(PROJECT, model, data.splits["train"].rows, seconds, n_parameters, together=1,
                      fixed_seconds=fixed_cost_seconds(model, hparams, data, cfg, warmup, timed, seed))
    trainer = ProjectTrainer(model, hparams, data, cfg, list(range(seed, seed + together)))
    seconds = time_epochs(lambda _: trainer.run_epoch(), warmup, timed)
    n_parameters = sum(p.numel() for p in trainer.model.parameters())
    return result(PROJECT, model, data.splits["train"].rows, seconds, n_parameters, together=together)


def fixed_cost_seconds(model: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, warmup: int,
                       timed: int, seed: int) -> list[float]:
    """Epoch times of a lone run that takes as many steps as a full epoch does, each of
    :data:`FIXED_COST_BATCH` rows: the part of an epoch that does not grow with the batch (Python,
    dispatch, autograd and the optimizer's launches over every parameter). Training seeds together
    can save at most this part, S - 1 times out of S; the rest, the arithmetic on each seed's rows,
    every seed still pays (:func:`benchmarks.core.together_rows`' bound)."""
    steps = -(-data.splits["train"].rows // cfg.batch_size)
    few = Processed(data.schema, {**data.splits, "train": data.splits["train"].head(steps * FIXED_COST_BATCH)})
    trainer = ProjectTrainer(model, hparams, few, replace(cfg, batch_size=FIXED_COST_BATCH), [seed])
    return time_epochs(lambda _: trainer.run_epoch(), warmup, timed)


# ---------------------------------------------------------------------------------------------------
# The peers


def _peer_inputs(data: Processed) -> dict[str, Any]:
    """The same arrays, as ``{feature: column}`` dicts, and the labels as (rows, tasks) float32."""
    if any(t.type != "binary" for t in data.tasks):
        raise ValueError("the peer comparison covers binary tasks (census); regression tasks are not mapped")
    specs = feature_specs(data.schema)
    inputs = {}
    for name, split in data.splits.items():
        check_labels(split.y_numpy, name)
        inputs[name] = (to_columns(split.x_cat.numpy(), split.x_num.numpy(), specs), split.y_numpy.astype(np.float32))
    return {"specs": specs, **inputs}


def auc_by_task(tasks, y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """The same AUC function (this project's) for every library's test predictions."""
    return {t.name: auc(y[:, k], prediction[:, k]) for k, t in enumerate(tasks)}


def run_torch_rechub(model: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, warmup: int,
                     timed: int, seed: int, select: bool = True) -> dict[str, Any]:
    """torch-rechub as its census example (examples/ranking/run_census.py) trains: feature objects,
    ``DataGenerator(...).generate_dataloader`` (a DataLoader over a per-row Dataset) and
    ``MTLTrainer``; each epoch is ``MTLTrainer.train_one_epoch``, the training half of its ``fit``."""
    from torch.utils.data import DataLoader
    from torch_rechub.basic.features import DenseFeature, SparseFeature
    from torch_rechub.basic.initializers import RandomNormal
    from torch_rechub.models.multi_task import MMOE, PLE, SharedBottom
    from torch_rechub.trainers import MTLTrainer
    from torch_rechub.utils.data import DataGenerator, PredictDataset

    inputs = _peer_inputs(data)
    dim, std = int(hparams["embedding_dim"]), float(hparams["embedding_std"])
    features = [SparseFeature(s.name, s.cardinality, embed_dim=dim, initializer=RandomNormal(0.0, std))
                if s.kind == "sparse" else DenseFeature(s.name) for s in inputs["specs"]]
    task_types = ["classification"] * len(data.tasks)
    torch.manual_seed(seed)
    builder = {"mmoe": MMOE, "ple": PLE, "shared_bottom": SharedBottom}[model]
    net = builder(features, task_types, **rechub_arguments(model, hparams, len(task_types)))
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (inputs[s] for s in ("train", "validation", "test"))
    loaders = DataGenerator(x_train, y_train).generate_dataloader(
        x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test, batch_size=cfg.batch_size)
    with tempfile.TemporaryDirectory() as model_path:
        trainer = MTLTrainer(net, task_types=task_types, optimizer_params={"lr": cfg.lr, "weight_decay": cfg.weight_decay},
                             n_epoch=cfg.max_epochs, device="cpu", model_path=model_path)
        rows = {"validation": x_val, "test": x_test}

        def predict_split(split: str) -> np.ndarray:
            loader = DataLoader(PredictDataset(rows[split]), batch_size=cfg.eval_batch_size)
            return np.asarray(trainer.predict(trainer.model, loader))

        selector = make_selector(select, predict_split, data, cfg, warmup, timed)
        seconds = time_epochs(lambda _: trainer.train_one_epoch(loaders[0]), warmup, timed, stop=selector.after_epoch)
    return result(TORCH_RECHUB, model, len(y_train), seconds, sum(p.numel() for p in net.parameters()),
                  **selector.outcome(data))


def run_deepctr_torch(model: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, warmup: int,
                      timed: int, seed: int, select: bool = True) -> dict[str, Any]:
    """deepctr-torch as its docs train: feature columns, ``model.compile`` and one ``model.fit``
    (``verbose=0``: no per-batch training metrics); a callback times each epoch between
    ``on_epoch_begin`` and ``on_epoch_end``, then validates it and stops ``fit`` as the selector says."""

    from deepctr_torch.callbacks import Callback
    from deepctr_torch.inputs import DenseFeat, SparseFeat
    from deepctr_torch.models import MMOE, PLE, SharedBottom

    class EpochClock(Callback):
        """Times each epoch from ``on_epoch_begin`` to ``on_epoch_end``, then validates it (untimed)
        and sets ``stop_training`` when the selector stops."""

        def __init__(self, selector: SelectOnValidation | TimingOnly) -> None:
            super().__init__()
            self.selector = selector
            self.marks: list[tuple[float, float]] = []
            self._begin = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._begin = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.marks.append((self._begin, time.perf_counter()))
            self.model.stop_training = self.selector.after_epoch(epoch + 1)
            self.model.train()  # predict() left it in eval mode; fit sets train mode once, before epoch 1

    inputs = _peer_inputs(data)
    dim, std = int(hparams["embedding_dim"]), float(hparams["embedding_std"])
    columns = [SparseFeat(s.name, vocabulary_size=s.cardinality, embedding_dim=dim) if s.kind == "sparse"
               else DenseFeat(s.name, 1) for s in inputs["specs"]]
    builder = {"mmoe": MMOE, "ple": PLE, "shared_bottom": SharedBottom}[model]
    net = builder(columns, task_types=tuple("binary" for _ in data.tasks), task_names=tuple(t.name for t in data.tasks),
                  init_std=std, seed=seed, device="cpu", **deepctr_arguments(model, hparams))
    net.compile(torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
                loss=["binary_crossentropy"] * len(data.tasks))
    (x_train, y_train), rows = inputs["train"], {split: inputs[split][0] for split in ("validation", "test")}
    selector = make_selector(select, lambda split: net.predict(dict(rows[split]), batch_size=cfg.eval_batch_size), data,
                             cfg, warmup, timed)
    clock = EpochClock(selector)
    net.fit(dict(x_train), y_train, batch_size=cfg.batch_size, epochs=cfg.max_epochs, verbose=0, callbacks=[clock])
    return result(DEEPCTR_TORCH, model, len(y_train), epoch_seconds(clock.marks[:warmup + timed], warmup),
                  sum(p.numel() for p in net.parameters()), **selector.outcome(data))


RUNNERS = {PROJECT: run_project, TORCH_RECHUB: run_torch_rechub, DEEPCTR_TORCH: run_deepctr_torch}
