"""A run folder's lifetime outside the numbers: the per-seed checkpoints that make training resumable
and the lock that keeps a second writer out. Nothing here decides a run's numbers, so the train
stages of ``dvc.yaml`` do not depend on this file (a change here retrains nothing)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import torch

from replication.config import ConfigError
from replication.io import atomic_open, write_json


class SeedCheckpoint:
    """Where one seed's training state lives until its run is complete (see :mod:`replication.train`).

    The folder's name carries a key that hashes everything that decides the seed's numbers: the
    model, its hyperparameters, the training configuration (less worker processes, threads and executor),
    the data's hash, the seed, the device, the torch version, the source of the training code and
    the model's file, and the output folder. Any change starts afresh; nothing stale is resumed.
    ``epoch.pt`` holds the state after the last saved epoch; once the seed is finished, its record
    and predictions are kept there (``record.json``, ``test_predictions.npz``) until the whole
    command has finished, so that a rerun after an interruption restores them instead of training.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.epoch_file = self.folder / "epoch.pt"
        self.record_file = self.folder / "record.json"
        self.predictions_file = self.folder / "test_predictions.npz"

    def load_epoch(self) -> dict[str, Any] | None:
        if not self.epoch_file.is_file():
            return None
        return torch.load(self.epoch_file, map_location="cpu", weights_only=False)

    def save_epoch(self, state: dict[str, Any]) -> None:
        with atomic_open(self.epoch_file, "wb") as handle:
            torch.save(state, handle)

    def finished(self) -> bool:
        return self.record_file.is_file()

    def save_finished(self, record: dict[str, Any], predictions_file: Path | None) -> None:
        """Keep a finished seed's record and predictions (copied from the output folder; a failed
        seed has none). The record comes last: its presence marks the seed finished."""
        if predictions_file is not None:
            with atomic_open(self.predictions_file, "wb") as handle:
                handle.write(Path(predictions_file).read_bytes())
        write_json(self.record_file, record)
        self.epoch_file.unlink(missing_ok=True)


LOCK_NAME = ".train.lock"  # in the output folder; .gitignore and .dvcignore leave it out


class RunFolderLocked(ConfigError):
    """Another process is writing the same output folder."""


@contextlib.contextmanager
def run_folder_lock(out_dir: Path):
    """Hold an exclusive lock on ``out_dir``: an advisory ``flock`` on its lock file, which the
    operating system releases even when the process is killed. A second writer is refused at once,
    with the holder named. The lock file is removed on release (and a lock taken on a file that was
    removed meanwhile is retried), so a finished folder holds only results."""
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderLocked(f"{out_dir} is being written by {holder}; two writers would interleave their "
                                  f"records. Wait for it to finish (or stop it), or pass another --out") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break  # the lock is on the file that is still there
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()
