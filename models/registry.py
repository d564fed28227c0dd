"""Name -> model class registry (the timm pattern).

A model file decorates its class with ``@register_model("name")``; the registry imports every module
of the ``models`` package the first time it is asked for a name, so no list is kept by hand.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, Callable, Mapping

class ModelError(ValueError):
    """An unknown model name or hyperparameter; the message lists what is accepted."""


_REGISTRY: dict[str, type] = {}
_INFRASTRUCTURE = {"base", "layers", "registry"}
_loaded = False


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: register a model class under ``name`` (lower-case, underscores)."""

    def decorator(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is registered twice: {_REGISTRY[name]} and {cls}")
        cls.model_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import models

    for info in pkgutil.iter_modules(models.__path__):
        if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
            importlib.import_module(f"models.{info.name}")
    _loaded = True


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())}") from None


def _keyword_defaults(function: Callable) -> tuple[dict[str, Any], bool]:
    parameters = inspect.signature(function).parameters.values()
    own = {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return own, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def model_hparams(name: str) -> dict[str, Any]:
    """The keyword hyperparameters a model accepts, with their defaults: its own, then the input
    hyperparameters every model shares (``MTLModel.__init__``'s) when it passes ``**common`` on."""
    from models.base import MTLModel

    own, passes_common = _keyword_defaults(get_model_class(name).__init__)
    common = _keyword_defaults(MTLModel.__init__)[0] if passes_common else {}
    return {**own, **common}


def model_summary(name: str) -> str:
    """The first sentence line of the model's module docstring (what it is and which paper)."""
    cls = get_model_class(name)
    doc = (inspect.getmodule(cls).__doc__ or cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def create_model(name: str, schema: Mapping[str, Any], **hparams: Any):
    """Build the model registered as ``name`` for the data described by ``schema``.

    ``schema`` is the processed data's ``schema.json`` content (features and tasks). Unknown
    hyperparameters are refused with the list of accepted ones.
    """
    cls = get_model_class(name)
    accepted = model_hparams(name)
    unknown = sorted(set(hparams) - set(accepted))
    if unknown:
        raise ModelError(
            f"model {name!r} got unknown hyperparameter(s) {unknown}; "
            f"accepted: {', '.join(f'{k}={v!r}' for k, v in accepted.items())}"
        )
    return cls(schema, **hparams)
