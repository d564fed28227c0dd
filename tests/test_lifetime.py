"""Process lifetime helpers (replication/lifetime.py); the faults they answer are in test_faults.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from replication.lifetime import parent_of
from tests.conftest import REPO
from tests.test_faults import default_signals

DETACHED = "from replication.lifetime import detached; print(detached())"


def _ignore_sighup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.parametrize("preexec, new_session, expected", [
    (default_signals, False, "False"), (_ignore_sighup, False, "True"), (default_signals, True, "True"),
], ids=["plain", "nohup", "setsid"])
def test_a_command_started_with_nohup_or_setsid_is_left_to_outlive_its_starter(preexec, new_session: bool,
                                                                                expected: str) -> None:
    """Only a command started to outlive its shell (nohup: SIGHUP ignored; setsid) skips the parent watch."""
    result = subprocess.run([sys.executable, "-c", DETACHED], cwd=REPO, capture_output=True, text=True, timeout=60,
                            preexec_fn=preexec, start_new_session=new_session)
    assert result.stdout.strip() == expected, result.stderr


def test_parent_of_reads_the_parent_process_id() -> None:
    assert parent_of(os.getpid()) == os.getppid()
    assert parent_of(2 ** 22 + 1) is None  # above Linux's largest pid: no such process
