"""Shared fixtures: the census mirror beside the repository (../shared), never the network."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "datasets" / "census-income-kdd"


@pytest.fixture(scope="session")
def census_raw(tmp_path_factory) -> Path:
    """The two raw census files, downloaded (decompressed and verified) from the local mirror once."""
    from replication.data.download import download_census

    assert MIRROR.is_dir(), f"the census mirror {MIRROR} is missing; tests read the data from there"
    out = tmp_path_factory.mktemp("raw")
    download_census(out, mirror=str(MIRROR), progress=False)
    return out
