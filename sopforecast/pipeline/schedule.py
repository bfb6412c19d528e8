"""Scheduled pipeline runs: cron schedules kept in the work directory's database.

``sopforecast schedule add`` writes a job into APScheduler's SQLAlchemy job store;
``sopforecast scheduler`` is the long-running process that runs due pipelines. Missed runs
(the scheduler was down) are caught up once at start, never one per missed slot; one
pipeline never runs twice at once (one instance per job here, and the pipeline's file lock
against manual runs). Every run lands in the run history (``sopforecast runs``).

Each run executes in a fresh Python process of its own (``python -m
sopforecast.pipeline.schedule PIPELINE WORKDIR``), in a new session, so it inherits no lock
or thread of the scheduler and forks its worker pool (statsforecast's, ``forecast.n_jobs``)
safely. Stopping a run means its whole process group: SIGTERM, then SIGKILL after
:data:`STOP_GRACE` seconds. A run still going after the scheduler's ``job_timeout`` is
stopped and recorded ``TIMEOUT``; when the scheduler stops (SIGTERM, SIGINT, ``exit_after``)
it stops its running runs the same way and records them ``STOPPED``. The pipeline's lock
dies with the run's process.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor

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
    "DEFAULT_JOB_TIMEOUT",
    "STOP_GRACE",
]

logger = logging.getLogger("sopforecast.pipeline.schedule")  # also when run as __main__

JOB_FUNC = "sopforecast.pipeline.schedule:run_scheduled"
# coalesce: one run for any number of missed slots; misfire_grace_time None: a late run still runs
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
DEFAULT_JOB_TIMEOUT = 2 * 3600.0  # seconds a scheduled run may take before it is stopped
STOP_GRACE = 10.0  # seconds a stopped run gets to end after SIGTERM, before SIGKILL
_CHILD = "sopforecast.pipeline.schedule"  # the module a run's process executes


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


def _scheduler(workdir: Workdir, background: bool = True, executor: _ProcessPerRun | None = None):
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    cls = BackgroundScheduler if background else BlockingScheduler
    return cls(
        jobstores={"default": _jobstore(workdir)},
        executors={"default": executor or _ProcessPerRun()},
        job_defaults=JOB_DEFAULTS,
    )


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
    """One scheduled pipeline run in this process, recorded whatever happens.

    The job of every schedule; the scheduler calls it in a process of its own (see
    :class:`_ProcessPerRun`), so the run's worker pool forks from a single-threaded process.
    """
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
    try:
        result = run_pipeline(spec, workdir, path=path, trigger="schedule")
        logger.info("Scheduled run of %s finished: MLflow run %s", spec.name, result.run_id)
    except AlreadyRunning as exc:
        RunHistory.for_workdir(workdir).record(spec.name, path, "schedule", "SKIPPED", str(exc))
        logger.warning("Skipped %s: %s", spec.name, exc)
    except Exception as exc:  # recorded in the run history by run_pipeline; keep scheduling
        logger.error("Scheduled run of %s failed: %s", spec.name, exc)


def run_scheduler(
    workdir: Workdir,
    *,
    exit_after: float | None = None,
    poll: float = 5.0,
    job_timeout: float | None = DEFAULT_JOB_TIMEOUT,
    stop: threading.Event | None = None,
) -> None:
    """Run due pipelines until stopped (SIGTERM, SIGINT / Ctrl-C, ``stop``) or ``exit_after`` seconds.

    Parameters
    ----------
    workdir : Workdir
        Work directory: its database holds the schedules and the run history.
    exit_after : float, optional
        Stop after this many seconds; default run until stopped.
    poll : float, default 5.0
        Seconds between reads of the job store, so schedules added or removed by
        ``sopforecast schedule`` while the scheduler runs take effect without a restart.
    job_timeout : float, optional
        Seconds a run may take (default two hours); a run still going then is stopped and
        recorded ``TIMEOUT``. None: no limit.
    stop : threading.Event, optional
        Set it (from another thread) to stop the scheduler; signals reach only the main thread.

    A stop ends the running runs too (their process groups: SIGTERM, then SIGKILL after
    :data:`STOP_GRACE` seconds), records them ``STOPPED`` and returns normally.
    """
    if job_timeout is not None and not job_timeout > 0:
        raise ConfigError(
            f"job_timeout must be a positive number of seconds (or none for no limit), got {job_timeout}",
            setting="job_timeout",
        )
    executor = _ProcessPerRun(job_timeout=job_timeout)
    sched = _scheduler(workdir, executor=executor)
    stop = threading.Event() if stop is None else stop
    why: list[str] = []

    def _stop(signum, _frame):
        why.append(f"stopped by {signal.Signals(signum).name} to the scheduler")
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
        if not why:
            why.append(
                "stopped with the scheduler"
                if stop.is_set()
                else f"stopped at the scheduler's exit_after ({exit_after:g} s)"
            )
    finally:
        reason = why[0] if why else "the scheduler stopped on an error"
        logger.info("Stopping the scheduler: %s", reason)
        executor.stop(reason)  # ends running runs now; shutdown waits for their records
        if sched.running:
            sched.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.info("Scheduler stopped")


class _ProcessPerRun(BaseExecutor):
    """APScheduler executor: each job (:func:`run_scheduled`) in a fresh process of its own.

    A thread per run starts the process (a new session: its own process group), waits for it
    and, on ``job_timeout`` or :meth:`stop`, ends the group (SIGTERM, SIGKILL after
    ``grace`` seconds) and records the run ``TIMEOUT`` or ``STOPPED`` in the history.
    """

    def __init__(self, job_timeout: float | None = DEFAULT_JOB_TIMEOUT, grace: float = STOP_GRACE):
        super().__init__()
        self.job_timeout = job_timeout
        self.grace = grace
        self._stopping = threading.Event()
        self._reason = ""
        self._threads: set[threading.Thread] = set()
        self._guard = threading.Lock()

    def stop(self, reason: str) -> None:
        """End the running runs (recorded ``STOPPED`` with ``reason``); start no new ones."""
        self._reason = reason
        self._stopping.set()

    def shutdown(self, wait: bool = True) -> None:
        if not self._stopping.is_set():
            self.stop("the scheduler shut down")
        if wait:
            with self._guard:
                threads = list(self._threads)
            for thread in threads:
                thread.join()

    def _do_submit_job(self, job, run_times) -> None:
        thread = threading.Thread(target=self._supervise, args=(job, run_times), name=f"run {job.id}")
        with self._guard:
            self._threads.add(thread)
        thread.start()

    def _supervise(self, job, run_times) -> None:
        try:
            if job.func_ref != JOB_FUNC:
                raise ConfigError(f"schedule {job.id!r} runs {job.func_ref}, not {JOB_FUNC}; add it again.")
            self._run(job)  # coalesced: one run, whatever the number of run times
        except BaseException as exc:  # APScheduler logs it, and keeps scheduling
            self._run_job_error(job.id, exc, exc.__traceback__)
        else:
            events = [JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, run_times[-1])]
            self._run_job_success(job.id, events)
        finally:
            with self._guard:
                self._threads.discard(threading.current_thread())

    def _run(self, job) -> None:
        path, root = (str(arg) for arg in job.args)
        history = RunHistory.for_workdir(Workdir(Path(root)))
        if self._stopping.is_set():
            history.record(job.id, path, "schedule", "SKIPPED", f"not started: {self._reason}")
            return
        since = datetime.now(UTC).replace(tzinfo=None)
        level = logging.getLogger("sopforecast").getEffectiveLevel()
        child = subprocess.Popen(
            [sys.executable, "-m", _CHILD, path, root, str(level)], start_new_session=True
        )
        logger.info("Scheduled run of %s started in process %d", job.id, child.pid)
        verdict = self._watch(child)
        _end_group(child, self.grace)
        if verdict is None and child.returncode == 0:
            return  # the run recorded its own outcome
        status, error = verdict or ("FAILED", f"the run's process ended with exit code {child.returncode}")
        written = history.end_process(
            child.pid, since, status, error, pipeline=job.id, path=path, trigger="schedule"
        )
        if written:
            logger.warning("Scheduled run of %s %s: %s", job.id, status, error)

    def _watch(self, child: subprocess.Popen) -> tuple[str, str] | None:
        """Wait for the run's process to exit (None), time out or be stopped: (status, error)."""
        deadline = None if self.job_timeout is None else time.monotonic() + self.job_timeout
        while not _exited(child):
            if self._stopping.wait(0.2):
                return "STOPPED", self._reason
            if deadline is not None and time.monotonic() >= deadline:
                return "TIMEOUT", (
                    f"still running after the scheduler's job_timeout of {self.job_timeout:g} s; "
                    "its processes were stopped"
                )
        return None


def _exited(child: subprocess.Popen) -> bool:
    """Whether the process ended, without reaping it: until ``child.wait()`` its pid, which is
    also its process group's id, cannot be reused, so signalling the group stays safe."""
    return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # nothing left in the group
        pass


def _end_group(child: subprocess.Popen, grace: float) -> None:
    """End the run's process group: SIGTERM, SIGKILL after ``grace`` seconds to whatever is
    left (the run's process or its pool's workers), then reap the run's process."""
    if not _exited(child):
        _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while not _exited(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _exited(child):
            logger.warning("Run process %d still going %g s after SIGTERM: killing it", child.pid, grace)
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


class _RunStopped(BaseException):
    """SIGTERM in a run's process: a BaseException, so the run's own handlers let it through
    and the runner records the run KILLED (and its MLflow run) before the process ends."""


def _run_process(argv: list[str]) -> int:
    """A run's process: ``python -m sopforecast.pipeline.schedule PIPELINE WORKDIR [LOGLEVEL]``."""
    from ..console import setup_logging

    main_pid = os.getpid()

    def _on_sigterm(signum, _frame):
        if os.getpid() != main_pid:  # a worker forked by the run (statsforecast's pool): just end
            os._exit(128 + signum)
        raise _RunStopped(f"stopped by {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, _on_sigterm)
    path, root, *rest = argv
    level = int(rest[0]) if rest else logging.INFO
    setup_logging(quiet=level > logging.INFO, verbose=level < logging.INFO)
    try:
        run_scheduled(path, root)
    except _RunStopped:
        return 128 + signal.SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(_run_process(sys.argv[1:]))
