"""The leaderboard snapshot: every reference run's record without its predictions, one committed
text file, so that ``compare`` on a fresh clone (where the run folders, DVC outputs, are absent) ranks
a new model against the ten-seed references after training only the new model.

``python -m replication snapshot --runs RUNS --out FILE.json`` writes it (the ``snapshot`` stage of
``dvc.yaml``). The file is JSON: ``format`` (:data:`SNAPSHOT_FORMAT`), ``runs`` (the folder it was
taken from), ``dropped`` (the record keys left out: :data:`DROPPED_KEYS`, the per-epoch history and
the gates' test usage, which no table of ``compare`` or the leaderboard reads) and ``records``, one
record per line, sorted by model and seed: every other key of every ``RUNS/<model>/seed_K.json``,
failed runs included (protocol fields, per-task test and validation metrics, best epochs, parameter
count, seconds, environment, model source). Test predictions are not in it, so tests that need them
(DeLong per seed) cannot run on snapshot references.

Records read back (:func:`load_snapshot`) pass the same checks as run records
(:func:`replication.records.check_record`) and hence the same protocol check in ``compare``;
:func:`check_snapshot` refuses a snapshot that no longer matches its run folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replication.config import ConfigError
from replication.io import write_text
from replication.records import RecordError, check_record, load_all_records

SNAPSHOT_FORMAT = 1
DROPPED_KEYS = ("gates_test", "history", "source")
DEFAULT_SNAPSHOT = Path("results/snapshot/census_income_marital.json")


class SnapshotError(ConfigError):
    """A snapshot that cannot be read, or that no longer matches its run folder."""


def regenerate_command(runs: str | Path, out: str | Path) -> str:
    return f"`python -m replication snapshot --runs {runs} --out {out}` (or `dvc repro snapshot`)"


def _canonical(record: dict) -> str:
    """One record as one line of key-sorted JSON: the snapshot's text and what :func:`check_snapshot` compares."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def snapshot_records(records: list[dict]) -> list[dict]:
    """``records`` without :data:`DROPPED_KEYS`, sorted by model and seed."""
    kept = [{k: v for k, v in r.items() if k not in DROPPED_KEYS} for r in records]
    return sorted(kept, key=lambda r: (r["model"], r["seed"]))


def snapshot_text(runs: Path) -> str:
    """The snapshot of every record under ``runs`` (failed runs included), as the file's text."""
    records = snapshot_records(load_all_records(runs))
    lines = ",\n".join(f"    {_canonical(r)}" for r in records)
    return (f'{{\n  "format": {SNAPSHOT_FORMAT},\n  "runs": {json.dumps(str(runs))},\n'
            f'  "dropped": {json.dumps(list(DROPPED_KEYS))},\n  "records": [\n{lines}\n  ]\n}}\n')


def write_snapshot(runs: Path, out: Path) -> int:
    """Write the snapshot of ``runs`` to ``out`` (atomically: a failure leaves any old file as it was);
    returns the number of records."""
    text = snapshot_text(Path(runs))
    write_text(out, text)
    return len(json.loads(text)["records"])


def _read(path: Path) -> dict[str, Any]:
    """The snapshot file's JSON, refused unless it has this version's format and keys."""
    if not path.is_file():
        raise SnapshotError(f"snapshot {path} does not exist; pass --snapshot with a file written by "
                            f"`python -m replication snapshot`, or --runs with run folders")
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SnapshotError(f"snapshot {path} is not valid JSON ({error}); it was cut short or edited. Restore it "
                            f"with `git checkout -- {path}` or regenerate it from the run folder") from None
    if (not isinstance(snapshot, dict) or snapshot.get("format") != SNAPSHOT_FORMAT
            or not isinstance(snapshot.get("runs"), str) or not isinstance(snapshot.get("records"), list)):
        raise SnapshotError(f"snapshot {path} is not a snapshot of format {SNAPSHOT_FORMAT} (a JSON object with "
                            f"format, runs and records); regenerate it with "
                            f"{regenerate_command('RUNS', path)}")
    return snapshot


def load_snapshot(path: Path) -> list[dict]:
    """The snapshot's records, failed runs included, each checked as a run record is
    (:func:`replication.records.check_record`); ``source`` names the snapshot and the record's place
    in the run folder, ``snapshot`` the snapshot file (no predictions lie beside it)."""
    path = Path(path)
    snapshot = _read(path)
    records = []
    for index, record in enumerate(snapshot["records"]):
        place = (f"{record.get('model')}/seed_{record.get('seed')}.json" if isinstance(record, dict)
                 else f"record {index}")
        try:
            checked = check_record(record, Path(f"{path}#{place}"))
        except RecordError as error:
            raise SnapshotError(f"{error}. In a snapshot: regenerate it with "
                                f"{regenerate_command(snapshot['runs'], path)}") from None
        records.append(checked | {"snapshot": str(path)})
    if not records:
        raise SnapshotError(f"snapshot {path} holds no records; regenerate it with "
                            f"{regenerate_command(snapshot['runs'], path)}")
    return records


def snapshot_runs(path: Path) -> Path:
    """The run folder a snapshot was taken from."""
    return Path(_read(Path(path))["runs"])


def check_snapshot(path: Path, runs: Path | None = None) -> None:
    """Refuse a snapshot that differs from what ``runs`` (default: the folder it was taken from) gives
    now: a run missing from either side, or a record whose kept fields differ, named with the command
    that regenerates it."""
    path = Path(path)
    snapshot = _read(path)
    runs = Path(runs) if runs is not None else Path(snapshot["runs"])
    stored = {(r.get("model"), r.get("seed")): _canonical(r) for r in snapshot["records"] if isinstance(r, dict)}
    current = {(r["model"], r["seed"]): _canonical(r) for r in snapshot_records(load_all_records(runs))}
    problems = [f"{m} seed {s} is in {runs} but not in the snapshot" for m, s in sorted(current.keys() - stored.keys())]
    problems += [f"{m} seed {s} is in the snapshot but not in {runs}" for m, s in sorted(stored.keys() - current.keys())]
    for key in sorted(current.keys() & stored.keys()):
        if current[key] != stored[key]:
            old, new = json.loads(stored[key]), json.loads(current[key])
            fields = sorted(k for k in old.keys() | new.keys() if _canonical({"v": old.get(k)}) != _canonical({"v": new.get(k)}))
            problems.append(f"{key[0]} seed {key[1]} differs in {', '.join(fields)}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise SnapshotError(f"snapshot {path} is stale: it no longer matches the runs under {runs} ({shown}). "
                            f"Regenerate it with {regenerate_command(runs, path)} and commit it")
