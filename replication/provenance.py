"""The environment block stored with every run: versions, commit, device, host."""

from __future__ import annotations

import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "numpy", "scipy", "pandas", "dvc", "tqdm")
# CPU features that compute bfloat16 products in hardware: x86's AVX-512 BF16 and AMX, Arm's BF16.
# Without one, torch's bf16 autocast on the CPU converts every operand and is slower than fp32.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
CPUINFO = Path("/proc/cpuinfo")


def git_commit(cwd: Path | None = None) -> str:
    """HEAD's commit, with ``-dirty`` when tracked files (except dvc.lock) differ from it; ``unknown`` outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        # dvc.lock changes while `dvc repro` runs; it is state, not code.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock"], cwd=cwd,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags as Linux lists them in ``CPUINFO`` (x86's ``flags`` line, Arm's
    ``Features``); None where there is no such list (another system)."""
    try:
        lines = CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def slow_bf16_warning(precision: str, device: str, flags: frozenset[str] | None) -> str | None:
    """The warning for bfloat16 training on a CPU that has none of ``BF16_FLAGS``; None where bf16 is not
    asked for, ``device`` (``train.device``: auto, cpu, cuda:N, ...) is not the CPU, or the CPU's flags are
    unknown. Checking a device that is not here is left to the trainer and the executors."""
    if precision != "bf16" or flags is None or flags & set(BF16_FLAGS):
        return None
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu":
        return None
    return ("warning: train.precision is bf16, but this CPU has no bfloat16 instructions (none of "
            f"{', '.join(BF16_FLAGS)} in {CPUINFO}), so every bf16 product is emulated and training is several "
            "times slower than in fp32; train in fp32 instead (params.yaml's default; after a profile, "
            "--set train.precision=fp32), whose results differ only by rounding")


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: str = "cpu") -> dict[str, object]:
    return {
        "versions": package_versions(),
        "git_commit": git_commit(),
        "device": device_description(device),
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }
