"""Train one registered model over several seeds on a processed data set, selecting on validation only.

The whole data set lives as tensors on the device; batches are slices of a shuffled index, so there
is no per-row DataLoader and no host synchronisation inside an epoch. The joint loss is PLE's
Eqs. 8-10: ``L = sum_k w_k(t) L_k`` with ``L_k`` averaged over the rows that carry task k's label
(missing labels are masked, never read as 0) and ``w_k(t) = w_k0 * gamma_k ** t`` (t = epoch - 1;
constant weights by default).

Model selection: after every epoch the validation metrics are computed; the selected epoch is the one
with the best validation score (``train.selection``: ``mean`` over tasks of AUC, or of -MSE for
regression tasks; ``main_task``, the main task's alone; ``per_task``, each task read at its own best
epoch), and training stops after ``patience`` epochs without improvement (of every task, for
``per_task``). Models that share no parameter between tasks always select each task on its own
validation metric. Test metrics are computed once, for the selected weights only. A multi-task run
selected as a whole also records, as ``per_task_selection``, each task's test metric at its own best
validation epoch among the epochs it trained: the selection chance Single-Task gets, read from the
same run, so that a report can say whether a verdict depends on the rule.

Interruptions lose nothing (:class:`SeedCheckpoint`): a seed's full training state is saved to a
checkpoint folder every ``checkpoint_seconds``, and a rerun of the same command resumes each
unfinished seed from its last saved epoch and restores finished seeds without training them again;
the records equal those of an uninterrupted run. A loss that becomes NaN or infinite ends that seed
with a record of status ``failed`` (the reason and the epoch), which tables show as a missing seed.

Where the seeds train is the executor's choice (:mod:`replication.executors`: this machine's
processes, or Ray tasks on a cluster, where a task whose worker dies is run again and resumes from
the same checkpoints); each unit of work (:class:`WorkUnit`) does the same thing wherever it runs.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F

import models
from models import create_model, get_model_class
from models.registry import ModelError, model_hparams
from replication.config import ConfigError, require
from replication.contract import CHECK_ROWS, check_contract, error_location
from replication.data.processed import Processed, Replicates, Split
from replication.io import atomic_open, save_npz, write_json
from replication.metrics import METRIC_FOR_TASK_TYPE
from replication.progress import log, progress
from replication.runfolder import SeedCheckpoint, run_folder_lock
from replication.provenance import environment
from replication.seeding import rng_state, seed_everything, set_rng_state

RECORD_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Training choices the papers leave open; defaults and reasons are in ``params.yaml``."""

    lr: float = 1e-3
    batch_size: int = 1024
    max_epochs: int = 100
    patience: int = 3
    selection: Literal["mean", "main_task", "per_task"] = "mean"
    loss_weights: dict[str, float] = field(default_factory=dict)  # w_k0 per task; missing -> 1
    loss_weight_decay: dict[str, float] = field(default_factory=dict)  # gamma_k per task; missing -> 1
    weight_decay: float = 0.0
    eval_batch_size: int = 16384
    device: str = "auto"
    seed_workers: int = 0  # seeds trained at once in separate processes; 0: one per CPU core on CPU, 1 on GPU
    num_threads: int = 0  # torch threads per process; 0: the CPU cores divided among the workers
    ensemble: int = 1  # seeds trained together in one process as one batched computation (replication.ensemble)
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: forward passes autocast to bfloat16, losses in fp32
    compile: bool = False  # torch.compile the model's forward (the ensemble's batched step)
    executor: Literal["local", "ray"] = "local"  # where the units of work run (replication.executors)
    fused_adam: bool = False  # Adam's fused kernel (one per step for all parameters; rounds differently)

    def validate(self, where: str) -> None:
        require(self.lr > 0, where, "lr", self.lr, "must be > 0")
        require(self.batch_size >= 1, where, "batch_size", self.batch_size, "must be >= 1")
        require(self.max_epochs >= 1, where, "max_epochs", self.max_epochs, "must be >= 1")
        require(self.patience >= 1, where, "patience", self.patience, "must be >= 1")
        require(self.weight_decay >= 0, where, "weight_decay", self.weight_decay, "must be >= 0")
        require(self.eval_batch_size >= 1, where, "eval_batch_size", self.eval_batch_size, "must be >= 1")
        require(self.seed_workers >= 0, where, "seed_workers", self.seed_workers, "must be >= 0")
        require(self.num_threads >= 0, where, "num_threads", self.num_threads, "must be >= 0")
        require(self.ensemble >= 1, where, "ensemble", self.ensemble, "must be >= 1 (1: one seed at a time)")
        require(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"), where,
                "device", self.device, "use auto, cpu, cuda, cuda:N or mps")
        for task, w in self.loss_weights.items():
            require(w >= 0, where, f"loss_weights.{task}", w, "must be >= 0")
        for task, g in self.loss_weight_decay.items():
            require(g > 0, where, f"loss_weight_decay.{task}", g, "must be > 0")


def parse_seeds(text: str) -> list[int]:
    """``"0-9"`` -> [0..9]; ``"0,3,5-6"`` -> [0, 3, 5, 6]. Malformed or reversed ranges are refused."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ConfigError(f"--seeds {text!r}: use non-negative integers and increasing ranges, e.g. 0-9 or 0,2,5-7")
        seeds += range(int(match[1]), int(match[2] or match[1]) + 1)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: each seed may appear once")
    return seeds


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name!r}, but torch sees no CUDA device; use auto or cpu")
    return device


def joint_loss(outputs: Mapping[str, torch.Tensor], y: torch.Tensor, tasks, weights: torch.Tensor) -> torch.Tensor:
    """PLE Eq. 8-10: weighted sum over tasks of each task's loss over its labelled rows only."""
    total = outputs[tasks[0].name].new_zeros(())
    for k, task in enumerate(tasks):
        target = y[:, k]
        observed = ~torch.isnan(target)
        target = torch.where(observed, target, torch.zeros_like(target))
        per_row = LOSS_FOR_TASK_TYPE[task.type](outputs[task.name], target)
        task_loss = (per_row * observed).sum() / observed.sum().clamp(min=1)
        total = total + weights[k] * task_loss
    return total


LOSS_FOR_TASK_TYPE = {
    "binary": lambda logit, target: F.binary_cross_entropy_with_logits(logit, target, reduction="none"),
    "regression": lambda pred, target: F.mse_loss(pred, target, reduction="none"),
}
PREDICTION_FOR_TASK_TYPE = {"binary": torch.sigmoid, "regression": lambda x: x}


def autocast(precision: str, device: torch.device):
    """The training steps' precision: bfloat16 autocast for ``bf16`` (matrix products in bf16, losses
    and softmax in fp32, as torch's autocast policy has it), nothing for ``fp32``. Validation and test
    predictions are always fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def to_predictions(outputs: Mapping[str, torch.Tensor], tasks) -> torch.Tensor:
    """(..., rows, tasks) probabilities (binary tasks) or values (regression tasks)."""
    return torch.stack([PREDICTION_FOR_TASK_TYPE[t.type](outputs[t.name]) for t in tasks], dim=-1)


@torch.no_grad()
def predict(model: torch.nn.Module, split: Split, tasks, batch_size: int) -> np.ndarray:
    """Predictions (probabilities for binary tasks) as a (rows, tasks) float64 array, computed in
    fp32 whatever the training precision (bf16 logits would tie many rows and so move the AUC)."""
    model.eval()
    chunks = []
    for start in range(0, split.rows, batch_size):
        out = model(split.x_cat[start:start + batch_size], split.x_num[start:start + batch_size]).outputs
        chunks.append(to_predictions(out, tasks))
    model.train()
    return torch.cat(chunks).double().cpu().numpy()


@torch.no_grad()
def gate_usage(model: torch.nn.Module, split: Split, batch_size: int) -> dict[str, dict[str, list]]:
    """Mean and (population) std over the split's rows of every gate's weight on every expert: what
    PLE's Fig. 8 plots. ``{gate: {"experts": labels, "mean": [...], "std": [...]}}``; empty if ungated."""
    labels = model.gate_experts()
    if not labels:
        return {}
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    for start in range(0, split.rows, batch_size):
        gates = model(split.x_cat[start:start + batch_size], split.x_num[start:start + batch_size]).gates
        for name, weights in gates.items():
            weights = weights.double()
            sums[name] = sums.get(name, 0) + weights.sum(0)
            squares[name] = squares.get(name, 0) + (weights * weights).sum(0)
    model.train()
    usage = {}
    for name, total in sums.items():
        mean = total / split.rows
        std = (squares[name] / split.rows - mean * mean).clamp(min=0).sqrt()
        usage[name] = {"experts": list(labels[name]), "mean": mean.cpu().tolist(), "std": std.cpu().tolist()}
    return usage


def evaluate(prediction: np.ndarray, y: np.ndarray, tasks) -> dict[str, dict[str, float]]:
    return {
        t.name: {METRIC_FOR_TASK_TYPE[t.type].name: METRIC_FOR_TASK_TYPE[t.type].fn(y[:, k], prediction[:, k])}
        for k, t in enumerate(tasks)
    }


def selection_score(metrics: Mapping[str, Mapping[str, float]], tasks) -> float:
    """Mean over ``tasks`` of the metric oriented so that larger is better."""
    values = [METRIC_FOR_TASK_TYPE[t.type].score(metrics[t.name][METRIC_FOR_TASK_TYPE[t.type].name]) for t in tasks]
    return float(np.mean(values))


@dataclass
class Selection:
    """Best-so-far bookkeeping for a group of tasks selected together, on the score of ``scored``."""

    tasks: tuple
    scored: tuple
    score: float = -np.inf
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, metrics: Mapping[str, Mapping[str, float]],
               state: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Keep ``state()`` (a copy of the weights, taken only when needed) if ``epoch`` scores best."""
        score = selection_score(metrics, self.scored)
        if score > self.score:
            self.score, self.epoch = score, epoch
            self.state = state()


def selection_groups(model, tasks, main_task: str, selection: str) -> list[Selection]:
    """One group per task for models that share nothing or under ``per_task``; else one group of
    all tasks, scored on every task (``mean``) or on the main task alone (``main_task``)."""
    if model.tasks_independent or selection == "per_task":
        return [Selection((t,), (t,)) for t in tasks]
    scored = tuple(t for t in tasks if t.name == main_task) if selection == "main_task" else tuple(tasks)
    return [Selection(tuple(tasks), scored)]


@functools.lru_cache(maxsize=None)
def training_code_digest(model_name: str) -> str:
    """SHA-256 over the sources that decide a run's numbers: this trainer and the ensemble trainer,
    the metrics, the seeding, the processed-data loader, every file of the model zoo and the file of
    the model's class. Read once per process and model (every seed's checkpoint key uses it)."""
    from replication import ensemble, metrics, seeding
    from replication.data import processed

    files = {Path(__file__), Path(ensemble.__file__), Path(metrics.__file__), Path(seeding.__file__),
             Path(processed.__file__),
             *Path(models.__file__).parent.glob("*.py"), Path(inspect.getsourcefile(get_model_class(model_name)))}
    digest = hashlib.sha256()
    for path in sorted(p.resolve() for p in files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def shadow_groups(groups: list[Selection], tasks) -> list[Selection]:
    """Per-task groups that follow a run selected as a whole without steering it (they never stop
    it): the ``per_task_selection`` of its record. None when the run already selects per task."""
    return [] if len(groups) == len(tasks) else [Selection((t,), (t,)) for t in tasks]


def seed_checkpoint(root: Path, model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig,
                    seed: int | list[int], device: torch.device, out_dir: Path) -> SeedCheckpoint:
    """The checkpoint folder of one seed of one run, or of seeds trained together (a list), under
    ``root`` (see :class:`SeedCheckpoint`)."""
    key = {
        "model": str(model_name), "hparams": {**model_hparams(model_name), **hparams},
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("seed_workers", "num_threads", "executor")},
        "data_hash": data.protocol_hash, "seed": seed, "device": str(device), "torch": torch.__version__,
        "code": training_code_digest(model_name), "out": str(Path(out_dir).resolve()), "format": RECORD_FORMAT,
    }
    text = json.dumps(key, sort_keys=True, default=str)
    name = f"seed{seed}" if isinstance(seed, int) else f"seeds{'_'.join(map(str, seed))}"
    return SeedCheckpoint(Path(root) / f"{model_name}-{name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}")


def train_seed(model_name: str, hparams: Mapping[str, Any], data: Processed, cfg: TrainConfig, seed: int,
               device: torch.device, show_epochs: bool = True, checkpoint: SeedCheckpoint | None = None,
               checkpoint_seconds: float = 30.0) -> tuple[dict[str, Any], np.ndarray | None]:
    """Train one seed; returns its run record and its (test rows, tasks) predictions, or a record of
    status ``failed`` and None when the training loss became NaN or infinite. With ``checkpoint``,
    the state is saved there at most every ``checkpoint_seconds`` (0: after every epoch) and a saved
    state is resumed from."""
    started = time.perf_counter()
    tasks = data.tasks
    seed_everything(seed)
    model = create_model(model_name, data.schema, **hparams).to(device)
    step_model = torch.compile(model) if cfg.compile else model
    optimizer = make_optimizer(model.parameters(), cfg)
    shuffle = torch.Generator(device=device).manual_seed(seed)
    w0, gamma = loss_weight_schedule(cfg, tasks, device)
    train, val = data.splits["train"].to(device), data.splits["validation"].to(device)
    groups = selection_groups(model, tasks, data.schema["main_task"], cfg.selection)
    shadow = shadow_groups(groups, tasks)
    history: list[dict[str, Any]] = []
    first_epoch, seconds_before = 1, 0.0
    saved = checkpoint.load_epoch() if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        shuffle.set_state(saved["shuffle"])
        set_rng_state(saved["rng"])
        for group, (score, epoch, state) in zip(groups + shadow, saved["groups"], strict=True):
            group.score, group.epoch, group.state = score, epoch, state
        history, seconds_before = saved["history"], saved["seconds"]
        first_epoch = len(history) + 1
        log(f"{model_name} seed {seed}: resuming after epoch {len(history)} from {checkpoint.folder}")
    last_saved, failure = time.perf_counter(), None
    epochs = progress(range(first_epoch, cfg.max_epochs + 1), desc=f"{model_name} seed {seed}", unit="epoch",
                      leave=False, disable=not show_epochs)
    for epoch in epochs:
        weights = w0 * gamma ** (epoch - 1)
        order = torch.randperm(train.rows, generator=shuffle, device=device)
        loss_sum = train_epoch(model, step_model, optimizer, train, order, tasks, weights, cfg)
        train_loss = float(loss_sum) / train.rows  # one host synchronisation per epoch
        if not np.isfinite(train_loss):
            failure = diverged(model_name, seed, epoch, train_loss)
            break
        val_metrics = evaluate(predict(model, val, tasks, cfg.eval_batch_size),
                               data.splits["validation"].y_numpy, tasks)
        for group in groups + shadow:
            group.update(epoch, val_metrics, lambda: copy.deepcopy(model.state_dict()))
        history.append({"epoch": epoch, "train_loss": train_loss, "validation": val_metrics})
        epochs.set_postfix(val=f"{selection_score(val_metrics, tasks):.4f}")
        if stopped(epoch, groups, cfg):
            break
        if checkpoint is not None and time.perf_counter() - last_saved >= checkpoint_seconds:
            checkpoint.save_epoch({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "shuffle": shuffle.get_state(),
                "rng": rng_state(), "groups": [(g.score, g.epoch, g.state) for g in groups + shadow], "history": history,
                "seconds": seconds_before + time.perf_counter() - started,
            })
            last_saved = time.perf_counter()
    return finish_seed(model_name, hparams, model, groups, shadow, history, failure, data, cfg, seed, device,
                       seconds_before + time.perf_counter() - started)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Adam:
    """The trainer's optimizer: Adam with ``cfg``'s learning rate and weight decay; with
    ``cfg.fused_adam``, its fused kernel (one per step for all parameters, not a loop over them)."""
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_adam or None)


def train_epoch(model: torch.nn.Module, step_model: torch.nn.Module, optimizer: torch.optim.Optimizer, train: Split,
                order: torch.Tensor, tasks, weights: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """One pass over ``train`` in batches of ``cfg.batch_size`` rows taken in ``order``: forward
    (``step_model``: the model, or its compiled form), PLE's joint loss plus the model's
    regularization, one Adam step per batch. Returns the loss summed over rows, on the device (no
    host synchronisation)."""
    loss_sum = torch.zeros((), device=order.device)
    for start in range(0, train.rows, cfg.batch_size):
        idx = order[start:start + cfg.batch_size]
        with autocast(cfg.precision, order.device):
            out = step_model(train.x_cat[idx], train.x_num[idx])
            loss = joint_loss(out.outputs, train.y[idx], tasks, weights)
            penalty = model.regularization()
            if penalty is not None:
                loss = loss + penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
    return loss_sum


def loss_weight_schedule(cfg: TrainConfig, tasks, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_k0, gamma_k) per task (PLE Eqs. 9-10); epoch t's weights are ``w0 * gamma ** (t - 1)``."""
    w0 = torch.tensor([cfg.loss_weights.get(t.name, 1.0) for t in tasks], device=device)
    gamma = torch.tensor([cfg.loss_weight_decay.get(t.name, 1.0) for t in tasks], device=device)
    return w0, gamma


def diverged(model_name: str, seed: int, epoch: int, train_loss: float) -> dict[str, Any]:
    """The failure entry of a seed whose training loss became NaN or infinite, logged."""
    failure = {"epoch": epoch, "reason": f"training loss became {train_loss}"}
    log(f"{model_name} seed {seed}: FAILED in epoch {epoch}: {failure['reason']}; recorded as failed")
    return failure


def stopped(epoch: int, groups: list[Selection], cfg: TrainConfig) -> bool:
    """Early stopping: every selection group has gone ``patience`` epochs without a better score."""
    return all(epoch - g.epoch >= cfg.patience for g in groups)


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


def record_path(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}.json"


def predictions_path(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}.test_predictions.npz"


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan_workers(cfg: TrainConfig, device: torch.device, n_seeds: int) -> tuple[int, int]:
    """(processes, torch threads per process). On a CPU, small models use cores better as one
    single-threaded process per seed than as one multi-threaded process (measured here, 2 cores,
    MMoE: 1.5x the seeds per hour); a GPU is shared best by one process."""
    workers = cfg.seed_workers or (cpu_cores() if device.type == "cpu" else 1)
    workers = max(1, min(workers, n_seeds))
    threads = cfg.num_threads or max(1, cpu_cores() // workers)
    return workers, threads


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


def _train_and_save(model_name: str, hparams: Mapping[str, Any], data: Processed | None, cfg: TrainConfig,
                    seeds: list[int], device: torch.device, out_dir: Path, show_epochs: bool,
                    marks: Mapping[int, SeedCheckpoint | None], ensemble_mark: SeedCheckpoint | None,
                    checkpoint_seconds: float) -> list[dict[str, Any]]:
    """Train one unit of work: one seed, or (``cfg.ensemble`` > 1) a few seeds together, each
    restored instead when its checkpoint says it finished; then write, per seed, its predictions and
    then its record (both atomic). In a worker process ``data`` is None and the copy its initialiser
    received is used. An exception raised while training becomes a ModelError naming where it arose."""
    data = data if data is not None else _worker_data
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
                from replication.ensemble import train_ensemble

                results = train_ensemble(model_name, hparams, data, cfg, todo, device, show_epochs, ensemble_mark,
                                         checkpoint_seconds)
            else:
                results = [train_seed(model_name, hparams, data.for_seed(seed), cfg, seed, device, show_epochs,
                                      marks[seed], checkpoint_seconds) for seed in todo]
        except Exception as error:
            where = error_location(error, model_name)
            raise ModelError(f"{model_name} seed(s) {', '.join(map(str, todo))}: training failed at {where}: "
                             f"{type(error).__name__}: {error}") from error
        for seed, (record, test_prediction) in zip(todo, results):
            records[seed] = _save_seed(record, test_prediction, data.for_seed(seed), out_dir, marks[seed])
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


class TrainingInterrupted(RuntimeError):
    """A worker process or Ray task died (killed, out of memory, its node lost) before its seeds were written."""


def train_model(model_name: str, hparams: Mapping[str, Any], data: Processed | Replicates, cfg: TrainConfig,
                seeds: list[int], out_dir: Path, checkpoints: Path | None = None,
                checkpoint_seconds: float = 30.0) -> list[dict[str, Any]]:
    """Train every seed and write, per seed, its predictions and then its record (both atomic).

    The model is first checked against the zoo's contract on a few training rows. With
    ``checkpoints`` (a folder), every seed can be resumed after an interruption (see
    :class:`SeedCheckpoint`); the seeds' checkpoint folders are removed once every seed is written.
    The units of work run where ``cfg.executor`` says (:mod:`replication.executors`: this machine, or
    a Ray cluster); the files are the same either way. Seeds whose loss diverged get a ``failed``
    record and are listed in a warning. ``data`` may be a replicate set: each seed reads its own."""
    from replication.executors import make_executor

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
            marks = {seed: None if checkpoints is None else
                     seed_checkpoint(checkpoints, model_name, hparams, data, cfg, seed, device, out_dir)
                     for seed in seeds}
            chunks = [seeds[i:i + cfg.ensemble] for i in range(0, len(seeds), cfg.ensemble)]
            ensemble_marks = {tuple(chunk): None if checkpoints is None or cfg.ensemble == 1 else
                              seed_checkpoint(checkpoints, model_name, hparams, data, cfg, chunk, device, out_dir)
                              for chunk in chunks}
            units = [WorkUnit(model_name, hparams, cfg, tuple(chunk), device, out_dir, {s: marks[s] for s in chunk},
                              ensemble_marks[tuple(chunk)], checkpoint_seconds) for chunk in chunks]
            bar = progress(total=len(seeds), desc=model_name, unit="seed")
            by_unit = executor.run(units, data, done=lambda unit: bar.update(len(unit.seeds)))
            records = [record for unit_records in by_unit for record in unit_records]
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


@dataclass(frozen=True)
class WorkUnit:
    """One unit of work: one model's chunk of seeds on one data set (one seed, or ``cfg.ensemble``
    seeds trained together) with its checkpoints; everything :func:`_train_and_save` needs but the
    data, which each executor hands over its own way (:mod:`replication.executors`). Whatever runs it,
    a unit trains (or restores) its seeds and writes their files in the same way."""

    model_name: str
    hparams: Mapping[str, Any]
    cfg: TrainConfig
    seeds: tuple[int, ...]
    device: torch.device
    out_dir: Path
    marks: Mapping[int, SeedCheckpoint | None]
    ensemble_mark: SeedCheckpoint | None
    checkpoint_seconds: float

    def run(self, data: Processed | None, show_epochs: bool = False) -> list[dict[str, Any]]:
        """Train the unit's seeds (``data`` None: the copy a local worker process was given) and
        return their records in the order of its seeds."""
        return _train_and_save(self.model_name, self.hparams, data, self.cfg, list(self.seeds), self.device,
                               self.out_dir, show_epochs, self.marks, self.ensemble_mark, self.checkpoint_seconds)
