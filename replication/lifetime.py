"""A command's process lifetime: no process outlives the one that started it, and SIGTERM ends a
command as cleanly as Ctrl-C.

- :func:`die_with_parent`: Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``), so that a
  training worker is killed with the command that spawned it, however that command ended (``kill
  -9`` included). Elsewhere it does nothing.
- :func:`end_with_parent`: for the command itself (``python -m replication``), the same signal
  (SIGTERM) on its parent's death, and a watch on its parent and grandparent: ``dvc repro`` runs a
  stage through a shell, so when dvc is killed the shell lives on, orphaned, and only the
  grandparent's going tells. An orphaned command ends as on SIGTERM.
- :func:`sigterm_raises`: SIGTERM raises :class:`Terminated` in the main thread, so that the command
  ends its worker processes, releases its locks and leaves its checkpoints to resume from, and the
  command line answers with a message and exit code 143 (128 + SIGTERM).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 1.0  # how often an orphaned command is looked for


class Terminated(BaseException):
    """The process was asked to end (SIGTERM), or found itself orphaned."""


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Have Linux send ``sig`` to this process when its parent ends; if ``parent`` (the pid the
    parent had) has already ended before this call, send it now. A no-op elsewhere than Linux."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def parent_of(pid: int) -> int | None:
    """The parent process id of ``pid`` (from /proc), None where it cannot be read or has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces


def _lineage() -> tuple[int, int | None]:
    parent = os.getppid()
    return parent, parent_of(parent)


def _watch(lineage: tuple[int, int | None]) -> None:
    """Send this process SIGTERM once its parent or grandparent has ended (a process is re-parented
    when its parent ends, so a changed pid in the lineage says so)."""
    while _lineage() == lineage:
        time.sleep(WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def detached() -> bool:
    """Whether this process was started to outlive its starter: under ``nohup`` (SIGHUP ignored) or
    ``setsid`` (the leader of its own session)."""
    return signal.getsignal(signal.SIGHUP) == signal.SIG_IGN or os.getsid(0) == os.getpid()


def end_with_parent() -> None:
    """Make this command end (as on SIGTERM) when the process that started it ends, or that
    process's parent: see the module docstring. Not for a command started with ``nohup`` or
    ``setsid`` (:func:`detached`), which asked to outlive them. Linux only (/proc); a no-op elsewhere."""
    if not Path("/proc/self/stat").exists() or detached():
        return
    lineage = _lineage()
    die_with_parent(signal.SIGTERM, lineage[0])
    threading.Thread(target=_watch, args=(lineage,), name="parent-watch", daemon=True).start()


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` in the main thread; the previous handler
    is restored after it. Outside the main thread (where signals cannot be handled) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
