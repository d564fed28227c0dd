"""Shared fixtures: the census mirror beside the repository (../shared), never the network."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# A local folder named by REPLICATION_DATA_MIRROR (as for `make reproduce`), else ../shared beside the repo.
_env_mirror = os.environ.get("REPLICATION_DATA_MIRROR", "")
MIRROR = (Path(_env_mirror).resolve() if _env_mirror and "://" not in _env_mirror
          else REPO.parent / "shared" / "datasets" / "census-income-kdd")


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module's tests: the machine's cores are shared, and more
    threads than cores stall. Modules that train ask for it with ``pytestmark``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def census_raw(tmp_path_factory) -> Path:
    """The two raw census files, downloaded (decompressed and verified) from the local mirror once."""
    from replication.data.download import download_census

    assert MIRROR.is_dir(), f"the census mirror {MIRROR} is missing; tests read the data from there"
    out = tmp_path_factory.mktemp("raw")
    download_census(out, mirror=str(MIRROR), progress=False)
    return out


def load_arrays(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every array of a processed data set: split -> name -> array."""
    from replication.data.processed import SPLITS

    out = {}
    for split in SPLITS:
        with np.load(directory / f"{split}.npz") as arrays:
            out[split] = {k: arrays[k] for k in arrays.files}
    return out
