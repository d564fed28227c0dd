"""The training configuration (``params.yaml``'s ``train`` section), the seeds and where they run."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from replication.config import ConfigError, require
from replication.weighting import weighting_class


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
    weighting: str = "static"  # the loss weighting method (replication.weighting); static: PLE Eq. 10's weights
    weighting_params: dict[str, Any] = field(default_factory=dict)  # the method's own parameters
    eval_batch_size: int = 16384
    device: str = "auto"
    seed_workers: int = 0  # seeds trained at once in separate processes; 0: one per CPU core on CPU, 1 on GPU
    num_threads: int = 0  # torch threads per process; 0: the CPU cores divided among the workers
    ensemble: int = 1  # seeds trained together in one process as one batched computation (replication.training.steps)
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
        weighting_class(self.weighting).check_params(self.weighting_params)
        if self.weighting != "static" and (self.loss_weights or self.loss_weight_decay):
            raise ConfigError(f"{where}: loss_weights and loss_weight_decay are PLE Eq. 10's static weights; with "
                              f"weighting = {self.weighting!r} leave them empty (or use weighting: static)")
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
