"""Progress bars that stay readable in CI: live bars on a terminal, one line per finished item elsewhere."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm


def progress(iterable=None, *, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar on stderr, shown only when stderr is a terminal (and ``disable`` is false)."""
    return tqdm(iterable, file=sys.stderr, disable=disable or not sys.stderr.isatty(), dynamic_ncols=True,
                mininterval=0.5, **kwargs)


def log(message: str) -> None:
    """Print a line without breaking a live progress bar."""
    tqdm.write(message, file=sys.stderr)


SLOW_BATCH_SECONDS = 2.0  # a training batch at least this slow is named on stderr...
BATCH_LINE_SECONDS = 30.0  # ...at most this often after the first such line


class _Batches:
    """This process's count of training batches (optimizer steps) since :func:`watch_batches`."""

    label = ""
    count = 0
    last_step = 0.0
    last_line: float | None = None
    hook = None


def watch_batches(label: str) -> None:
    """Name slow training batches on stderr from now on in this process, as ``label``: a model whose
    batch takes seconds would otherwise show nothing until its first epoch ends, minutes later.
    A line comes after the first batch (from the second on: the first one's time holds the set-up)
    that takes ``SLOW_BATCH_SECONDS`` or more, then at most every ``BATCH_LINE_SECONDS``; fast models
    print nothing. It counts optimizer steps (one per batch) with
    a torch hook that reads nothing of the training, so it changes no number."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    _Batches.label, _Batches.count, _Batches.last_step, _Batches.last_line = label, 0, time.monotonic(), None
    if _Batches.hook is None:
        _Batches.hook = register_optimizer_step_post_hook(_after_step)


def _after_step(optimizer: object, args: object, kwargs: object) -> None:
    now = time.monotonic()
    seconds, _Batches.last_step = now - _Batches.last_step, now
    _Batches.count += 1
    due = _Batches.last_line is None or now - _Batches.last_line >= BATCH_LINE_SECONDS
    # The first step's time holds the set-up since watch_batches (model, data, the first kernels'
    # warm-up), so a fast model under a loaded machine would be called slow: timing starts after it.
    if _Batches.count > 1 and seconds >= SLOW_BATCH_SECONDS and due:
        _Batches.last_line = now
        log(f"{_Batches.label}: training batch {_Batches.count} took {seconds:.1f} s; the epoch's progress shows "
            f"when it ends")
