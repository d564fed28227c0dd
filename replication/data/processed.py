"""The processed-data format every data set is written in, and its loader.

A processed directory holds ``train.npz``, ``validation.npz`` and ``test.npz`` (each with ``x_cat``
int64 (rows, n_cat), ``x_num`` float32 (rows, n_num), ``y`` float32 (rows, n_tasks), NaN for a
missing label) and ``schema.json`` (features, tasks, split seed, hashes).

A *replicate set* is a folder of processed data sets, one per training seed (``seed_<s>/``), listed
in ``replicates.json`` with their hashes: the synthetic generator's ``per_seed`` data seed rule
(:mod:`replication.data.synthetic`). :func:`load_data` reads either; a set's seed s reads its own
replicate (:meth:`Replicates.for_seed`), and its records carry the set's hash as their data hash (the
set is the protocol's data) beside the replicate's own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.base import TaskSpec, tasks_from_schema
from replication.io import sha256_file

SPLITS = ("train", "validation", "test")
REPLICATES_FILE = "replicates.json"


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
    set_hash: str | None = None  # the replicate set's hash when this is one seed's replicate

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return tasks_from_schema(self.schema)

    @property
    def protocol_hash(self) -> str:
        """The data's identity in a run's protocol: the replicate set's hash, else the data's own."""
        return self.set_hash or self.schema["data_hash"]

    def for_seed(self, seed: int) -> "Processed":
        """The data training seed ``seed`` reads: one data set serves every seed."""
        return self

    def require_seeds(self, seeds) -> None:
        """Every seed can train on this data."""


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


def replicate_folder(directory: str | Path, seed: int) -> Path:
    return Path(directory) / f"seed_{seed}"


def set_hash(hashes: dict[str, str]) -> str:
    """One SHA-256 over the replicates' data hashes in the order of their seeds."""
    digest = hashlib.sha256()
    for seed in sorted(hashes, key=int):
        digest.update(f"{seed}:{hashes[seed]}".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Replicates:
    """A replicate set (module docstring): its folder and manifest; each seed's data is loaded when
    asked for (:meth:`for_seed`), so a process holds one replicate at a time and pickles as paths."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.manifest["replicates"]]

    @property
    def protocol_hash(self) -> str:
        return self.manifest["data_hash"]

    def require_seeds(self, seeds) -> None:
        missing = [s for s in seeds if str(s) not in self.manifest["replicates"]]
        if missing:
            raise DataError(f"{self.directory} has replicates for seeds {self.seeds} only, not for seed(s) {missing}; "
                            f"generate the set for every seed to train (`python -m replication synth ... --seeds`)")

    def for_seed(self, seed: int) -> Processed:
        self.require_seeds([seed])
        data = load_processed(replicate_folder(self.directory, seed))
        if data.schema["data_hash"] != self.manifest["replicates"][str(seed)]:
            raise DataError(f"{replicate_folder(self.directory, seed)} is not the replicate {self.directory / REPLICATES_FILE} "
                            f"lists (hash {data.schema['data_hash'][:12]} vs {self.manifest['replicates'][str(seed)][:12]}); "
                            f"generate the set again")
        return replace(data, set_hash=self.protocol_hash)


def load_data(directory: str | Path) -> Processed | Replicates:
    """A processed data set, or a replicate set (a folder with ``replicates.json``)."""
    directory = Path(directory)
    manifest_file = directory / REPLICATES_FILE
    if not manifest_file.is_file():
        return load_processed(directory)
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    if set_hash(manifest["replicates"]) != manifest["data_hash"]:
        raise DataError(f"{manifest_file}: its data hash does not match its replicates' hashes; generate the set again")
    return Replicates(directory, manifest)
