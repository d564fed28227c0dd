"""A data set as data, not code: the spec file (YAML) that ``python -m replication prepare`` turns
into the processed format every model and stage reads (:mod:`replication.data.processed`).

A spec declares (``replication/data/specs/*.yaml`` are the built-in ones, each commented):

- ``name``; ``source`` (publisher, licence, paper: the datasheet's source); ``obtain`` (how a user gets
  the raw files: the fix every "wrong or missing file" message gives);
- ``loader``: ``table`` (CSV, gzipped or not, read in chunks; or Parquet, by the file's suffix), or a
  built-in parser for a raw format no table option describes (``census``:
  :func:`replication.data.census.read_raw`); ``columns``: the names of a headerless file's columns;
- ``files``: the published SHA-256 and row count of a raw file, where its publisher gives them;
- ``splits``: ``train``, ``validation`` and ``test``, each from a raw file. Splits that share a file
  take seeded random parts of its rows: each with a ``fraction`` takes that share (rounded down),
  the one without takes the rest (the MMoE paper's 1:1 split of census' test file is
  ``validation: {file: census-income.test, fraction: 0.5}`` beside ``test: {file: census-income.test}``);
  ``split_seed`` seeds the permutation;
- ``features``: ``categorical`` and ``numeric`` columns, the numeric transform (``standardise``,
  ``log1p_standardise`` or ``none``; statistics from the training rows only) and ``numeric_buckets``
  (N >= 2 also embeds each numeric column's training-quantile bucket), and ``drop``: every other
  column, the label columns included, so that no column enters the features unnoticed;
- ``tasks``: name -> ``column``, ``type`` (``binary`` or ``regression``), an optional derivation
  ``positive`` (the label is 1 where the column's text is that value, or one of those values, else 0)
  and a ``definition`` for the datasheet (with a list of positive values, the sorted values follow it);
- ``task_groups``: name -> its tasks, the main task first (``train.selection: main_task`` selects on
  it; the MMoE paper's census groups list income and education first).

:func:`load_spec` refuses an unknown key, a missing key, a wrong type and an inconsistent declaration,
naming the key and the file (:class:`SpecError`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from replication.config import ConfigError, from_mapping, load_yaml, require
from replication.data.processed import SPLITS

SPECS_DIR = Path(__file__).parent / "specs"
NUMERIC_TRANSFORMS = {
    "standardise": "standardised with the training mean and std",
    "log1p_standardise": "log1p, then standardised with the training mean and std",
    "none": "none (used as read)",
}


class PrepareError(ValueError):
    """A raw file, a spec or an option that prepare cannot use; the message says what and how to fix it."""


class SpecError(PrepareError):
    """A data spec that is not valid YAML, lacks a key, has an unknown key or a wrong value."""


@dataclass(frozen=True)
class FileFacts:
    """What the publisher states about one raw file; prepare refuses a file that differs."""

    sha256: str | None = None
    rows: int | None = None

    def validate(self, where: str) -> None:
        require(self.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", self.sha256) is not None, where, "sha256",
                self.sha256, "must be 64 lowercase hexadecimal digits (`sha256sum FILE` prints it)")
        require(self.rows is None or self.rows >= 1, where, "rows", self.rows, "must be >= 1")


@dataclass(frozen=True)
class SplitSource:
    file: str
    fraction: float | None = None  # None: the rows of the file that no other split takes

    def validate(self, where: str) -> None:
        require(self.fraction is None or 0 < self.fraction < 1, where, "fraction", self.fraction,
                "must lie strictly between 0 and 1")


@dataclass(frozen=True)
class Features:
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    numeric_transform: Literal["standardise", "log1p_standardise", "none"] = "standardise"
    numeric_buckets: int = 0
    drop: list[str] = field(default_factory=list)

    def validate(self, where: str) -> None:
        require(self.numeric_buckets == 0 or self.numeric_buckets >= 2, where, "numeric_buckets",
                self.numeric_buckets, "use 0 (off) or at least 2 quantile buckets")
        named = Counter([*self.categorical, *self.numeric, *self.drop])
        twice = sorted(c for c, n in named.items() if n > 1)
        if twice:
            raise ConfigError(f"{where}: column(s) {', '.join(map(repr, twice))} appear more than once among "
                              f"categorical, numeric and drop; give each column one role")


@dataclass(frozen=True)
class TaskColumn:
    column: str
    type: Literal["binary", "regression"]
    positive: str | list[str] | None = None
    definition: str | None = None

    def validate(self, where: str) -> None:
        require(self.positive is None or self.type == "binary", where, "positive", self.positive,
                "derives a binary label; a regression task reads its column as numbers")

    def describe(self) -> str:
        """The task's definition in the datasheet."""
        if isinstance(self.positive, list):
            head = self.definition or f"{self.column} is one of"
            return f"{head}: {'; '.join(sorted(self.positive))}"
        if self.definition:
            return self.definition
        if self.positive is not None:
            return f"{self.column} == {self.positive!r}"
        return f"{self.column} (0 or 1)" if self.type == "binary" else f"{self.column}"


@dataclass(frozen=True)
class DataSpec:
    name: str
    source: str
    obtain: str
    splits: dict[str, SplitSource]
    features: Features
    tasks: dict[str, TaskColumn]
    task_groups: dict[str, list[str]]
    loader: str = "table"
    columns: list[str] | None = None
    files: dict[str, FileFacts] = field(default_factory=dict)
    split_seed: int = 0
    # The file the spec was read from (set by load_spec; not a key of the file).
    path: Path = field(default=Path("<spec>"), init=False, compare=False)

    def validate(self, where: str) -> None:
        if sorted(self.splits) != sorted(SPLITS):
            raise ConfigError(f"splits names {', '.join(self.splits) or 'nothing'}; it must name exactly "
                              f"{', '.join(SPLITS)}")
        for file, names in self.splits_by_file().items():
            rest = [s for s in names if self.splits[s].fraction is None]
            if len(rest) != 1:
                raise ConfigError(f"splits {', '.join(names)} share file {file!r}: exactly one of them must have no "
                                  f"fraction (it takes the rows the others leave), not {len(rest)}")
            total = sum(self.splits[s].fraction or 0.0 for s in names)
            if total >= 1:
                raise ConfigError(f"the fractions of splits {', '.join(names)} (file {file!r}) sum to {total:g}; they "
                                  f"must leave rows for the split without a fraction (sum below 1)")
        unused = sorted(set(self.files) - set(self.splits_by_file()))
        if unused:
            raise ConfigError(f"files names {', '.join(map(repr, unused))}, which no split reads; the split files are "
                              f"{', '.join(self.splits_by_file())}")
        features = {*self.features.categorical, *self.features.numeric}
        for name, task in self.tasks.items():
            if task.column in features:
                raise ConfigError(f"tasks.{name}.column = {task.column!r} is also a feature; a label must never be "
                                  f"an input: move it from features to features.drop")
            if task.column not in self.features.drop:
                raise ConfigError(f"tasks.{name}.column = {task.column!r} is not in features.drop; list every column "
                                  f"that is not a feature there, labels included")
        require(bool(self.task_groups), where, "task_groups", self.task_groups, "name at least one group of tasks")
        for group, tasks in self.task_groups.items():
            unknown = [t for t in tasks if t not in self.tasks]
            if unknown:
                raise ConfigError(f"task_groups.{group} names unknown task(s) {', '.join(map(repr, unknown))}; the "
                                  f"tasks are {', '.join(self.tasks)}")
            require(len(tasks) >= 2 and len(set(tasks)) == len(tasks), "task_groups", group, tasks,
                    "needs two or more distinct tasks (the first is the main task)")
        if self.loader != "table" and not self.columns:
            raise ConfigError(f"loader {self.loader!r} reads headerless files: name their columns in `columns`")
        if self.columns is not None:
            unplaced = sorted(set(self.columns) - features - set(self.features.drop))
            if unplaced:
                raise ConfigError(f"columns {', '.join(map(repr, unplaced))} have no role; name each under "
                                  f"features.categorical, features.numeric or features.drop")

    def splits_by_file(self) -> dict[str, list[str]]:
        """Raw file -> the splits taken from it, in the order train, validation, test."""
        out: dict[str, list[str]] = {}
        for split in SPLITS:
            out.setdefault(self.splits[split].file, []).append(split)
        return out

    def group(self, name: str | None) -> tuple[str, list[str]]:
        """The task group ``name`` (None: the spec's first) and its tasks, main task first."""
        name = name or next(iter(self.task_groups))
        if name not in self.task_groups:
            raise PrepareError(f"unknown task group {name!r} in {self.path}; choose one of {', '.join(self.task_groups)}")
        return name, self.task_groups[name]

    def feature_columns(self) -> list[str]:
        return [*self.features.categorical, *self.features.numeric]


def load_spec(path: str | Path) -> DataSpec:
    """Read and check a data spec (module docstring); every error names the file and the key."""
    path = Path(path)
    try:
        raw = load_yaml(path, "data spec")
    except ConfigError as error:
        raise SpecError(str(error)) from None
    try:
        spec = from_mapping(DataSpec, raw, "")
    except ConfigError as error:
        raise SpecError(f"data spec {path}: {error} (the keys: replication/data/spec.py)") from None
    object.__setattr__(spec, "path", path)  # frozen; the path is where the spec came from, not a key
    return spec


def builtin_specs() -> dict[str, Path]:
    """The specs shipped with the package: name -> file (``prepare NAME`` reads ``specs/NAME.yaml``)."""
    return {p.stem: p for p in sorted(SPECS_DIR.glob("*.yaml"))}
