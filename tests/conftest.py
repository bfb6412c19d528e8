"""Shared test fixtures: where the real data lives."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

# wide, stable terminal output for assertions on rich tables (read when consoles are built)
os.environ["COLUMNS"] = "200"

SHARED_DATA = Path(
    os.environ.get("SOPFORECAST_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
PBS_CSV = SHARED_DATA / "pbs" / "PBS.csv"


@pytest.fixture(scope="session")
def pbs_path() -> Path:
    if not PBS_CSV.exists():
        pytest.skip(f"real data absent: {PBS_CSV} (see ../shared/data/README.md)")
    return PBS_CSV


@pytest.fixture(autouse=True)
def _package_logger_propagates():
    """The CLI sends the package's logs to its own handler (no propagation); tests that
    read logs through caplog need them to reach the root logger again."""
    yield
    package = logging.getLogger("sopforecast")
    package.handlers.clear()
    package.propagate = True
    package.setLevel(logging.NOTSET)
