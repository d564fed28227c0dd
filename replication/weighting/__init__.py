"""Loss weighting and gradient balancing: how the tasks' losses become one update (issue 21's second
axis). ``train.weighting`` names a method; each lives in its own module of this package, named as the
method (``static`` is :mod:`replication.weighting.static`), and exposes its class as ``WEIGHTING``.

A method is imported by name only when a run uses it, so a run depends on the code of its own method
and of :mod:`replication.weighting.base`, nothing else here (the DVC stages list exactly those files).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any, Mapping

from replication.config import ConfigError
from replication.weighting.base import Weighting

__all__ = ["Weighting", "available_weightings", "weighting_class", "weighting_source"]


def available_weightings() -> list[str]:
    """Every method's name: the modules of this package but ``base`` and this one."""
    return sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_") and p.stem != "base")


def weighting_class(name: str) -> type[Weighting]:
    """The class of method ``name``; a clear error listing the methods for an unknown one."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)) or name == "base" or name not in available_weightings():
        raise ConfigError(f"train.weighting = {name!r} is not a loss weighting method; use one of "
                          f"{', '.join(available_weightings())}")
    return importlib.import_module(f"replication.weighting.{name}").WEIGHTING


def weighting_source(name: str) -> Path:
    """The file of method ``name`` (what a run's code digest covers)."""
    weighting_class(name)
    return Path(__file__).parent / f"{name}.py"


def describe(name: str, params: Mapping[str, Any]) -> str:
    """``name`` with its parameters, e.g. ``dwa T=2``; the method's own rendering where it has one."""
    return weighting_class(name).describe(params)
