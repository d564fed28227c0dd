"""A run folder's lifetime outside the numbers: the per-seed checkpoints that make training resumable
and the lock that keeps a second writer out. Nothing here decides a run's numbers, so the train
stages of ``dvc.yaml`` do not depend on this file (a change here retrains nothing)."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import Any

import torch

from replication.io import OutputLocked, atomic_open, exclusive_lock, write_json
from replication.progress import log


class SeedCheckpoint:
    """Where one seed's training state lives until its run is complete (see :mod:`replication.training.loop`).

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
        """The saved training state, or None when there is none. A file that cannot be read (cut
        short by a full disk or a copy, or damaged) is moved aside and named on stderr, and None
        is returned: the seed restarts cleanly instead of failing on every rerun."""
        if not self.epoch_file.is_file():
            return None
        try:
            return torch.load(self.epoch_file, map_location="cpu", weights_only=False)
        except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError... by damage
            aside = self.folder.parent / f"{self.folder.name}.epoch.pt.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(self.epoch_file, aside)
            log(f"checkpoint {self.epoch_file} cannot be read ({type(error).__name__}: {error}); moved aside to "
                f"{aside} (delete it when done) and this seed restarts from its first epoch")
            return None

    def save_epoch(self, state: dict[str, Any]) -> None:
        """Save the training state atomically. A save that fails (a full disk, no permission) is
        named on stderr with its reason and training goes on: the previous checkpoint stays intact,
        as the file is only renamed into place once complete, so an interruption loses at most the
        epochs since it."""
        try:
            with atomic_open(self.epoch_file, "wb") as handle:
                torch.save(state, handle)
        except (OSError, RuntimeError) as error:
            log(f"WARNING could not save checkpoint {self.epoch_file}: {_save_failure(error)}; the previous "
                f"checkpoint (if any) is intact and training goes on. Free space on that disk or pass "
                f"--checkpoints with a writable folder elsewhere")

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


def _save_failure(error: BaseException) -> str:
    """What made a save fail, in words: torch reports a full disk as a write position mismatch."""
    cause = error if isinstance(error, OSError) else error.__cause__ or error.__context__
    if isinstance(cause, OSError) and cause.errno is not None:
        return f"{os.strerror(cause.errno)} ({errno.errorcode.get(cause.errno, cause.errno)})"
    text = str(error)
    if "unexpected pos" in text or "failed writing" in text:
        return f"the file could not be written completely, most likely a full disk (torch: {text.splitlines()[0]})"
    return f"{type(error).__name__}: {text}"


class RunFolderLocked(OutputLocked):
    """Another process is writing the same output folder."""


def lock_path(out_dir: Path) -> Path:
    """The lock file of run folder ``out_dir``: its sibling ``.NAME.train.lock``. Beside the folder,
    not inside it: ``dvc repro`` deletes a stage's output folder before running it, and a lock file
    inside would go with it, letting a second writer start beside a first one still alive.
    .gitignore and .dvcignore leave it out."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.train.lock"


@contextlib.contextmanager
def run_folder_lock(out_dir: Path):
    """Hold an exclusive lock on run folder ``out_dir`` (:func:`replication.io.exclusive_lock` on
    :func:`lock_path`): a second writer is refused at once, with the holder named; the operating
    system releases the lock even when the holder is killed, and only the holder removes its file."""
    out_dir = Path(out_dir)
    with exclusive_lock(lock_path(out_dir), str(out_dir), error=RunFolderLocked):
        out_dir.mkdir(parents=True, exist_ok=True)
        yield
