"""A processed data set checked against its ``schema.json`` before anything trains on it.

:func:`replication.data.processed.load_processed` checks the arrays' hash; a folder whose split file
is missing, cut short, or whose arrays disagree with the schema (row counts, columns, dtypes) would
otherwise fail deep inside numpy or torch, or train on the wrong shape. This module reads only the
arrays' headers (no data), so the check costs milliseconds, and names the file and the fix.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from replication.data.processed import REPLICATES_FILE, SPLITS, DataError, replicate_folder

RECREATE = "create it again (`dvc repro`, or `python -m replication prepare`/`synth` with --out that folder)"


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path} does not exist, so {path.parent} is not a processed data set; {RECREATE}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); {RECREATE}") from None


def array_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """(shape, dtype) of every array of an ``.npz`` file, read from the headers alone."""
    if not path.is_file():
        raise DataError(f"split file {path} is missing; {RECREATE}")
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                with archive.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(member)
                headers[name.removesuffix(".npy")] = (shape, dtype)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as error:
        raise DataError(f"split file {path} cannot be read ({type(error).__name__}: {error}); it was cut short or "
                        f"damaged; {RECREATE}") from None
    return headers


def expected_arrays(schema: dict, split: str) -> dict[str, tuple[int, int, str]]:
    """What the schema says a split's arrays are: name -> (rows, columns, dtype kind: i integer, f float)."""
    rows = int(schema["splits"][split]["rows"])
    features = schema["features"]
    return {"x_cat": (rows, len(features["categorical"]), "i"), "x_num": (rows, len(features["numeric"]), "f"),
            "y": (rows, len(schema["tasks"]), "f")}


def check_split(directory: Path, schema: dict, split: str) -> None:
    """Refuse a split file whose arrays disagree with ``schema``, naming each disagreement."""
    path = directory / f"{split}.npz"
    headers = array_headers(path)
    problems = []
    for name, (rows, columns, kind) in expected_arrays(schema, split).items():
        if name not in headers:
            problems.append(f"no array {name}")
            continue
        shape, dtype = headers[name]
        if shape != (rows, columns):
            problems.append(f"{name} has shape {shape}, the schema says ({rows}, {columns})")
        if dtype.kind not in (kind, "u" if kind == "i" else kind):
            problems.append(f"{name} has dtype {dtype}, the schema's model needs {'integers' if kind == 'i' else 'floats'}")
    if problems:
        raise DataError(f"split file {path} does not match {directory / 'schema.json'}: {'; '.join(problems)}; "
                        f"{RECREATE}")


def check_processed(directory: str | Path) -> None:
    """Refuse a processed data set (or every replicate of a replicate set) whose schema is missing
    or malformed, whose split file is missing or unreadable, or whose arrays disagree with the schema."""
    directory = Path(directory)
    if (directory / REPLICATES_FILE).is_file():
        manifest = _read_json(directory / REPLICATES_FILE)
        for seed in manifest.get("replicates", {}):
            check_processed(replicate_folder(directory, int(seed)))
        return
    schema = _read_json(directory / "schema.json")
    try:
        for split in SPLITS:
            check_split(directory, schema, split)
    except (KeyError, TypeError) as error:
        raise DataError(f"{directory / 'schema.json'} lacks or misstates {error} (it needs features.categorical, "
                        f"features.numeric, tasks and splits.<split>.rows); {RECREATE}") from None
