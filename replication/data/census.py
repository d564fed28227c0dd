"""UCI Census-Income (KDD) under the MMoE paper's protocol (Ma et al. 2018, Sec. 5.2): the data set is
the spec ``replication/data/specs/census.yaml`` (columns, tasks, task groups, splits, official hashes);
this module holds what a table option cannot say, the parser of UCI's raw files (the spec's
``loader: census``), and ``prepare census``, which is ``prepare --spec`` of that spec.

- 199,523 training rows (``census-income.data``); the 99,762 rows of ``census-income.test`` are split
  1:1 at random, by a recorded split seed, into validation and test (49,881 each).
- The instance weight is dropped (a sampling weight, not a feature); education and marital status are
  removed from the features (both are task labels), and so is the income column.
- Categorical codes and numeric scaling are fitted on the training rows only; a value unseen in
  training maps to the reserved code 0 (:mod:`replication.data.prepare`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from replication.data.spec import SPECS_DIR, PrepareError, load_spec

CENSUS_SPEC = SPECS_DIR / "census.yaml"
SPEC = load_spec(CENSUS_SPEC)
COLUMNS = tuple(SPEC.columns or ())
NUMERIC = tuple(SPEC.features.numeric)
DROPPED = tuple(SPEC.features.drop)
TASK_GROUPS = SPEC.task_groups

__all__ = ["CENSUS_SPEC", "COLUMNS", "NUMERIC", "DROPPED", "TASK_GROUPS", "PrepareError", "CensusFile",
           "prepare_census", "read_raw"]


def read_raw(path: Path, columns: Sequence[str] = COLUMNS, numeric: Sequence[str] = NUMERIC,
             obtain: str = SPEC.obtain) -> pd.DataFrame:
    """Read one raw census file as strings, checking every line has the documented columns and a
    number in every numeric column (naming the line of the first that does not)."""
    if not path.is_file():
        raise PrepareError(f"{path} does not exist; {obtain}")
    if path.stat().st_size == 0:
        raise PrepareError(f"{path} is empty; delete it and download it again")
    positions = [list(columns).index(c) for c in numeric]
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.split(",")
            if len(fields) != len(columns):
                raise PrepareError(
                    f"{path}, line {number}: {len(fields)} columns, expected {len(columns)}; "
                    "the file is not the UCI census-income file (download it again; its SHA-256 is checked)"
                )
            for i in positions:
                try:
                    float(fields[i])
                except ValueError:
                    raise PrepareError(
                        f"{path}, line {number}: column {i + 1} ({columns[i]}) is {fields[i].strip()!r}, not a "
                        "number; the file is not the UCI census-income file (download it again)") from None
    frame = pd.read_csv(path, header=None, names=list(columns), dtype=str, skipinitialspace=True,
                        keep_default_na=False)
    return frame.apply(lambda column: column.str.strip())


class CensusFile:
    """One raw census file as a table (:class:`replication.data.tables.Table`): read whole and checked
    by :func:`read_raw` once (the files are 100 MB), then served in chunks like any table."""

    def __init__(self, path: Path, columns: Sequence[str], numeric: Sequence[str], obtain: str) -> None:
        self.path = path
        self._columns = list(columns)
        self._numeric = list(numeric)
        self._obtain = obtain
        self._frame: pd.DataFrame | None = None

    def _read(self) -> pd.DataFrame:
        if self._frame is None:
            self._frame = read_raw(self.path, self._columns, self._numeric, self._obtain)
        return self._frame

    def columns(self) -> list[str]:
        return list(self._columns)

    def chunks(self, columns: Sequence[str], numbers: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        frame = self._read()
        for start in range(0, max(len(frame), 1), rows):
            part = frame.iloc[start:start + rows][list(columns)]
            yield part.astype({c: np.float64 for c in numbers})


def prepare_census(raw_dir: Path, out_dir: Path, task_group: str = "income-marital", split_seed: int = 0,
                   numeric_buckets: int = 0) -> dict:
    """``prepare census``: the census spec prepared for one task group; returns the schema."""
    from replication.data.prepare import prepare

    return prepare(SPEC, raw_dir, out_dir, task_group=task_group, split_seed=split_seed,
                   numeric_buckets=numeric_buckets)
