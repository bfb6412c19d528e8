"""Shared test fixtures: where the real data lives, and a real PostgreSQL server."""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:  # the server refuses to run as root
        cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(cmd)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


@dataclass(frozen=True)
class PostgresServer:
    """A PostgreSQL server the tests started: trusts ``postgres`` on 127.0.0.1."""

    port: int

    def connect(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def url(self, dbname: str, driver: str = "") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its name."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:  # FORCE: ends the connections a test left open
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server from the Debian ``postgresql`` package (``.ci/run`` installs
    it), started once per session in a temp dir; skips with the reason when the binaries or
    psycopg are missing."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install '.[postgres]')")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    # outside pytest's private tmp tree: the server runs as the postgres user
    root = Path(tempfile.mkdtemp(prefix="sopforecast-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    port = _free_port()
    _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
    opts = f"'-p {port} -k {data} -c listen_addresses=127.0.0.1'"
    log = root / "server.log"  # the server must not hold our pipes open
    _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"])
    try:
        yield PostgresServer(port)
    finally:
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of the ``mlflow`` database on the test server (MLflow's tracking backend)."""
    return postgres_server.url(postgres_server.create_database("mlflow"))
