"""Run history and the one-run-at-a-time lock, in the work directory's database.

Every pipeline run, manual or scheduled, is a row: pipeline, trigger, start, end, status,
MLflow run id, error. A run that was killed shows as ``KILLED`` once its process is gone.

Statuses: ``RUNNING``, ``FINISHED``, ``FAILED`` (the error says why), ``SKIPPED`` (another
run held the lock), ``KILLED`` (the process ended mid-run), and for scheduled runs, set by
the scheduler that ended the run's process: ``STOPPED`` (the scheduler was stopped) and
``TIMEOUT`` (the run took longer than the scheduler's ``job_timeout``).
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import inspect, select, update

from ..errors import SopforecastError
from ..store import schema
from ..store.tables import pipeline_runs as runs_table
from ..workdir import Workdir

__all__ = ["RunHistory", "pipeline_lock", "AlreadyRunning"]


class AlreadyRunning(SopforecastError):
    """Another run of the same pipeline holds the lock."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunHistory:
    """The ``pipeline_runs`` table of ``<workdir>/sopforecast.db`` (or any SQLAlchemy URL)."""

    def __init__(self, url: str, *, create: bool = True):
        self.engine = schema.make_engine(url)
        if create:  # the store's schema, made and migrated by its Alembic migrations
            schema.ensure(self.engine, where=url)

    @classmethod
    def for_workdir(cls, workdir: Workdir, *, create: bool = True) -> RunHistory:
        """The work directory's run history; with ``create=False`` (commands that only
        read) a missing database is a :class:`~sopforecast.workdir.NoStoreError`, not a
        new empty one."""
        if create:
            workdir.ensure()
        else:
            workdir.require(workdir.database)
        return cls(f"sqlite:///{workdir.database}", create=create)

    def start(self, pipeline: str, path: str | None, trigger: str) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                runs_table.insert().values(
                    pipeline=pipeline,
                    path=path,
                    trigger=trigger,
                    started_at=_now(),
                    status="RUNNING",
                    pid=os.getpid(),
                )
            )
            return int(result.inserted_primary_key[0])

    def finish(
        self, row_id: int, status: str, mlflow_run_id: str | None = None, error: str | None = None
    ) -> None:
        values = {"ended_at": _now(), "status": status, "error": error}
        if mlflow_run_id:
            values["mlflow_run_id"] = mlflow_run_id
        with self.engine.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.id == row_id).values(**values))

    def set_run_id(self, row_id: int, mlflow_run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(runs_table).where(runs_table.c.id == row_id).values(mlflow_run_id=mlflow_run_id)
            )

    def record(self, pipeline: str, path: str | None, trigger: str, status: str, error: str) -> None:
        """A run that never started (e.g. skipped because one was already running)."""
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(_ended_row(pipeline, path, trigger, now, now, status, error, os.getpid()))

    def end_process(
        self,
        pid: int,
        since: datetime,
        status: str,
        error: str,
        *,
        pipeline: str,
        path: str | None,
        trigger: str,
    ) -> int:
        """Record how a supervisor ended process ``pid`` (started at ``since``, naive UTC).

        The process's open runs (``RUNNING``, or ``KILLED``: the process saw its own end, or
        :meth:`frame` saw it gone) get ``status`` and ``error``; runs it finished keep their
        record; a process that ended before any run started gets a row of its own. Returns
        the number of rows written.
        """
        mine = (runs_table.c.pid == pid) & (runs_table.c.started_at >= since)
        with self.engine.begin() as conn:
            closed = conn.execute(
                update(runs_table)
                .where(mine & runs_table.c.status.in_(["RUNNING", "KILLED"]))
                .values(ended_at=_now(), status=status, error=error)
            ).rowcount
            if closed or conn.execute(select(runs_table.c.id).where(mine).limit(1)).first():
                return int(closed or 0)
            conn.execute(_ended_row(pipeline, path, trigger, since, _now(), status, error, pid))
            return 1

    def frame(self, pipeline: str | None = None, limit: int = 50) -> pd.DataFrame:
        """Latest runs first; RUNNING rows whose process died are shown (and stored) as KILLED."""
        columns = [c.name for c in runs_table.c]
        if not inspect(self.engine).has_table(runs_table.name):  # a store no run has used yet
            return pd.DataFrame(columns=columns)
        query = select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
        if pipeline:
            query = query.where(runs_table.c.pipeline == pipeline)
        with self.engine.begin() as conn:
            rows = pd.DataFrame(conn.execute(query).mappings().all(), columns=columns)
            dead = rows[(rows["status"] == "RUNNING") & ~rows["pid"].map(_alive)]
            for row_id in dead["id"]:
                conn.execute(
                    update(runs_table)
                    .where(runs_table.c.id == int(row_id))
                    .values(status="KILLED", error="the process ended without finishing the run")
                )
        rows.loc[dead.index, "status"] = "KILLED"
        return rows


# the locks this process holds: a POSIX record lock does not exclude its own process, and
# closing any handle on the file would drop it, so the process keeps its own book
_HELD: set[str] = set()
_HELD_GUARD = threading.Lock()


@contextmanager
def pipeline_lock(workdir: Workdir, pipeline: str):
    """Hold the pipeline's lock for the duration of a run; raise if another run holds it.

    A POSIX record lock (``lockf``): owned by this process alone, so worker processes the run
    forks (statsforecast's pool) do not inherit it and cannot keep it after the run is
    killed; the kernel releases it when the process ends, even on SIGKILL.
    """
    folder = workdir.root / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(folder / f"{pipeline}.lock")
    busy = AlreadyRunning(f"pipeline {pipeline!r} is already running (lock {path}); wait for it to finish.")
    key = str(path.resolve())
    with _HELD_GUARD:
        if key in _HELD:
            raise busy
        _HELD.add(key)
    try:
        with open(path, "a+") as handle:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise busy from exc
            yield
    finally:
        with _HELD_GUARD:
            _HELD.discard(key)


def _ended_row(pipeline, path, trigger, started_at, ended_at, status: str, error: str, pid: int):
    """The insert of a run that is over already (never started, or ended by a supervisor)."""
    return runs_table.insert().values(
        pipeline=pipeline,
        path=path,
        trigger=trigger,
        started_at=started_at,
        ended_at=ended_at,
        status=status,
        error=error,
        pid=pid,
    )
