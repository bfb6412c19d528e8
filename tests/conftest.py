"""Shared test fixtures (where the real data lives, a real PostgreSQL server) and the test
selection: which tests are ``integration`` tests, and ``slow`` benchmarks staying skipped.

``pytest`` runs everything but the ``slow`` benchmarks (what CI runs);
``pytest -m "not integration"`` is the quick unit run. A test is an integration test when
it is marked so (``@pytest.mark.integration``, or ``pytestmark`` in its module), or
:func:`pytest_collection_modifyitems` finds that it, one of its fixtures, or a helper
function of its module that either calls, runs something end to end: a pipeline, the
scheduler or the demo (``run_pipeline``, ``run_scheduler``, ``run_demo``, the CLI's
``demo`` / ``run`` commands), a subprocess, a notebook, or a PostgreSQL server (the
``postgres_server`` / ``postgres_url`` fixtures, or a parameter named ``postgresql``).
New test files need no marker for that.
"""

from __future__ import annotations

import glob
import inspect
import logging
import os
import re
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
TESTS = Path(__file__).resolve().parent

# -- test selection ----------------------------------------------------------------------
INTEGRATION_FIXTURES = frozenset({"postgres_server", "postgres_url"})
# what an end-to-end test calls: a pipeline, the scheduler running them or the demo, the
# CLI running one, a subprocess, a notebook kernel
_END_TO_END = re.compile(
    r"\b(run_pipeline|run_scheduler|run_demo|NotebookClient|Popen)\b|\bsubprocess\.(run|Popen|call|check_\w+)\("
    r"|\bmain\(\s*\[[^\]]*[\"'](demo|run)[\"']"
)
_CALLS = re.compile(r"\b([A-Za-z_]\w*)\(")
SLOW_BENCHMARK_TIMEOUT = 3600  # seconds; the default per-test limit is pyproject's `timeout`


def _source(func) -> str:
    """The source of a function defined in tests/ ('' for anything else)."""
    func = inspect.unwrap(func)
    try:
        path = inspect.getsourcefile(func)
        if path is None or TESTS not in Path(path).resolve().parents:
            return ""
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def _runs_end_to_end(func, module, depth: int = 2, _seen: set | None = None) -> bool:
    """Whether ``func`` (or a function of ``module`` it calls, ``depth`` calls deep) runs
    something end to end."""
    seen = _seen if _seen is not None else set()
    if func in seen:
        return False
    seen.add(func)
    text = _source(func)
    if not text:
        return False
    if _END_TO_END.search(text):
        return True
    if depth == 0 or module is None:
        return False
    for name in set(_CALLS.findall(text)):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper) and _runs_end_to_end(helper, module, depth - 1, seen):
            return True
    return False


def _is_integration(item: pytest.Item) -> bool:
    if item.get_closest_marker("integration") is not None:
        return True
    if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "postgres" in callspec.id.lower():
        return True
    module = getattr(item, "module", None)
    if _runs_end_to_end(getattr(item, "function", None), module):
        return True
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        for fixture in defs:
            owner = inspect.getmodule(fixture.func)
            if _runs_end_to_end(fixture.func, owner):
                return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    """A run that leaves the integration tests out is not held to the coverage floor
    (``[tool.coverage.report] fail_under``): the floor is the full run's (CI's)."""
    if "integration" not in (config.option.markexpr or ""):
        return
    options = getattr(config.pluginmanager.getplugin("_cov"), "options", None)  # pytest-cov
    if getattr(options, "cov_fail_under", None):
        options.cov_fail_under = 0


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark integration tests (see the module docstring); keep ``slow`` benchmarks out
    unless the ``-m`` expression names them.

    ``-m "not integration"`` on the command line replaces pyproject's ``-m 'not slow'``;
    the benchmarks are deselected here then, as they would have been without it.
    """
    timed = config.pluginmanager.hasplugin("timeout")  # pytest-timeout, from the dev extra
    for item in items:
        if item.get_closest_marker("integration") is None and _is_integration(item):
            item.add_marker(pytest.mark.integration)
        slow = item.get_closest_marker("slow") is not None
        if timed and slow and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_BENCHMARK_TIMEOUT))
    if "slow" in (config.option.markexpr or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]


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
