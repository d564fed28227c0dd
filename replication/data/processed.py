"""The processed-data format every data set is written in, and its loader.

A processed directory holds ``train.npz``, ``validation.npz`` and ``test.npz`` (each with ``x_cat``
int64 (rows, n_cat), ``x_num`` float32 (rows, n_num), ``y`` float32 (rows, n_tasks), NaN for a
missing label) and ``schema.json`` (features, tasks, split seed, hashes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import TaskSpec, tasks_from_schema
from replication.io import sha256_file

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    x_cat: torch.Tensor  # (rows, n_cat) int64
    x_num: torch.Tensor  # (rows, n_num) float32
    y: torch.Tensor  # (rows, n_tasks) float32, NaN = missing
    y_numpy: np.ndarray

    @property
    def rows(self) -> int:
        return self.x_cat.shape[0]

    def to(self, device: torch.device) -> "Split":
        return Split(self.x_cat.to(device), self.x_num.to(device), self.y.to(device), self.y_numpy)

    def head(self, rows: int) -> "Split":
        return Split(self.x_cat[:rows], self.x_num[:rows], self.y[:rows], self.y_numpy[:rows])

    def __reduce__(self):
        # Pickled (to the trainer's worker processes) as NumPy arrays: plain bytes through the pipe,
        # not torch's shared-memory tensors, which a small /dev/shm (Docker's 64 MB) cannot hold.
        return _split_from_numpy, (self.x_cat.cpu().numpy(), self.x_num.cpu().numpy(), self.y.cpu().numpy(), self.y_numpy)


def _split_from_numpy(x_cat: np.ndarray, x_num: np.ndarray, y: np.ndarray, y_numpy: np.ndarray) -> Split:
    return Split(torch.from_numpy(x_cat), torch.from_numpy(x_num), torch.from_numpy(y), y_numpy)


@dataclass(frozen=True)
class Processed:
    schema: dict[str, Any]
    splits: dict[str, Split]

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return tasks_from_schema(self.schema)


class DataError(ValueError):
    """Processed data that is missing or does not match its schema."""


def load_processed(directory: str | Path, verify: bool = True) -> Processed:
    """Load a processed directory; with ``verify``, refuse files whose hash differs from the schema's."""
    directory = Path(directory)
    schema_file = directory / "schema.json"
    if not schema_file.is_file():
        raise DataError(f"{schema_file} does not exist; run `python -m replication prepare ...` to create {directory}")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    if verify and data_hash(directory) != schema["data_hash"]:
        raise DataError(f"the arrays in {directory} do not match the hash in its schema.json; run prepare again")
    splits = {}
    for name in SPLITS:
        with np.load(directory / f"{name}.npz") as arrays:
            y = arrays["y"].astype(np.float32)
            splits[name] = Split(torch.from_numpy(arrays["x_cat"].astype(np.int64)),
                                 torch.from_numpy(arrays["x_num"].astype(np.float32)), torch.from_numpy(y), y)
    return Processed(schema, splits)


def data_hash(directory: str | Path) -> str:
    """One SHA-256 over the three split files: the identity of a processed data set."""
    digest = hashlib.sha256()
    for split in SPLITS:
        digest.update(sha256_file(Path(directory) / f"{split}.npz").encode())
    return digest.hexdigest()
