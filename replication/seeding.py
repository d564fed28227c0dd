"""The one place that seeds every random number generator."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Same seed, same numbers on the same machine and software: CPU kernels here are deterministic;
    on a GPU, scatter-based kernels (embedding backward) may still differ in the last bits.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"a seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
