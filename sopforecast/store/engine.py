"""Connections to the store: a writer and a reader engine, clear errors at the door, and a
busy store that says who holds it.

SQLite runs in WAL mode, so readers never wait for a writer and a writer never waits for
readers. Every write transaction takes SQLite's write lock at its start (``BEGIN
IMMEDIATE``) and waits for it up to the store timeout; reads use plain deferred
transactions on their own engine and never take it. The process holding the write lock
notes itself in a small file beside the database (``<db>.writer``), so a command that
gives up can say who was writing. On PostgreSQL, transactions wait for row locks up to the
same timeout (``lock_timeout``) and the blocking sessions are named from
``pg_stat_activity``; every connection carries the command and user as its
``application_name``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from ..errors import SopforecastError

__all__ = [
    "StoreError",
    "StoreBusy",
    "TIMEOUT_ENV",
    "DEFAULT_TIMEOUT",
    "store_timeout",
    "make_engines",
    "writing",
    "check_url",
    "translate",
    "ping",
]

TIMEOUT_ENV = "SOPFORECAST_STORE_TIMEOUT"
DEFAULT_TIMEOUT = 30.0


class StoreError(SopforecastError):
    """The store cannot be opened or reached (bad URL, driver, server, file)."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for longer than the store timeout."""


def store_timeout(given: float | None = None) -> float:
    """Seconds a write waits for a busy store: ``given``, else ``$SOPFORECAST_STORE_TIMEOUT``,
    else 30."""
    if given is not None:
        return float(given)
    raw = os.environ.get(TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise StoreError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds; set it to e.g. 30.") from None
    if value < 0:
        raise StoreError(f"{TIMEOUT_ENV}={raw!r} is negative; set it to 0 or more seconds.")
    return value


def _who() -> str:
    from .plans import user

    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:3]))
    return f"{user()}: {command}"[:60]


def check_url(url: str, where: str, *, create: bool) -> None:
    """Refuse, creating nothing, a SQLite store that is not there (``create=False``) or
    whose folder does not exist (either way), and a file that is not a database."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"cannot read the store URL {where!r}; write it as sqlite:///path/to/plans.db or "
            "postgresql+psycopg://user@host/database (--store, SOPFORECAST_STORE_URI or plan.store_uri)."
        ) from None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.parent.is_dir():
        raise StoreError(
            f"the store {where} cannot be opened: its folder {path.parent} does not exist; "
            "check the path (--store, SOPFORECAST_STORE_URI or plan.store_uri)."
        )
    if not path.exists():
        if not create:
            raise StoreError(
                f"no store at {path}: the file does not exist (nothing was created); check the path, "
                "or run a pipeline with a plan step (sopforecast demo makes one)."
            )
        return
    if path.is_dir():
        raise StoreError(f"the store {where} is a folder, not a database file; point at the .db file inside.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head and head != b"SQLite format 3\x00":
        raise StoreError(
            f"{path} is not a SQLite database (it starts with {head[:12]!r}); point the store at "
            "the plan database (sopforecast.db in the work directory)."
        )


def make_engines(url: str, *, timeout: float | None = None) -> tuple[Engine, Engine]:
    """``(writer, reader)`` engines on the store at ``url``.

    Raises
    ------
    StoreError
        The URL cannot be parsed or its driver is not installed.
    """
    seconds = store_timeout(timeout)
    try:
        if url.startswith("sqlite"):
            writer = _sqlite(url, seconds, write=True)
            reader = _sqlite(url, seconds, write=False)
        else:
            args = {"connect_args": {"application_name": f"sopforecast {_who()}"}}
            if url.startswith("postgresql"):
                args["connect_args"]["connect_timeout"] = max(1, int(min(seconds, 10)))
            try:
                writer = create_engine(url, **args)
            except TypeError:  # a driver without these arguments
                writer = create_engine(url)
            reader = writer
            if writer.url.get_backend_name() == "postgresql":
                ms = int(seconds * 1000)

                @event.listens_for(writer, "begin")
                def _lock_timeout(connection) -> None:
                    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")

    except ArgumentError:
        raise StoreError(
            "cannot read the store URL; write it as sqlite:///path/to/plans.db or "
            "postgresql+psycopg://user@host/database (--store, SOPFORECAST_STORE_URI or plan.store_uri)."
        ) from None
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise StoreError(
            f"the database driver for this store is not installed ({exc}); for PostgreSQL run "
            "pip install 'sopforecast[postgres]' and use postgresql+psycopg://..."
        ) from None
    writer.sopforecast_timeout = seconds  # type: ignore[attr-defined]
    return writer, reader


def _sqlite(url: str, seconds: float, *, write: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": seconds})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below, not pysqlite's
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
            if write:
                _wal(cursor, seconds)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _wal(cursor, seconds: float) -> None:
    """Switch the database to WAL (once; it persists in the file). The switch needs the file
    to itself and SQLite may refuse it at once, without waiting, while other connections open
    a new database at the same moment: retry for up to the store timeout, then go on in the
    default journal mode (another connection makes the switch later)."""
    import sqlite3

    deadline = time.monotonic() + max(seconds, 1.0)
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def _holder_file(engine: Engine) -> Path | None:
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(f"{url.database}.writer")
    return None


@contextmanager
def writing(engine: Engine, where: str):
    """One write transaction on the writer ``engine``; a busy store becomes :class:`StoreBusy`
    naming who holds it, an unreachable one :class:`StoreError`."""
    holder = _holder_file(engine)
    try:
        with engine.begin() as conn:
            if holder is not None:  # we hold SQLite's write lock now: say so while we do
                _note(holder)
            try:
                yield conn
            finally:
                if holder is not None:
                    holder.unlink(missing_ok=True)
    except OperationalError as exc:
        if _is_busy(exc):
            raise StoreBusy(_busy_message(engine, where)) from None
        raise translate(exc, where) from None


def _note(holder: Path) -> None:
    record = {"pid": os.getpid(), "who": _who(), "since": datetime.now(UTC).strftime("%H:%M:%S UTC")}
    try:
        holder.write_text(json.dumps(record))
    except OSError:  # a read-only folder: the lock works without the note
        pass


def _is_busy(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return "database is locked" in message or "lock timeout" in message or "locknotavailable" in message


def _busy_message(engine: Engine, where: str) -> str:
    seconds = getattr(engine, "sopforecast_timeout", DEFAULT_TIMEOUT)
    holder = _holder_file(engine)
    who = "another process (not a sopforecast command, e.g. a database tool)"
    if holder is not None and holder.exists():
        try:
            record = json.loads(holder.read_text())
            who = f"pid {record['pid']} ({record['who']}, writing since {record['since']})"
        except (OSError, ValueError, KeyError):
            pass
    elif engine.url.get_backend_name() == "postgresql":
        who = _postgres_holders(engine) or "another session"
    return (
        f"the store {where} is busy: {who} has held its write lock for more than {seconds:g} s; "
        f"nothing was changed. Try again when it finishes, or wait longer with {TIMEOUT_ENV}."
    )


def _postgres_holders(engine: Engine) -> str:
    query = text(
        "SELECT pid, application_name, xact_start FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
        "ORDER BY xact_start LIMIT 3"
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except DBAPIError:
        return ""
    return "; ".join(
        f"pid {r.pid} ({r.application_name or 'no application name'}, since {r.xact_start:%H:%M:%S})"
        for r in rows
    )


def translate(exc: DBAPIError, where: str) -> StoreError:
    """A connection-level database error as one clear :class:`StoreError` line."""
    first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    lowered = first.lower()
    if "not a database" in lowered or "file is encrypted" in lowered:
        return StoreError(
            f"the store {where} is not a database ({first}); point it at the plan database "
            "(sopforecast.db in the work directory) or a PostgreSQL URL."
        )
    if "unable to open database" in lowered:
        return StoreError(f"the store {where} cannot be opened ({first}); check the path and permissions.")
    return StoreError(
        f"cannot connect to the store {where}: {first}. Check the URL, that the server is running "
        "and accepts connections, and the user's password (--store, SOPFORECAST_STORE_URI or plan.store_uri)."
    )


def ping(engine: Engine, where: str) -> None:
    """Connect once, turning any failure into a :class:`StoreError`."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        if _is_busy(exc):
            raise StoreBusy(_busy_message(engine, where)) from None
        raise translate(exc, where) from None
    except DBAPIError as exc:
        raise translate(exc, where) from None
