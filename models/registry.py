"""Name -> model class registry (the timm pattern), and models brought from outside the zoo.

A model file decorates its class with ``@register_model("name")``; the registry imports every module
of the ``models`` package the first time it is asked for a name, so no list is kept by hand.

A model defined elsewhere is named by a spec, ``"path/to/file.py:ClassName"`` (a file anywhere) or
``"package.module:ClassName"`` (an importable module): every function here that takes a model name
also takes a spec and imports the class on demand, so a process that receives only the spec (the
trainer's spawned workers) loads the class by itself. :func:`model_spec` turns a spec into a
:class:`ModelSpec`, which also carries the stable name its run records and tables use.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

class ModelError(ValueError):
    """An unknown model name or hyperparameter; the message lists what is accepted."""


_REGISTRY: dict[str, type] = {}
_INFRASTRUCTURE = {"base", "layers", "registry"}
_loaded = False
_IMPORTED: dict[str, type] = {}  # spec (absolute file path or module, ":", class) -> class, per process
_NAME = re.compile(r"[a-z][a-z0-9_]*")


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
    """Names of every registered model, sorted (models given by a spec are not registered)."""
    _load_all()
    return sorted(_REGISTRY)


class ModelSpec(str):
    """A model defined outside the zoo: the string is its stable name (for records, folders and
    tables), ``source`` the absolute spec its class is imported from. Pickles as both, so a spawned
    worker process that receives it imports the class itself."""

    source: str

    def __new__(cls, name: str, source: str) -> "ModelSpec":
        spec = super().__new__(cls, name)
        spec.source = source
        return spec

    def __reduce__(self):
        return ModelSpec, (str(self), self.source)


def model_spec(text: str) -> ModelSpec:
    """Import the class a spec names and give it its stable name: the class's own ``model_name``
    attribute when it sets one, else the class name lower-cased. The name may not be a registered
    model's (a table would hold two models under one name)."""
    source = _absolute_source(text)
    cls = _import_class(source)
    name = cls.__dict__.get("model_name") or cls.__name__.lower()
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ModelError(f"{text}: the model name {name!r} is not usable as a folder and table name; set "
                         f"model_name = \"...\" on the class (lower-case letters, digits and underscores)")
    if name in list_models():
        raise ModelError(f"{text}: the model name {name!r} is a registered model's; set a different "
                         f"model_name = \"...\" on {cls.__name__} (registered: {', '.join(list_models())})")
    return ModelSpec(name, source)


def _split_spec(text: str) -> tuple[str, str]:
    target, _, class_name = text.rpartition(":")
    if not target or not class_name.isidentifier():
        raise ModelError(f"model {text!r}: a model defined outside the zoo is named PATH/TO/FILE.py:ClassName or "
                         f"package.module:ClassName")
    return target, class_name


def _absolute_source(text: str) -> str:
    """The spec with a file path made absolute, so it means the same file in any working directory."""
    target, class_name = _split_spec(text)
    if target.endswith(".py"):
        target = str(Path(target).expanduser().resolve())
    return f"{target}:{class_name}"


def exception_location(error: BaseException, prefer: str | Path | None = None) -> str:
    """``FILE, line N`` where ``error`` was raised: for a syntax error the offending line, else the
    innermost frame in ``prefer`` (the user's file) when there is one, else the innermost frame."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}, line {error.lineno}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<frozen")]
    preferred = [f for f in frames if prefer is not None and Path(f.filename) == Path(prefer)]
    frame = (preferred or frames or [None])[-1]
    return f"{frame.filename}, line {frame.lineno}" if frame is not None else "an unknown place"


def _import_module(target: str):
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist; give the path of the .py file that defines the "
                             f"class, e.g. examples/my_model.py:MyModel")
        # A private module name per file: two files of the same name never replace each other.
        module_name = f"_user_model_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look classes up here
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[module_name]
            raise ModelError(f"importing model file {path} failed at {exception_location(error, path)}: "
                             f"{type(error).__name__}: {error}; fix that line and run again") from error
        return module
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", target):
        raise ModelError(f"model {target!r}: not a .py file path nor a dotted module name; use "
                         f"PATH/TO/FILE.py:ClassName or package.module:ClassName")
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as error:
        if error.name and (target == error.name or target.startswith(error.name + ".")):
            raise ModelError(f"no module named {target!r}; make its package importable (pip install -e, or "
                             f"PYTHONPATH) or give the path of its .py file instead") from error
        raise ModelError(f"importing module {target} failed at {exception_location(error)}: "
                         f"{type(error).__name__}: {error}") from error
    except Exception as error:
        raise ModelError(f"importing module {target} failed at {exception_location(error)}: "
                         f"{type(error).__name__}: {error}; fix that line and run again") from error


def _import_class(source: str) -> type:
    """The MTLModel subclass a spec names, imported once per process."""
    from models.base import MTLModel

    if source in _IMPORTED:
        return _IMPORTED[source]
    target, class_name = _split_spec(source)
    module = _import_module(target)
    cls = getattr(module, class_name, None)
    if cls is None:
        defined = sorted(n for n, c in vars(module).items()
                         if inspect.isclass(c) and issubclass(c, MTLModel) and c is not MTLModel)
        raise ModelError(f"{target} defines no {class_name!r}; MTLModel subclasses it defines: "
                         f"{', '.join(defined) or 'none'}")
    if not (inspect.isclass(cls) and issubclass(cls, MTLModel)):
        raise ModelError(f"{target}:{class_name} is not a subclass of models.base.MTLModel; derive it from "
                         f"MTLModel (`from models.base import MTLModel`) so the trainer can use it")
    _IMPORTED[source] = cls
    return cls


def get_model_class(name: str) -> type:
    """The class of a registered model name, a :class:`ModelSpec` or a spec string."""
    if isinstance(name, ModelSpec):
        return _import_class(name.source)
    if ":" in name:
        return _import_class(_absolute_source(name))
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())} "
                         f"(a model of your own: PATH/TO/FILE.py:ClassName)") from None


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
    """Build the model registered as ``name`` (or named by a spec) for the data described by ``schema``.

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
