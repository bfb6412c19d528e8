"""Scheduled pipeline runs: cron schedules kept in the work directory's database.

``sopforecast schedule add`` writes a job into APScheduler's SQLAlchemy job store;
``sopforecast scheduler`` is the long-running process that runs due pipelines. Missed runs
(the scheduler was down) are caught up once at start, never one per missed slot; one
pipeline never runs twice at once (one instance per job here, and the pipeline's file lock
against manual runs). Every run lands in the run history (``sopforecast runs``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, SopforecastError
from ..workdir import Workdir
from .history import AlreadyRunning, RunHistory

__all__ = [
    "add_schedule",
    "list_schedules",
    "remove_schedule",
    "run_scheduler",
    "run_scheduled",
    "parse_cron",
]

logger = logging.getLogger(__name__)

JOB_FUNC = "sopforecast.pipeline.schedule:run_scheduled"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


def parse_cron(expression: str):
    """A CronTrigger from a five-field crontab expression, or a clear ConfigError."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ConfigError(
            f"cron expression {expression!r} has {len(fields)} field(s); give five: "
            "minute hour day-of-month month day-of-week, e.g. '0 6 2 * *' (06:00 on the 2nd)."
        )
    try:
        return CronTrigger.from_crontab(expression)
    except ValueError as exc:
        raise ConfigError(
            f"invalid cron expression {expression!r}: {exc}. Example: '0 6 2 * *' (06:00 on the 2nd)."
        ) from exc


def _jobstore(workdir: Workdir):
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    workdir.ensure()
    return SQLAlchemyJobStore(url=f"sqlite:///{workdir.database}", tablename="schedules")


def _scheduler(workdir: Workdir, background: bool = True):
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    cls = BackgroundScheduler if background else BlockingScheduler
    return cls(jobstores={"default": _jobstore(workdir)}, job_defaults=JOB_DEFAULTS)


def add_schedule(pipeline_path: str | Path, cron: str, workdir: Workdir) -> dict:
    """Schedule a pipeline (validated now, read again at each run); replaces its old schedule."""
    from .spec import load_pipeline

    path = Path(pipeline_path).resolve()
    spec = load_pipeline(path)
    trigger = parse_cron(cron)
    sched = _scheduler(workdir)
    sched.start(paused=True)  # paused: jobs go straight to the store, nothing runs
    try:
        job = sched.add_job(
            JOB_FUNC,
            trigger=trigger,
            args=[str(path), str(workdir.root)],
            id=spec.name,
            name=f"{spec.name} ({cron})",
            replace_existing=True,
        )
        next_run = job.next_run_time
    finally:
        sched.shutdown(wait=False)
    logger.info("Scheduled %s at '%s'; next run %s", spec.name, cron, next_run)
    return {"pipeline": spec.name, "cron": cron, "path": str(path), "next_run": next_run}


def open_store(workdir: Workdir):
    """The job store, readable and writable without a running scheduler (shut it down after)."""
    store = _jobstore(workdir)
    store.start(_scheduler(workdir), "default")  # the store restores jobs through a scheduler
    return store


def list_schedules(workdir: Workdir) -> pd.DataFrame:
    """Every schedule: pipeline, cron, next run, pipeline file."""
    store = open_store(workdir)
    rows = [
        {
            "pipeline": job.id,
            "cron": job.name.split("(", 1)[-1].rstrip(")"),
            "next_run": job.next_run_time,
            "path": job.args[0],
        }
        for job in store.get_all_jobs()
    ]
    store.shutdown()
    return pd.DataFrame(rows, columns=["pipeline", "cron", "next_run", "path"])


def remove_schedule(pipeline: str, workdir: Workdir) -> None:
    from apscheduler.jobstores.base import JobLookupError

    store = _jobstore(workdir)
    try:
        store.remove_job(pipeline)
    except JobLookupError as exc:
        known = ", ".join(list_schedules(workdir)["pipeline"]) or "none"
        raise ConfigError(f"no schedule for pipeline {pipeline!r}; scheduled: {known}.") from exc


def run_scheduled(path: str, workdir_root: str) -> None:
    """The job APScheduler calls: one pipeline run, recorded whatever happens."""
    from .runner import run_pipeline
    from .spec import load_pipeline

    workdir = Workdir(Path(workdir_root))
    name = Path(path).stem
    try:
        spec = load_pipeline(path)
    except SopforecastError as exc:
        RunHistory.for_workdir(workdir).record(name, path, "schedule", "FAILED", str(exc))
        logger.error("Scheduled pipeline %s is invalid: %s", path, exc)
        return
    # statsforecast's worker pool forked from the scheduler's thread can deadlock on a lock
    # another thread held at the fork; until scheduled runs get a process of their own,
    # they fit in this process
    spec.forecast.n_jobs = 1
    try:
        result = run_pipeline(spec, workdir, path=path, trigger="schedule")
        logger.info("Scheduled run of %s finished: MLflow run %s", spec.name, result.run_id)
    except AlreadyRunning as exc:
        RunHistory.for_workdir(workdir).record(spec.name, path, "schedule", "SKIPPED", str(exc))
        logger.warning("Skipped %s: %s", spec.name, exc)
    except Exception as exc:  # recorded in the run history by run_pipeline; keep scheduling
        logger.error("Scheduled run of %s failed: %s", spec.name, exc)


def run_scheduler(workdir: Workdir, *, exit_after: float | None = None, poll: float = 30.0) -> None:
    """Run due pipelines until stopped (Ctrl-C, SIGTERM) or ``exit_after`` seconds.

    The store is read again every ``poll`` seconds, so schedules added or removed by
    ``sopforecast schedule`` while the scheduler runs take effect without a restart.
    """
    sched = _scheduler(workdir)
    stop = threading.Event()

    def _stop(*_):
        stop.set()

    in_main = threading.current_thread() is threading.main_thread()  # signals reach only the main thread
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
    try:
        sched.start()
        jobs = sched.get_jobs()
        logger.info(
            "Scheduler started with %d pipeline(s): %s", len(jobs), ", ".join(j.id for j in jobs) or "none"
        )
        deadline = None if exit_after is None else time.monotonic() + exit_after
        while not stop.is_set():
            left = poll if deadline is None else min(poll, deadline - time.monotonic())
            if left <= 0 or stop.wait(left):
                break
            sched.wakeup()  # re-read the job store: schedules changed by other processes
    finally:
        sched.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.info("Scheduler stopped")
