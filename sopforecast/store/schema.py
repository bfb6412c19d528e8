"""Create and migrate the store's schema with Alembic, as MLflow does for its own.

The migrations live in ``store/migrations`` inside the package and record their revision
in their own table (:data:`VERSION_TABLE`), so the store can share a database with MLflow.
A new database is created at the current revision on first use; a database made by an
older sopforecast is refused with :class:`OutdatedSchemaError` until ``sopforecast db
upgrade`` migrates it (a planner's data is never changed behind their back).
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from ..errors import SopforecastError

__all__ = [
    "make_engine",
    "VERSION_TABLE",
    "OutdatedSchemaError",
    "head_revision",
    "current_revision",
    "upgrade",
    "ensure",
]

VERSION_TABLE = "sopforecast_alembic_version"
_MIGRATIONS = Path(__file__).parent / "migrations"
_OURS = {"plan_versions", "plan_lines", "overrides", "actuals"}


class OutdatedSchemaError(SopforecastError):
    """The store was made by another version of sopforecast."""


def make_engine(url: str, *, timeout: float | None = None) -> Engine:
    """The writer engine on the store (:func:`.engine.make_engines`): on SQLite every
    transaction is a real one, DDL included, and takes the write lock at its start, so two
    processes never interleave their writes."""
    from .engine import make_engines

    return make_engines(url, timeout=timeout)[0]


def _config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The schema revision this sopforecast works with."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; ``None`` for a database sopforecast has not migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Migrate the database to ``revision``; returns (revision before, revision after)."""
    from alembic import command

    with _migration_lock(engine):
        before = current_revision(engine)
        with engine.begin() as conn:
            command.upgrade(_config(conn), revision)
    return before, current_revision(engine)


def ensure(engine: Engine, *, where: str, create: bool = True, reader: Engine | None = None) -> None:
    """Make sure the database is at this sopforecast's revision.

    A database without sopforecast's tables is created (migrated from nothing), or with
    ``create=False`` refused (:class:`~.engine.StoreError`, nothing created); one at an
    older revision raises :class:`OutdatedSchemaError` naming ``sopforecast db upgrade``;
    one from a newer sopforecast raises too. The check reads through ``reader`` (default
    ``engine``), so opening a store never waits for another process's write.
    """
    from .engine import StoreError, ping

    reader = reader or engine
    ping(reader, where)
    head = head_revision()
    current = current_revision(reader)
    if current == head:
        return
    if current is None:
        if not create:
            raise StoreError(
                f"{where} holds no sopforecast store (no plan has been made there; nothing was "
                "created); check the URL, or run a pipeline with a plan step first."
            )
        _create(engine, where)
        return
    from alembic.script import ScriptDirectory

    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    if current not in known:
        raise OutdatedSchemaError(
            f"the store at {where} is at schema revision {current}, made by a newer sopforecast "
            f"than this one (revision {head}); upgrade sopforecast (pip install -U sopforecast)."
        )
    raise OutdatedSchemaError(
        f"the store at {where} is at schema revision {current}; this sopforecast needs {head}. "
        "Back up the database, then run 'sopforecast db upgrade'."
    )


def _create(engine: Engine, where: str) -> None:
    """Migrate a database sopforecast has not touched from nothing (under the lock, so a
    second process waits and then finds it done)."""
    from alembic import command

    with _migration_lock(engine):
        if current_revision(engine) is not None:
            return
        if _OURS & set(inspect(engine).get_table_names()):
            raise OutdatedSchemaError(
                f"the store at {where} has plan tables but no schema revision "
                f"({VERSION_TABLE}); it was not made by sopforecast. Use another database "
                "(the store setting, --store or SOPFORECAST_STORE_URI)."
            )
        with engine.begin() as conn:
            command.upgrade(_config(conn), "head")


@contextmanager
def _migration_lock(engine: Engine):
    """One migration at a time: the scheduler, its runs and a planner's command may all open
    a new store at once. A file lock beside a SQLite file, an advisory lock on PostgreSQL."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        with open(f"{url.database}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        return
    if url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7401)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7401)"))
        return
    yield
