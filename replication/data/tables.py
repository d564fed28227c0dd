"""The raw tables a data spec names, read chunk by chunk (:mod:`replication.data.spec`).

A table yields pandas frames of a fixed number of rows (the last one shorter) holding only the columns
asked for: feature and label columns named in ``numbers`` as float64, every other one as text. So a
multi-GB file is never held whole, and every chunk of a file has the same rows whatever the reader,
which keeps the chunked training statistics (:class:`replication.data.prepare.Encoder`) reproducible.

- CSV (``.csv``, ``.csv.gz`` ...: pandas infers the compression): ``pandas.read_csv`` with
  ``chunksize``; text kept as written (no "NA" guessing), an empty number field is a missing value.
  A value that is not a number is reported with its column and data row.
- Parquet (``.parquet``, ``.pq``): pyarrow record batches, re-cut to the chunk size.
- A built-in parser (the spec's ``loader``) for a raw format no table option describes:
  ``census`` (:class:`replication.data.census.CensusFile`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import pandas as pd

from replication.data.census import CensusFile
from replication.data.spec import DataSpec, PrepareError

PARQUET_SUFFIXES = (".parquet", ".pq")


class Table(Protocol):
    path: Path

    def columns(self) -> list[str]:
        """The table's column names, in file order."""

    def chunks(self, columns: Sequence[str], numbers: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        """Frames of ``rows`` rows (the last shorter) with ``columns``, those in ``numbers`` as float64."""


def _not_a_number(frame: pd.DataFrame, numbers: Sequence[str], path: Path, first_row: int) -> str | None:
    """The first value of a ``numbers`` column that is not a number, as a message naming its row."""
    for column in numbers:
        text = frame[column].astype(str).str.strip()
        parsed = pd.to_numeric(text.where(text != "", np.nan), errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy() & (text != "").to_numpy())
        if bad.size:
            return (f"{path}, data row {first_row + int(bad[0]) + 1}: column {column!r} is {text.iat[bad[0]]!r}, "
                    f"not a number ({bad.size} such value(s) in that chunk); fix the file, or declare the column "
                    f"categorical in the spec")
    return None


class CsvTable:
    """A CSV file, with a header row unless ``names`` (the spec's ``columns``) are given."""

    def __init__(self, path: Path, names: Sequence[str] | None = None) -> None:
        self.path = path
        self.names = list(names) if names else None

    def _reader(self, columns: Sequence[str], dtypes: dict, rows: int, na_values: dict):
        return pd.read_csv(self.path, chunksize=rows, usecols=list(columns), dtype=dtypes, header=None if self.names else 0,
                           names=self.names, keep_default_na=False, na_values=na_values)

    def columns(self) -> list[str]:
        if self.names:
            return list(self.names)
        try:
            return [str(c) for c in pd.read_csv(self.path, nrows=0).columns]
        except pd.errors.EmptyDataError:
            raise PrepareError(f"{self.path} is empty; it needs a header row naming its columns") from None

    def chunks(self, columns: Sequence[str], numbers: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        dtypes = {c: (np.float64 if c in numbers else str) for c in columns}
        empty_is_missing = {c: [""] for c in numbers}
        try:
            for chunk in self._reader(columns, dtypes, rows, empty_is_missing):
                yield chunk[list(columns)]
        except pd.errors.ParserError as error:
            raise PrepareError(f"{self.path} is not a well-formed CSV table: {error}") from None
        except ValueError:
            # A value pandas cannot read as a number: read the file again as text to name it.
            offset = 0
            for chunk in self._reader(columns, {c: str for c in columns}, rows, {}):
                problem = _not_a_number(chunk, numbers, self.path, offset)
                if problem:
                    raise PrepareError(problem) from None
                offset += len(chunk)
            raise


class ParquetTable:
    """A Parquet file, read in record batches (pyarrow)."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except Exception as error:  # pyarrow's errors (ArrowInvalid, OSError) for a file that is not Parquet
            raise PrepareError(f"{path} cannot be read as Parquet ({type(error).__name__}: {error})") from None

    def columns(self) -> list[str]:
        return list(self._file.schema_arrow.names)

    def chunks(self, columns: Sequence[str], numbers: Sequence[str], rows: int) -> Iterator[pd.DataFrame]:
        batches = (b.to_pandas() for b in self._file.iter_batches(batch_size=rows, columns=list(columns)))
        offset = 0
        for frame in _recut(batches, rows):
            problem = _not_a_number(frame, [c for c in numbers if not pd.api.types.is_numeric_dtype(frame[c])],
                                    self.path, offset)
            if problem:
                raise PrepareError(problem)
            offset += len(frame)
            yield pd.DataFrame({c: (pd.to_numeric(frame[c]).astype(np.float64) if c in numbers
                                    else frame[c].astype(str).where(frame[c].notna(), "")) for c in columns})


def _recut(frames: Iterator[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """The rows of ``frames`` again, in frames of exactly ``rows`` rows (the last shorter)."""
    buffer: list[pd.DataFrame] = []
    held = 0
    for frame in frames:
        buffer.append(frame)
        held += len(frame)
        while held >= rows:
            joined = pd.concat(buffer, ignore_index=True)
            yield joined.iloc[:rows]
            rest = joined.iloc[rows:]
            buffer, held = ([rest] if len(rest) else []), len(rest)
    if held:
        yield pd.concat(buffer, ignore_index=True)


def open_table(spec: DataSpec, path: Path) -> Table:
    """The reader of one raw file of ``spec``: its built-in loader, else CSV or Parquet by suffix."""
    if not path.is_file():
        raise PrepareError(f"{path} does not exist; {spec.obtain}")
    if spec.loader == "census":
        return CensusFile(path, spec.columns or (), spec.features.numeric, spec.obtain)
    if spec.loader != "table":
        raise PrepareError(f"{spec.path}: loader {spec.loader!r} is not a built-in loader; use table (CSV or Parquet) "
                           f"or census")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return ParquetTable(path)
    return CsvTable(path, spec.columns)
