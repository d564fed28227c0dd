"""Faults in what the table commands read and write, through the command line: run records that are
damaged (not JSON, a key missing, a wrong type) or hold a NaN or infinite metric, a cut predictions
file, two writers of one table, and a disk that fails while the tables are written.

Every command that reads records reads them through :mod:`replication.records`; each case checks the
exit code, the message (one line naming the file and the fix, no traceback), and which files were or
were not written.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replication import io
from replication.cli import main
from replication.io import save_npz, write_json
from tests.conftest import REPO
from tests.test_aggregate import RECORDS
from tests.test_leaderboard import fake_record

pytestmark = pytest.mark.fault

ROWS = 40
OUTPUTS = {"aggregate": ["table.csv", "table.md"], "leaderboard": ["table.csv", "table.md"],
           "stats": ["table"], "experts": ["table"], "sweep": ["table.csv", "table.md"], "figures": ["table"]}


def runs_args(command: str, runs: Path, out: Path) -> list[str]:
    """``command``'s arguments reading ``runs`` (a sweep reads a folder of data-set folders above it)."""
    return [command, "--runs", str(runs.parent if command == "sweep" else runs), "--out", str(out / "table")]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Three seeds of single_task and ple with test predictions (DeLong reads them), as train writes them."""
    folder = tmp_path / "sweep" / "census"
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(ROWS, 2)).astype(float)
    for record in RECORDS:
        path = folder / record["model"] / f"seed_{record['seed']}.json"
        write_json(path, {**record, "seconds": 1.0, "environment": {"device": "cpu", "git_commit": "abc"}})
        save_npz(path.with_name(f"seed_{record['seed']}.test_predictions.npz"),
                 prediction=np.clip(y * 0.6 + rng.random((ROWS, 2)) * 0.4, 0, 1), y=y)
    return folder


def edit_record(runs: Path, model: str, seed: int, change) -> Path:
    """Rewrite one record's JSON text with ``change`` (a function of the record, returning text)."""
    path = runs / model / f"seed_{seed}.json"
    path.write_text(change(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")
    return path


def _metric(value: float):
    return lambda r: json.dumps({**r, "test": {**r["test"], "income": {"auc": value}}})  # json writes NaN, Infinity


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["NaN", "inf"])
def test_a_non_finite_metric_is_a_failed_seed_in_the_aggregate_table(runs: Path, tmp_path: Path, capsys,
                                                                      value: float) -> None:
    """A record of status ok whose test AUC is NaN or infinite: its seed is shown as missing, with
    the reason, and the mean and std are those of the other seeds (never a mean of one seed labelled two)."""
    edit_record(runs, "ple", 1, _metric(value))
    assert main(runs_args("aggregate", runs, tmp_path)) == 0
    note = f"ple seed 1: test auc of income is {value} (not a finite number)"
    assert f"left out: {note}" in capsys.readouterr().err
    table = pd.read_csv(tmp_path / "table.csv", dtype={"seeds": str, "missing_seeds": str}).set_index(["model", "task"])
    row = table.loc[("ple", "income")]
    assert row["n_seeds"] == 2 and row["seeds"] == "0 2" and row["missing_seeds"] == "1"
    assert row["mean"] == pytest.approx(np.mean([0.945, 0.944])) and row["std"] == pytest.approx(np.std([0.945, 0.944], ddof=1))
    markdown = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert "| 2 (missing 1) |" in markdown and note in markdown


@pytest.mark.parametrize("command, code", [("leaderboard", 0), ("stats", 0), ("sweep", 2), ("figures", 2)])
def test_a_non_finite_metric_is_left_out_with_the_same_note_by_every_command(runs: Path, tmp_path: Path, capsys,
                                                                             command: str, code: int) -> None:
    """The leaderboard, stats, sweep and figures read the NaN seed as aggregate does: left out and named
    alike on stderr (the sweep then refuses census runs and figures this lone folder, as they always did,
    after reading them)."""
    edit_record(runs, "ple", 1, _metric(float("nan")))
    assert main(runs_args(command, runs, tmp_path)) == code
    message = capsys.readouterr().err
    assert "left out: ple seed 1: test auc of income is nan (not a finite number)" in message
    assert "Traceback" not in message


BAD_RECORDS = [
    (lambda r: json.dumps(r)[:-40], "is not valid JSON"),
    (lambda r: json.dumps({k: v for k, v in r.items() if k != "status"}), "has no 'status' key"),
    (lambda r: json.dumps({k: v for k, v in r.items() if k != "test"}), "has no 'test' key"),
    (lambda r: json.dumps({**r, "seed": "1"}), "'seed' is '1' (str), expected int"),
    (lambda r: json.dumps({**r, "test": {**r["test"], "income": {"auc": "0.9"}}}),
     "test.income.auc is '0.9', expected a number"),
    (lambda r: json.dumps([r]), "holds a list, not a JSON object"),
]


@pytest.mark.parametrize("command", ["aggregate", "stats", "leaderboard", "experts", "sweep", "figures"])
@pytest.mark.parametrize("change, phrase", BAD_RECORDS,
                         ids=["truncated", "no status", "no test", "wrong type", "metric a string", "not an object"])
def test_a_malformed_record_is_refused_by_every_command_naming_the_file(runs: Path, tmp_path: Path, capsys,
                                                                        command: str, change, phrase: str) -> None:
    """Exit 2, one line naming the record's file, what is wrong and the fix; no table written."""
    path = edit_record(runs, "ple", 1, change)
    assert main(runs_args(command, runs, tmp_path / "out")) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: run record {path}") and phrase in message
    assert "Train that seed again" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("command", ["aggregate", "stats"])
def test_a_truncated_predictions_file_is_named(runs: Path, tmp_path: Path, capsys, command: str) -> None:
    predictions = runs / "ple" / "seed_0.test_predictions.npz"
    predictions.write_bytes(predictions.read_bytes()[:300])
    assert main(runs_args(command, runs, tmp_path / "out")) == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: predictions file {predictions} cannot be read")
    assert "Train that seed again" in message and len(message.splitlines()) == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------ writers

def test_a_second_writer_of_the_same_table_is_refused(runs: Path, tmp_path: Path, capsys) -> None:
    """While one process holds a table's output, `aggregate` to the same --out exits 2 naming the
    holder and writes nothing; the holder's lock file is gone once it ends."""
    out = tmp_path / "table"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from replication.io import output_lock
        with output_lock({str(out)!r}):
            print("locked", flush=True)
            sys.stdin.read()
    """)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(runs_args("aggregate", runs, tmp_path)) == 2
        message = capsys.readouterr().err
        assert f"{out} is being written by process {holder.pid}" in message and "pass another --out" in message
        assert not list(tmp_path.glob("table.*"))
    finally:
        holder.communicate("", timeout=60)
    assert not (tmp_path / ".table.lock").exists()
    assert main(runs_args("aggregate", runs, tmp_path)) == 0
    assert sorted(p.name for p in tmp_path.glob("table.*")) == ["table.csv", "table.json", "table.md"]


def test_tables_interrupted_by_a_full_disk_keep_the_previous_pair(runs: Path, tmp_path: Path, capsys,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills while the second of aggregate's two files is written: exit 1, one line naming the
    file and the fix, and the .csv and .md of the previous run are both left as they were."""
    assert main(runs_args("aggregate", runs, tmp_path)) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("table.*")}
    edit_record(runs, "ple", 2, lambda r: json.dumps({**r, "test": {**r["test"], "income": {"auc": 0.95}}}))
    calls = []

    def full_disk(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(io.os, "fsync", full_disk)
    assert main(runs_args("aggregate", runs, tmp_path)) == 1
    message = capsys.readouterr().err
    assert message == (f"error: {tmp_path / 'table.md'}: No space left on device; free space on that disk (or pass "
                       f"--out, --checkpoints on another), then run the same command again\n")
    assert {p.name: p.read_bytes() for p in tmp_path.glob("table.*")} == before
    assert not list(tmp_path.glob(".table*"))  # no temporary file, no lock left behind


@pytest.mark.parametrize("code, strerror, fix", [
    (errno.EROFS, "Read-only file system", "that file system is read-only; pass --out"),
    (errno.EACCES, "Permission denied", "you may not use that path; fix its permissions"),
    (errno.ENOSPC, "No space left on device", "free space on that disk"),
], ids=["read-only", "permission", "disk full"])
def test_a_file_system_that_refuses_the_tables_is_named_with_the_fix(runs: Path, tmp_path: Path, capsys,
                                                                     monkeypatch: pytest.MonkeyPatch, code: int,
                                                                     strerror: str, fix: str) -> None:
    def refuse(*args, dir: str, **kwargs):
        raise OSError(code, strerror, dir)
    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    assert main(runs_args("aggregate", runs, tmp_path)) == 1
    message = capsys.readouterr().err
    assert message.startswith(f"error: {tmp_path}: {strerror}; {fix}") and len(message.splitlines()) == 1
    assert not list(tmp_path.glob("table.*"))


def test_an_unexpected_error_keeps_its_traceback(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only expected failures become one-line messages: a bug still raises, with its traceback."""
    def bug(records):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("replication.aggregate.tidy", bug)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        main(runs_args("aggregate", runs, tmp_path))


# --------------------------------------------------------------------------------------------------
# same-runs: two run folders compared number for number


def two_runs(root: Path) -> tuple[Path, Path]:
    """The same two seeds written twice, each copy with its own timings, host and predictions file."""
    folders = root / "a", root / "b"
    for k, folder in enumerate(folders):
        for seed in (0, 1):
            record = fake_record("mmoe", seed, 0.9 + seed / 100, 0.8) | {
                "seconds": 10.0 + k, "environment": {"host": f"machine{k}"},
                "history": [{"epoch": 1, "train_loss": 0.5, "train_seconds": 1.0 + k, "validation_seconds": 0.1 * k}]}
            write_json(folder / "mmoe" / f"seed_{seed}.json", record)
            save_npz(folder / "mmoe" / f"seed_{seed}.test_predictions.npz", prediction=np.arange(4.0) + seed)
    return folders


def test_same_runs_ignores_timings_and_places_and_names_every_difference(tmp_path: Path, capsys) -> None:
    from replication.records import run_differences

    a, b = two_runs(tmp_path)
    assert run_differences(a, b) == []
    assert main(["same-runs", str(a), str(b)]) == 0
    record = json.loads((b / "mmoe" / "seed_0.json").read_text())
    record["test"]["income"]["auc"] = 0.91
    record["history"][0]["train_loss"] = 0.6
    write_json(b / "mmoe" / "seed_0.json", record)
    save_npz(b / "mmoe" / "seed_1.test_predictions.npz", prediction=np.arange(4.0) * 2)
    write_json(b / "mmoe" / "seed_2.json", record)
    assert run_differences(a, b) == ["mmoe/seed_2.json: only in " + str(b), "mmoe/seed_0.json: history[0].train_loss",
                                     "mmoe/seed_0.json: test.income.auc", "mmoe/seed_1.json: test predictions"]
    assert main(["same-runs", str(a), str(b)]) == 2
    assert "differ in 4 place(s): mmoe/seed_2.json: only in" in capsys.readouterr().err
