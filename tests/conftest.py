"""Shared fixtures: the real clips in ../shared and the shipped model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PYNQ_SPARSE_SHARED", REPO.parent / "shared"))
GSC_DEV = SHARED / "data" / "gsc_v2_dev"


@pytest.fixture(scope="session")
def gsc_dev() -> Path:
    """The shared real Speech Commands dev folder (tests fail, not skip, when it is missing)."""
    assert GSC_DEV.is_dir(), f"shared data missing: {GSC_DEV} (CI clones ../shared beside the repo)"
    return GSC_DEV
