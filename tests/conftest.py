"""Shared test fixtures: where the shared specs, schemas and samples live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SFA_SHARED_DIR", REPO.parent / "shared")).resolve()
SCHEMAS = SHARED / "schemas"
SAMPLES = SHARED / "samples"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared directory is missing: {SHARED} (set SFA_SHARED_DIR)")
    return SHARED


@pytest.fixture(scope="session")
def schemas_dir(shared_dir: Path) -> Path:
    return shared_dir / "schemas"


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    return shared_dir / "samples"
