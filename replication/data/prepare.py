"""``python -m replication prepare``: a data spec's raw tables (:mod:`replication.data.spec`) -> the
processed format every model and stage reads (:mod:`replication.data.processed`): ``train.npz``,
``validation.npz``, ``test.npz`` and ``schema.json``.

Every raw file is read in chunks of :data:`CHUNK_ROWS` rows (:mod:`replication.data.tables`), so a
multi-GB file is never held whole; only the processed arrays are. The passes:

1. check: each file exists and has the spec's columns (a missing one is named, with the columns the
   file has); its rows are counted and its binary labels checked to be 0 or 1; its row count and
   SHA-256 are compared with the published ones (``files``), then the label findings are reported;
2. split: each row's split, from one seeded permutation of its file's rows (``splits``, ``split_seed``);
3. fit: categorical vocabularies and numeric statistics on the training rows alone (:class:`Encoder`);
4. write: features encoded, labels derived, and each row put in its split's arrays, in file order.

The output folder is filled beside its place and renamed into it once complete
(:func:`replication.io.staged_directory`), so any failure leaves no partial folder.

The encoding is the MMoE paper's census protocol made general (Ma et al. 2018, Sec. 5.2, which fixes
train-only fitting by its train/test files; the rest is this project's choice, recorded in
``params.yaml`` and ``data/README.md``): one code per categorical value seen in training, in sorted
order, 0 reserved for a value unseen in training; numeric columns standardised with the training
mean and population std (a constant column keeps std 1), after ``log1p`` where the spec says so.
The statistics are computed per chunk and combined (the pairwise update of Chan, Golub and LeVeque,
1979), so a training split of one chunk, census' included, gets pandas' own mean and std.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from replication.data.exact import pearson
from replication.data.processed import SPLITS, data_hash
from replication.data.spec import NUMERIC_TRANSFORMS, DataSpec, PrepareError, TaskColumn
from replication.data.tables import Table, open_table
from replication.io import save_npz, sha256_file, staged_directory, write_json
from replication.progress import log

# Rows per chunk: every reader cuts its file at these rows, and the training statistics are combined
# from chunk statistics, so this constant is part of the processed data's recipe (census' files are
# one chunk each).
CHUNK_ROWS = 1 << 18


def pre_scale(frame: pd.DataFrame, numeric: Sequence[str], transform: str) -> pd.DataFrame:
    """The numeric columns before standardisation: ``log1p`` for ``log1p_standardise``."""
    values = frame[list(numeric)].astype(np.float64)
    return np.log1p(values) if transform == "log1p_standardise" else values


@dataclass(frozen=True)
class Encoder:
    """Categorical vocabularies and numeric scaling, fitted on training rows only (module docstring)."""

    vocab: dict[str, tuple[str, ...]]  # column -> sorted values seen in training (code = index + 1)
    numeric: tuple[str, ...]
    numeric_transform: str  # a key of spec.NUMERIC_TRANSFORMS
    mean: dict[str, float]
    std: dict[str, float]
    # Optional: numeric column -> interior quantile edges; its bucket becomes an extra categorical feature.
    edges: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @classmethod
    def fit(cls, chunks: Iterable[pd.DataFrame], categorical: Sequence[str], numeric: Sequence[str],
            numeric_transform: str = "standardise", numeric_buckets: int = 0) -> "Encoder":
        """Fit on the training rows, given as frames (one or more chunks)."""
        seen: dict[str, set] = {c: set() for c in categorical}
        moments: list[tuple[int, pd.Series, pd.Series]] = []  # (rows, mean, population variance) per chunk
        kept: list[pd.DataFrame] = []  # the pre-scaled values, for quantile buckets (which need them all)
        for chunk in chunks:
            if not len(chunk):
                continue
            for c in categorical:
                seen[c].update(chunk[c].unique())
            num = pre_scale(chunk, numeric, numeric_transform)
            moments.append((len(num), num.mean(), num.var(ddof=0)))
            if numeric_buckets > 1:
                kept.append(num)
        if not moments:
            raise PrepareError("the training split has no rows; check the spec's splits")
        mean, var = _combine(moments)
        std = np.sqrt(var).replace(0.0, 1.0)
        edges = {}
        if numeric_buckets > 1:
            num = kept[0] if len(kept) == 1 else pd.concat(kept)
            quantiles = np.linspace(0, 1, numeric_buckets + 1)[1:-1]
            edges = {c: tuple(np.unique(np.quantile(num[c], quantiles))) for c in numeric}
        return cls({c: tuple(sorted(seen[c])) for c in categorical}, tuple(numeric), numeric_transform, mean.to_dict(),
                   std.to_dict(), edges)

    def categorical_features(self) -> list[dict]:
        """Name and cardinality (code 0 included) of every categorical feature, in column order."""
        return [{"name": c, "cardinality": len(v) + 1} for c, v in self.vocab.items()] + [
            {"name": f"{c}_bucket", "cardinality": len(e) + 2} for c, e in self.edges.items()]

    @functools.cached_property
    def _indexes(self) -> dict[str, pd.Index]:
        return {c: pd.Index(values) for c, values in self.vocab.items()}

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``x_cat`` int64 (rows, categorical + bucket features) and ``x_num`` float32 (rows, numeric)."""
        num = pre_scale(frame, self.numeric, self.numeric_transform)
        x_cat = np.empty((len(frame), len(self.vocab) + len(self.edges)), dtype=np.int64)
        for j, (c, index) in enumerate(self._indexes.items()):
            x_cat[:, j] = index.get_indexer(frame[c]) + 1  # unseen values get -1, hence the reserved code 0
        for j, (c, e) in enumerate(self.edges.items(), start=len(self.vocab)):
            x_cat[:, j] = np.searchsorted(e, num[c].to_numpy(), side="right") + 1
        if self.numeric_transform == "none" or not self.numeric:
            return x_cat, num.to_numpy(np.float32)
        return x_cat, ((num - pd.Series(self.mean)) / pd.Series(self.std)).to_numpy(np.float32)


def _combine(moments: list[tuple[int, pd.Series, pd.Series]]) -> tuple[pd.Series, pd.Series]:
    """Mean and population variance of the union of chunks from theirs (one chunk: its own, exactly)."""
    if len(moments) == 1:
        return moments[0][1], moments[0][2]
    total = sum(n for n, _, _ in moments)
    mean = sum(n * m for n, m, _ in moments) / total
    var = sum(n * (v + (m - mean) ** 2) for n, m, v in moments) / total
    return mean, var


def labels(frame: pd.DataFrame, tasks: Sequence[tuple[str, TaskColumn]]) -> np.ndarray:
    """(rows, tasks) float32: a derived label is 1 where the column's text is a positive value, else 0;
    any other is the column's number (NaN: missing)."""
    y = np.empty((len(frame), len(tasks)), dtype=np.float32)
    for k, (_, task) in enumerate(tasks):
        if task.positive is None:
            y[:, k] = frame[task.column].to_numpy(np.float32)
        else:
            positive = task.positive if isinstance(task.positive, list) else [task.positive]
            y[:, k] = frame[task.column].isin(positive).to_numpy(np.float32)
    return y


def assign_rows(n_rows: int, fractions: Sequence[float | None], seed: int) -> np.ndarray:
    """Each row's part (index into ``fractions``) of one file: with one part, every row; else the
    parts with a fraction take that share (rounded down) of ``numpy.random.default_rng(seed)``'s
    permutation of the rows, in turn, and the part without one takes the rest. Rows keep file order
    within each part. (The MMoE census split: fractions (0.5, None) of the test file.)"""
    rest = next(k for k, f in enumerate(fractions) if f is None)
    parts = np.full(n_rows, rest, dtype=np.int8)
    if len(fractions) == 1:
        return parts
    order = np.random.default_rng(seed).permutation(n_rows)
    start = 0
    for k, fraction in enumerate(fractions):
        if fraction is not None:
            count = int(n_rows * fraction)
            parts[order[start:start + count]] = k
            start += count
    return parts


@dataclass
class _LabelFinding:
    count: int = 0
    first_row: int = 0
    first_value: float = 0.0


def _check_columns(spec: DataSpec, table: Table, tasks: Sequence[tuple[str, TaskColumn]]) -> None:
    """Refuse a file lacking a column the spec names (listing the columns it has), or holding one the
    spec gives no role."""
    have = table.columns()
    named = {c: "features.categorical" for c in spec.features.categorical}
    named |= {c: "features.numeric" for c in spec.features.numeric}
    named |= {c: "features.drop" for c in spec.features.drop}
    named |= {t.column: f"tasks.{name}.column" for name, t in tasks}
    missing = [c for c in named if c not in have]
    if missing:
        where = "; ".join(f"{c!r} ({named[c]})" for c in missing)
        raise PrepareError(f"{table.path} has no column {where} of {spec.path}; its columns are: {', '.join(have)}")
    unplaced = [c for c in have if c not in named]
    if unplaced:
        raise PrepareError(f"{table.path} has column(s) {', '.join(map(repr, unplaced))} that {spec.path} gives no role; "
                           f"name each under features.categorical, features.numeric or features.drop")


def _check_file(spec: DataSpec, file: str, table: Table, tasks: Sequence[tuple[str, TaskColumn]]) -> tuple[int, str]:
    """Pass 1 over one file (module docstring): its row count and SHA-256, after the checks."""
    facts = spec.files.get(file)
    checked = [(name, t) for name, t in tasks if t.type == "binary" and t.positive is None]
    columns = list(dict.fromkeys(t.column for _, t in tasks))
    numbers = [t.column for _, t in tasks if t.positive is None]
    findings = {name: _LabelFinding() for name, _ in checked}
    rows = 0
    for chunk in table.chunks(columns, numbers, CHUNK_ROWS):
        for name, task in checked:
            values = chunk[task.column].to_numpy(np.float64)
            bad = np.flatnonzero(~(np.isnan(values) | (values == 0) | (values == 1)))
            if bad.size:
                finding = findings[name]
                if not finding.count:
                    finding.first_row, finding.first_value = rows + int(bad[0]) + 1, float(values[bad[0]])
                finding.count += bad.size
        rows += len(chunk)
    if facts is not None and facts.rows is not None and rows != facts.rows:
        raise PrepareError(f"{table.path} has {rows} rows, expected {facts.rows} (files.{file}.rows in {spec.path}): "
                           f"it is not the published file, or it was cut short; {spec.obtain}")
    digest = sha256_file(table.path)
    if facts is not None and facts.sha256 is not None and digest != facts.sha256:
        raise PrepareError(f"{table.path} has SHA-256 {digest}, expected {facts.sha256} (files.{file}.sha256 in "
                           f"{spec.path}): it is not the published file, or it is damaged; {spec.obtain}")
    for name, finding in findings.items():
        if finding.count:
            column = spec.tasks[name].column
            raise PrepareError(f"task {name!r} is binary, but column {column!r} of {table.path} holds {finding.first_value:g} "
                               f"(data row {finding.first_row}) and {finding.count} row(s) in all outside {{0, 1}}; a "
                               f"binary label is 0 or 1 (empty: missing): fix the file, or derive the label with "
                               f"tasks.{name}.positive in {spec.path}")
    return rows, digest


def _feature_chunks(spec: DataSpec, table: Table, tasks: Sequence[tuple[str, TaskColumn]]) -> Iterator[tuple[int, pd.DataFrame]]:
    """(first row, chunk) with the feature and label columns, its numeric features checked to be usable."""
    numeric = spec.features.numeric
    columns = list(dict.fromkeys([*spec.feature_columns(), *(t.column for _, t in tasks)]))
    numbers = [*numeric, *(t.column for _, t in tasks if t.positive is None)]
    log1p = spec.features.numeric_transform == "log1p_standardise"
    offset = 0
    for chunk in table.chunks(columns, numbers, CHUNK_ROWS):
        values = chunk[numeric].to_numpy(np.float64)
        usable = np.isfinite(values) & (values > -1 if log1p else True)
        if not usable.all():
            row, col = np.argwhere(~usable)[0]
            raise PrepareError(f"{table.path}, data row {offset + row + 1}: numeric feature {numeric[col]!r} is "
                               f"{values[row, col]!r} ({int((~usable).sum())} such value(s) in that chunk); a numeric "
                               f"feature must be a finite number{' above -1 (log1p)' if log1p else ''}: fill or fix it "
                               f"in the file, or declare the column categorical")
        yield offset, chunk
        offset += len(chunk)


@dataclass
class _Split:
    """One split's arrays, filled chunk by chunk in file order."""

    x_cat: np.ndarray
    x_num: np.ndarray
    y: np.ndarray
    filled: int = 0

    @classmethod
    def empty(cls, rows: int, n_cat: int, n_num: int, n_tasks: int) -> "_Split":
        # x_num column-major, as pandas hands it over: the array file's bytes, so the data hash, record
        # the memory order (census' committed hash was made so).
        return cls(np.empty((rows, n_cat), np.int64), np.empty((rows, n_num), np.float32, order="F"),
                   np.empty((rows, n_tasks), np.float32))

    def append(self, x_cat: np.ndarray, x_num: np.ndarray, y: np.ndarray) -> None:
        end = self.filled + len(y)
        self.x_cat[self.filled:end], self.x_num[self.filled:end], self.y[self.filled:end] = x_cat, x_num, y
        self.filled = end


def prepare(spec: DataSpec, raw_dir: str | Path | None, out_dir: str | Path, *, task_group: str | None = None,
            split_seed: int | None = None, numeric_buckets: int | None = None, name: str | None = None) -> dict:
    """Build the processed arrays and schema of one task group of ``spec`` (module docstring) from the
    raw files in ``raw_dir`` (None: the spec's folder) into ``out_dir``; returns the schema. The
    options override the spec's ``split_seed``, ``features.numeric_buckets`` and ``name``."""
    group, task_names = spec.group(task_group)
    split_seed = spec.split_seed if split_seed is None else split_seed
    buckets = spec.features.numeric_buckets if numeric_buckets is None else numeric_buckets
    if buckets < 0 or buckets == 1:
        raise PrepareError(f"numeric_buckets = {buckets}: use 0 (off) or at least 2 quantile buckets")
    raw_dir = spec.path.parent if raw_dir is None else Path(raw_dir)
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / "schema.json").is_file() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise PrepareError(f"{out_dir} exists and is not a processed data set (no schema.json); prepare replaces its "
                           f"--out whole, so pass a new or empty folder")
    tasks = [(t, spec.tasks[t]) for t in task_names]
    files = spec.splits_by_file()
    tables = {file: open_table(spec, raw_dir / file) for file in files}
    for table in tables.values():
        _check_columns(spec, table, tasks)
    checked = {file: _check_file(spec, file, table, tasks) for file, table in tables.items()}
    parts = {file: assign_rows(checked[file][0], [spec.splits[s].fraction for s in splits], split_seed)
             for file, splits in files.items()}
    encoder = _fit(spec, tables, parts, tasks, buckets)
    splits = _encode(spec, tables, parts, tasks, encoder)
    _check_both_classes(splits, tasks)
    with staged_directory(out_dir) as staging:
        schema = {
            "dataset": name or spec.name,
            "task_group": group,
            "split_seed": split_seed,
            "raw_sha256": {file: digest for file, (_, digest) in checked.items()},
            "features": {
                "categorical": encoder.categorical_features(),
                "numeric": list(spec.features.numeric),
                "numeric_transform": NUMERIC_TRANSFORMS[spec.features.numeric_transform],
                "dropped": list(spec.features.drop),
            },
            "tasks": [{"name": t, "type": task.type, "definition": task.describe()} for t, task in tasks],
            "main_task": task_names[0],
            "label_correlation_train": label_correlation(splits["train"].y),
            "splits": {split: _write_split(staging, split, splits[split], task_names) for split in SPLITS},
            "data_hash": data_hash(staging),
        }
        if buckets:
            schema["features"]["numeric_buckets"] = buckets
        write_json(staging / "schema.json", schema)
    return schema


def _fit(spec: DataSpec, tables: dict[str, Table], parts: dict[str, np.ndarray],
         tasks: Sequence[tuple[str, TaskColumn]], buckets: int) -> Encoder:
    """Pass 3: the encoder, fitted on the training rows of the training file."""
    file = spec.splits["train"].file
    train = spec.splits_by_file()[file].index("train")

    def training_rows() -> Iterator[pd.DataFrame]:
        for offset, chunk in _feature_chunks(spec, tables[file], tasks):
            mask = parts[file][offset:offset + len(chunk)] == train
            yield chunk if mask.all() else chunk[mask]

    log(f"prepare {spec.name}: fitting the encoders on {int((parts[file] == train).sum())} training rows")
    return Encoder.fit(training_rows(), spec.features.categorical, spec.features.numeric,
                       spec.features.numeric_transform, buckets)


def _encode(spec: DataSpec, tables: dict[str, Table], parts: dict[str, np.ndarray],
            tasks: Sequence[tuple[str, TaskColumn]], encoder: Encoder) -> dict[str, _Split]:
    """Pass 4: every file's rows encoded and put in their splits, in file order."""
    n_cat, n_num = len(encoder.categorical_features()), len(spec.features.numeric)
    out = {split: _Split.empty(int((parts[file] == k).sum()), n_cat, n_num, len(tasks))
           for file, splits in spec.splits_by_file().items() for k, split in enumerate(splits)}
    for file, splits in spec.splits_by_file().items():
        for offset, chunk in _feature_chunks(spec, tables[file], tasks):
            x_cat, x_num = encoder.transform(chunk)
            y = labels(chunk, tasks)
            part = parts[file][offset:offset + len(chunk)]
            for k, split in enumerate(splits):
                rows = part == k
                out[split].append(x_cat[rows], x_num[rows], y[rows])
    return out


def _write_split(folder: Path, split: str, arrays: _Split, task_names: Sequence[str]) -> dict:
    """Save one split's arrays; its entry in the schema."""
    save_npz(folder / f"{split}.npz", x_cat=arrays.x_cat, x_num=arrays.x_num, y=arrays.y)
    return {
        "rows": len(arrays.y),
        "label_rate": {t: float(np.nanmean(arrays.y[:, k])) if len(arrays.y) else None for k, t in enumerate(task_names)},
        "unseen_categorical_values": int((arrays.x_cat == 0).sum()),
        "sha256": sha256_file(folder / f"{split}.npz"),
    }


def _check_both_classes(arrays: dict[str, _Split], tasks: Sequence[tuple[str, TaskColumn]]) -> None:
    """Refuse a split where a binary task's labels are all one class: its AUC, by which models are
    selected (validation) and scored (test), would be undefined."""
    for split in SPLITS:
        y = arrays[split].y
        for k, (name, task) in enumerate(tasks):
            present = np.unique(y[:, k][~np.isnan(y[:, k])])
            if task.type == "binary" and len(present) < 2:
                found = f"only label {present[0]:g}" if present.size else "no label"
                raise PrepareError(f"task {name!r} has {found} in the {split} split ({len(y)} rows): its AUC is "
                                   f"undefined, so no model could be selected or scored on it; give the split more rows "
                                   f"(a larger fraction) or try another --split-seed")


def label_correlation(y: np.ndarray) -> float | list[list[float | None]] | None:
    """Pearson correlation of the training labels over the rows where every label is present: one
    number for two tasks, the matrix for more; None where undefined (a constant label)."""
    complete = y if not np.isnan(y).any() else y[~np.isnan(y).any(axis=1)]
    matrix = pearson(complete)  # not np.corrcoef: its BLAS sums differ by CPU (replication/data/exact.py)
    finite = [[float(v) if np.isfinite(v) else None for v in row] for row in np.atleast_2d(matrix)]
    return finite[0][1] if y.shape[1] == 2 else finite
