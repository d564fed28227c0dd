"""Typed, validated configuration read from ``params.yaml`` (and from data specs,
:mod:`replication.data.spec`).

Every key is checked: an unknown key, a wrong type or an out-of-range value is refused with the key,
the value and what is allowed, before any work starts.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and what is allowed."""


def load_yaml(path: str | Path, what: str = "parameter file") -> dict[str, Any]:
    """A YAML file holding a mapping (``what`` names it in messages: a parameter file, a data spec),
    with an error naming the line of a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        with open(path, encoding="utf-8") as handle:
            params = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{at}: {problem}; fix that line (`git diff {path}` shows what "
                          f"changed)") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(params).__name__}")
    return params


def load_params(path: str | Path) -> dict[str, Any]:
    return load_yaml(path, "parameter file")


# The top-level sections of params.yaml; any other is a typo (``trian:``) and is refused.
SECTIONS = ("census", "seeds", "train_models", "zoo_models", "mmoe_table_models", "three_task_models", "weighting_grid", "train", "model_common", "models", "synthetic",
            "verdicts", "tune", "profiles", "aliexpress", "ali_ccp")


def check_sections(params: Mapping[str, Any], where: str) -> None:
    """Refuse a top-level key of ``params`` that is not one of :data:`SECTIONS`."""
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(map(repr, unknown))} in {where}; the sections are "
                          f"{', '.join(SECTIONS)}")


def section(params: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    """``params[k1][k2]...``, with an error naming the missing key path."""
    node: Any = params
    for depth, key in enumerate(keys):
        if not isinstance(node, Mapping) or key not in node:
            raise ConfigError(f"params.yaml has no section {'.'.join(keys[: depth + 1])!r}")
        node = node[key]
    return node or {}


def apply_profile(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``params`` with the profile ``profiles.NAME`` merged over it: a profile's mappings merge key
    by key into the sections of the same name, and anything else (a list, a number) replaces the
    value it names. A profile may only change sections that exist (a typo is refused, not added)."""
    profiles = params.get("profiles") or {}
    if name not in profiles:
        raise ConfigError(f"--profile {name!r}: params.yaml has no profiles.{name}; profiles: {', '.join(profiles) or 'none'}")
    profile = profiles[name] or {}
    unknown = sorted(set(profile) - set(params) - {"profiles"})
    if unknown or "profiles" in profile:
        raise ConfigError(f"profiles.{name} changes {', '.join(unknown or ['profiles'])}, which params.yaml has no "
                          f"section for (a profile can change: {', '.join(k for k in params if k != 'profiles')})")
    return _merge(params, profile)


def profile_overrides(params: Mapping[str, Any], name: str) -> list[str]:
    """Profile ``name`` as ``KEY.PATH=VALUE`` overrides, one per value it sets (a mapping contributes
    its leaves, anything else is one value; lists as ``[a,b]``): what ``dvc exp run -S`` takes to
    run the pipeline with the profile applied, the same merge as :func:`apply_profile`."""
    apply_profile(params, name)  # refuses an unknown profile or section

    def leaves(prefix: str, value: Any) -> list[str]:
        if isinstance(value, Mapping) and value:
            return [item for key, sub in value.items() for item in leaves(f"{prefix}.{key}", sub)]
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip().removesuffix("...").strip()
        if any(c.isspace() for c in text.replace(", ", ",")):
            raise ConfigError(f"profiles.{name}: the value of {prefix} ({text}) would need quoting on a command line")
        return [f"{prefix}={text.replace(', ', ',')}"]

    return [item for key, value in (params["profiles"][name] or {}).items() for item in leaves(key, value)]


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key (keys the base lacks are added; their values are checked where the
    section is read); any other value replaces the base's."""
    merged = dict(base)
    for key, value in overlay.items():
        old = base.get(key)
        merged[key] = _merge(old, value) if isinstance(value, Mapping) and isinstance(old, Mapping) else value
    return merged


def _key(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _check_type(where: str, value: Any, annotation: Any) -> Any:
    """``value`` checked against ``annotation`` (a type, ``Literal``, ``dict[str, T]``, ``list[T]``, a
    union of these, or a dataclass, built from a mapping with :func:`from_mapping`)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        choices = [a for a in options if a is not type(None)]
        errors = []
        for option in choices:
            try:
                return _check_type(where, value, option)
            except ConfigError as error:
                errors.append(error)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{where} = {value!r}: expected {' or '.join(map(_type_name, choices))}, got "
                          f"{type(value).__name__}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} = {value!r}: expected a mapping")
        return from_mapping(annotation, value, where)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} = {value!r}: expected a mapping")
        _, value_type = typing.get_args(annotation)
        return {str(k): _check_type(_key(where, k), v, value_type) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} = {value!r}: expected a list, got {type(value).__name__}")
        (item_type,) = typing.get_args(annotation)
        return [_check_type(f"{where}[{i}]", item, item_type) for i, item in enumerate(value)]
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(f"{where} = {value!r}: allowed values are {', '.join(map(repr, allowed))}")
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool) or not isinstance(value, annotation):
        raise ConfigError(f"{where} = {value!r}: expected {annotation.__name__}, got {type(value).__name__}")
    return value


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is list:
        return "a list"
    if origin is dict or dataclasses.is_dataclass(annotation):
        return "a mapping"
    return getattr(annotation, "__name__", str(annotation))


def from_mapping(cls: type, mapping: Mapping[str, Any], where: str):
    """Build dataclass ``cls`` from ``mapping``: unknown and missing keys and wrong types are refused,
    each named by its path from ``where`` (nested dataclasses are built the same way)."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(_key(where, k) for k in unknown)}; allowed keys: {', '.join(fields)}")
    required = [name for name, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in mapping]
    if missing:
        raise ConfigError(f"missing key(s) {', '.join(_key(where, k) for k in missing)}; required keys: "
                          f"{', '.join(required)}")
    hints = typing.get_type_hints(cls)
    values = {k: _check_type(_key(where, k), v, hints[k]) for k, v in mapping.items()}
    obj = cls(**values)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(where)
    return obj


def require(condition: bool, where: str, key: str, value: Any, allowed: str) -> None:
    if not condition:
        raise ConfigError(f"{_key(where, key)} = {value!r}: {allowed}")
