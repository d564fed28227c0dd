"""Data preparation gives the same bytes whatever BLAS kernel, SIMD path or C library build the CPU
selects (replication/data/exact.py): the DVC hash of ``prepare`` and of every stage after it must not
depend on the machine."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest

from replication.cli import main
from replication.data.exact import SIN_MAX_ARGUMENT, cosine, dot, pearson, sin
from tests.conftest import REPO

CENSUS_SPEC = REPO / "replication" / "data" / "specs" / "census.yaml"


def other_cpu() -> dict[str, str]:
    """An environment in which OpenBLAS, numpy and the C library take other code paths than this CPU's
    own: the generic x86-64 BLAS kernel, numpy without its AVX2-level loops, and glibc's math functions
    built without FMA."""
    env = {**os.environ, "OPENBLAS_CORETYPE": "Prescott", "PYTHONPATH": str(REPO),
           "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA"}
    if platform.machine() in ("x86_64", "AMD64"):
        env["NPY_DISABLE_CPU_FEATURES"] = "X86_V3"
    return env


def printed(code: str, env: dict[str, str] | None = None) -> str:
    """What ``python -c code`` prints, in ``env`` (this process's environment if None)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_other_cpu_environment_changes_what_blas_sums() -> None:
    # Guards the tests below: under other_cpu(), np.corrcoef of these labels gives other last digits.
    code = ("import numpy as np; rng = np.random.default_rng(0); y = (rng.random((20000, 2)) < [0.06, 0.4]);"
            "y[:, 1] |= y[:, 0] & (rng.random(20000) < 0.5); print(repr(float(np.corrcoef(y.T.astype(float))[0, 1])))")
    assert printed(code) != printed(code, other_cpu())


def test_the_other_cpu_environment_changes_the_c_librarys_sine() -> None:
    # Guards the synthetic test below: glibc's sin without FMA differs in the last bit of some results.
    code = ("import hashlib, math, random, struct; r = random.Random(0);"
            "print(hashlib.sha256(b''.join(struct.pack('d', math.sin(r.uniform(-20, 20))) for _ in range(200000))).hexdigest())")
    assert printed(code) != printed(code, other_cpu())


def test_sin_known_values_and_error_against_the_c_library() -> None:
    assert sin(np.array([0.0, math.pi / 2, -math.pi / 2, 3 * math.pi / 2])).tolist() == [0.0, 1.0, -1.0, -1.0]
    assert math.copysign(1.0, sin(np.array([-0.0]))[0]) == -1.0
    assert sin(np.array([math.pi]))[0] == math.sin(math.pi) == 1.2246467991473532e-16  # sin of the double nearest pi
    rng = np.random.default_rng(0)
    near_multiples_of_half_pi = np.arange(-300_000, 300_001) * (math.pi / 2)  # where the reduction cancels most
    for x, ulps in ((rng.uniform(-1, 1, 100_000), 1), (rng.uniform(-100, 100, 100_000), 1),
                    (near_multiples_of_half_pi, 1), (rng.uniform(-SIN_MAX_ARGUMENT, SIN_MAX_ARGUMENT, 100_000), 2)):
        reference, ours = np.array([math.sin(v) for v in x]), sin(x)
        zero = reference == 0.0  # sin(0): ulps of 0 are subnormal, which torch's flush-to-zero mode turns into 0
        assert (ours[zero] == 0.0).all()
        error = np.abs(ours[~zero] - reference[~zero]) / np.spacing(np.abs(reference[~zero]))
        assert error.max() <= ulps, (x.max(), error.max())
    with pytest.raises(ValueError, match="exact.sin takes finite arguments up to 524288"):
        sin(np.array([1.0, 1e6]))
    with pytest.raises(ValueError, match="got nan"):
        sin(np.array([math.nan]))


def test_pearson_and_cosine_known_values() -> None:
    a = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    assert pearson(np.stack([a, a], axis=1)).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert pearson(np.stack([a, 1 - a], axis=1))[0, 1] == -1.0
    assert pearson(np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]))[0, 1] == 0.0
    assert np.isnan(pearson(np.stack([a, np.ones(5)], axis=1))[0, 1])  # a constant label
    assert np.isnan(pearson(np.ones((1, 2)))).all()
    assert dot([0.1] * 10, [1.0] * 10) == 1.0  # correctly rounded: a running sum gives 0.9999999999999999
    assert cosine([3.0, 4.0], [4.0, 3.0]) == 24 / 25
    assert math.isnan(cosine([0.0, 0.0], [1.0, 2.0]))


def test_pearson_of_binary_labels_agrees_with_the_exact_phi_coefficient() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random((50_000, 2)) < [0.06, 0.3]).astype(np.float32)
    n, sa, sb, sab = len(y), int(y[:, 0].sum()), int(y[:, 1].sum()), int((y[:, 0] * y[:, 1]).sum())
    getcontext().prec = 50
    exact = Decimal(n * sab - sa * sb) / (Decimal((n * sa - sa * sa) * (n * sb - sb * sb))).sqrt()
    assert abs(Decimal(pearson(y)[0, 1]) - exact) <= abs(exact) * Decimal("1e-13")


def test_census_prepare_writes_the_same_bytes_on_another_cpu_path(census_raw: Path, tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    assert main(["prepare", "--spec", str(CENSUS_SPEC), "--raw", str(census_raw), "--out", str(here)]) == 0
    subprocess.run([sys.executable, "-m", "replication", "prepare", "--spec", str(CENSUS_SPEC), "--raw", str(census_raw),
                    "--out", str(there)], check=True, capture_output=True, env=other_cpu())
    assert folder_bytes(there) == folder_bytes(here)


def test_synthetic_data_is_the_same_bytes_on_another_cpu_path(tmp_path: Path) -> None:
    argv = ["synth", "--correlation", "0.5", "--n", "3000", "--dim", "64", "--data-seeds", "per_seed", "--seeds", "0-1"]
    assert main([*argv, "--out", str(tmp_path / "here")]) == 0
    subprocess.run([sys.executable, "-m", "replication", *argv, "--out", str(tmp_path / "there")], check=True,
                   capture_output=True, env=other_cpu())
    assert folder_bytes(tmp_path / "there") == folder_bytes(tmp_path / "here")
