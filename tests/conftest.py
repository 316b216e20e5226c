"""Shared fixtures: paths to ../shared/data (skipping outside CI only), seeded synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEFIQ_SHARED", ROOT.parent / "shared" / "data")).resolve()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``shared_data`` tests skip with a reason outside CI when the data is absent; in CI they must run."""
    if SHARED.is_dir() or IN_CI:  # in CI the data must be there: such tests run (and fail loudly if it is not)
        return
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"needs {SHARED} (present in CI)"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """Root of ../shared/data (tests using it are marked ``shared_data``)."""
    return SHARED


@pytest.fixture(scope="session")
def lfw_aligned(shared: Path) -> Path:
    return shared / "lfw-dev" / "aligned112"


@pytest.fixture(scope="session")
def mobilefacenet_pt(shared: Path) -> Path:
    return shared / "models" / "mobilefacenet" / "mobilefacenet.pt"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
