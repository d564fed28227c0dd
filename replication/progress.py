"""Progress bars that stay readable in CI: live bars on a terminal, one line per finished item elsewhere."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(iterable=None, *, disable: bool = False, **kwargs) -> tqdm:
    """A tqdm bar on stderr, shown only when stderr is a terminal (and ``disable`` is false)."""
    return tqdm(iterable, file=sys.stderr, disable=disable or not sys.stderr.isatty(), dynamic_ncols=True,
                mininterval=0.5, **kwargs)


def log(message: str) -> None:
    """Print a line without breaking a live progress bar."""
    tqdm.write(message, file=sys.stderr)
