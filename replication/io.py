"""Atomic file output: every file is written to a temporary sibling and renamed into place.

A crash or an error therefore never leaves a partial file where a later stage would read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np

from replication.config import ConfigError


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual mode
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if _unnamed(error):
            raise named(error, path) from error
        raise


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder to fill; it replaces ``path`` (any old folder there is removed)
    only if the block succeeds, so ``path`` is never left half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(staging, 0o777 & ~_UMASK)
        yield staging
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_together(files: Mapping[str | os.PathLike, str | bytes]) -> None:
    """Write several files (text, or bytes: a figure) as one set: every file goes to a temporary
    sibling first, and only when all of them are complete are they renamed into place. A failure
    while writing (a full disk, a permission) leaves every old file as it was and no new one, so a
    table's ``.csv`` and ``.md`` always come from the same run."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((tmp, path))
            os.chmod(tmp, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException as error:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if _unnamed(error) and staged:
            raise named(error, staged[-1][1]) from error
        raise


def _unnamed(error: BaseException) -> bool:
    """Whether ``error`` is a system error that names no file (a write on a full disk)."""
    return isinstance(error, OSError) and error.errno is not None and error.filename is None


def named(error: OSError, path: str | os.PathLike) -> OSError:
    """``error`` with ``path`` as its file: a failed write (a full disk) names no file by itself."""
    return type(error)(error.errno, error.strerror or str(error), str(path))


class OutputLocked(ConfigError):
    """Another process is writing the same output."""


def _holder_line() -> str:
    return f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str, error: type[OutputLocked] = OutputLocked) -> Iterator[None]:
    """Hold an advisory ``flock`` on the lock file ``path`` for the block: a second holder of the
    same path is refused at once with ``error`` naming ``what`` is locked, the holder and the fix. The operating system releases the lock even when its holder is killed. On release the
    file is removed only while it is still the file this holder locked (same inode), so a holder
    never removes the lock of a process that took over after it."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise error(f"{what} is being written by {holder}; two writers would interleave their files. "
                        f"Wait for it to finish (or stop it), or pass another --out") from None
        if _same_file(path, handle):
            break  # the lock is on the file that is still there
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(_holder_line())
        handle.flush()
        yield
    finally:
        if _same_file(path, handle):
            path.unlink(missing_ok=True)
        handle.close()


def _same_file(path: Path, handle: IO) -> bool:
    """Whether ``path`` still names the file open as ``handle``."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def output_lock(out: str | os.PathLike) -> contextlib.AbstractContextManager[None]:
    """The lock of a command's output ``out`` (a path without extension, or a folder): the sibling file
    ``.NAME.lock``, so that two commands writing the same tables are refused like two trainers."""
    out = Path(out)
    return exclusive_lock(out.parent / f".{out.name}.lock", str(out))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, sort_keys=True)
        handle.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


# np.savez stamps every member with the current time; a fixed stamp makes the bytes (and so the
# content hashes DVC and the schemas record) depend on the arrays alone.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save arrays to an uncompressed ``.npz`` file (``np.load`` reads it), atomically and
    reproducibly: the same arrays always give the same bytes."""
    with atomic_open(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            with archive.open(member, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(array), allow_pickle=False)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
