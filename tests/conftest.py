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
def _isolated_globals():
    """MLflow's global URIs do not leak into later tests, and the package's logs reach the
    root logger again (the CLI sends them to its own handler, without propagation), so
    tests can read them through caplog."""
    yield
    # mlflow.set_tracking_uri / set_registry_uri (a test's Store.activate) also set these
    # variables, which every later subprocess would inherit and load models from
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(name, None)
    package = logging.getLogger("sopforecast")
    package.handlers.clear()
    package.propagate = True
    package.setLevel(logging.NOTSET)
