"""Scheduling: cron schedules in the work directory's database, catch-up, one run at a time,
each run in a process of its own that a timeout or a stopped scheduler ends.

The scheduler runs for real: in this process (a thread) or as ``sopforecast scheduler`` in a
subprocess, with the SQLite job store; runs are real pipelines. A "slow" pipeline (200 series,
ARIMA and friends, three windows: minutes of fitting in a worker pool) is stopped seconds in.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from test_pipeline import REPO, _client, _history, _pipeline

from sopforecast.cli import main
from sopforecast.errors import ConfigError
from sopforecast.pipeline import schedule
from sopforecast.pipeline.history import RunHistory, pipeline_lock
from sopforecast.workdir import Workdir


@pytest.fixture()
def tiny(tmp_path):
    _history(tmp_path / "sales.csv")
    return _pipeline(tmp_path), Workdir(tmp_path / "work")


@pytest.fixture()
def slow(tmp_path):
    """A run that takes minutes, fitting in statsforecast's worker pool (n_jobs -1: all cores)."""
    _history(tmp_path / "many.csv", n=200, periods=60)
    path = _pipeline(tmp_path, name="slow", data="many.csv")
    text = path.read_text().replace("[snaive, naive]", "[ets, ces, theta, arima]")
    path.write_text(text.replace("windows: 2", "windows: 3"))
    return path, Workdir(tmp_path / "work")


@pytest.mark.parametrize(
    ("cron", "message"),
    [("0 6 2 *", "has 4 field"), ("0 25 2 * *", "invalid cron"), ("every monday", "has 2 field")],
)
def test_bad_cron_is_a_clear_error(tiny, capsys, cron, message):
    path, workdir = tiny
    with pytest.raises(ConfigError, match=message):
        schedule.parse_cron(cron)
    assert main(["schedule", "add", str(path), "--cron", cron, "--workdir", str(workdir.root)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_add_list_remove(tiny, capsys):
    path, workdir = tiny
    wd = ["--workdir", str(workdir.root)]
    assert main(["schedule", "add", str(path), "--cron", "0 6 2 * *", *wd]) == 0
    assert main(["schedule", "add", str(path), "--cron", "30 5 3 * *", *wd]) == 0  # replaces
    table = schedule.list_schedules(workdir)
    assert list(table["pipeline"]) == ["tiny"] and table["cron"].iloc[0] == "30 5 3 * *"
    next_run = table["next_run"].iloc[0]
    assert (next_run.day, next_run.hour, next_run.minute) == (3, 5, 30)
    assert main(["schedule", "list", *wd]) == 0
    assert "tiny" in capsys.readouterr().out
    assert main(["schedule", "remove", "tiny", *wd]) == 0
    assert schedule.list_schedules(workdir).empty
    assert main(["schedule", "remove", "tiny", *wd]) == 2
    assert "no schedule for pipeline 'tiny'" in " ".join(capsys.readouterr().err.split())


def _miss(workdir: Workdir, job: str, minutes: int) -> None:
    """Pretend the scheduler was down: move the job's next run into the past."""
    store = schedule.open_store(workdir)
    found = store.lookup_job(job)
    found._modify(next_run_time=datetime.now().astimezone() - timedelta(minutes=minutes))
    store.update_job(found)
    store.shutdown()


def test_scheduler_catches_up_missed_runs_once(tiny):
    path, workdir = tiny
    schedule.add_schedule(path, "0 * * * *", workdir)  # hourly: ten slots missed
    _miss(workdir, "tiny", minutes=600)
    stop = threading.Event()
    scheduler = threading.Thread(
        target=schedule.run_scheduler, args=(workdir,), kwargs={"poll": 0.5, "stop": stop}
    )
    scheduler.start()
    try:
        _until(lambda: _row(workdir, "FINISHED"), 75, "the caught-up run to finish")
    finally:
        stop.set()
        scheduler.join(timeout=60)
    assert not scheduler.is_alive()
    runs = _runs(workdir)
    assert len(runs) == 1
    row = runs.iloc[0]
    assert (row["trigger"], row["status"]) == ("schedule", "FINISHED") and row["mlflow_run_id"]
    assert row["pid"] != os.getpid()  # the run had a process of its own
    next_run = schedule.list_schedules(workdir)["next_run"].iloc[0]
    assert next_run > datetime.now().astimezone()


def test_scheduled_run_skips_while_the_pipeline_runs(tiny):
    path, workdir = tiny
    with pipeline_lock(workdir, "tiny"):
        schedule.run_scheduled(str(path), str(workdir.root))
    row = RunHistory.for_workdir(workdir).frame().iloc[0]
    assert row["status"] == "SKIPPED" and "already running" in row["error"]


def test_invalid_scheduled_pipeline_is_recorded(tiny):
    path, workdir = tiny
    schedule.add_schedule(path, "0 6 2 * *", workdir)
    path.write_text("name: tiny\nforcast: {}\n")  # broken after scheduling
    schedule.run_scheduled(str(path), str(workdir.root))
    row = RunHistory.for_workdir(workdir).frame().iloc[0]
    assert row["status"] == "FAILED" and "unknown key" in row["error"]


# --- the scheduler at work: runs in processes of their own, stopped cleanly ------------------


def _runs(workdir: Workdir) -> pd.DataFrame:
    return RunHistory.for_workdir(workdir).frame()


def _row(workdir: Workdir, status: str, with_run: bool = False) -> pd.Series | None:
    """The latest run with ``status`` (and an MLflow run, when asked), if any."""
    runs = _runs(workdir)
    hits = runs[(runs["status"] == status) & (runs["mlflow_run_id"].notna() | (not with_run))]
    return None if hits.empty else hits.iloc[0]


def _until(check: Callable[[], object], seconds: float, what: str):
    """What ``check`` returns once it is not None/empty, polled; the test fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found is not None and (not isinstance(found, list | str) or found):
            return found
        time.sleep(0.2)
    pytest.fail(f"waited {seconds:g} s for {what}")


def _processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every live process; zombies are gone already."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if fields[0] not in ("Z", "X"):
            found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def _group(pgid: int) -> list[int]:
    return [pid for pid, _, group in _processes() if group == pgid]


def _children(parent: int) -> list[int]:
    return [pid for pid, ppid, _ in _processes() if ppid == parent]


def _scheduler_process(workdir: Workdir, log: Path, *options: str) -> subprocess.Popen:
    """``sopforecast scheduler`` as from a shell, its output in ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sopforecast", "scheduler", "--workdir", str(workdir.root), *options],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _kill(proc: subprocess.Popen, groups: list[int]) -> None:
    """Clean-up whatever the test left: the scheduler and the runs' process groups."""
    groups = groups + (_children(proc.pid) if proc.poll() is None else [])
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    for pgid in groups:
        if _group(pgid):
            os.killpg(pgid, signal.SIGKILL)


def test_running_scheduler_picks_up_a_new_schedule(tiny, tmp_path):
    path, workdir = tiny
    assert schedule.list_schedules(workdir).empty  # the store exists, with no schedules
    log = tmp_path / "scheduler.log"
    proc = _scheduler_process(workdir, log)
    try:
        _until(lambda: "Scheduler started" in log.read_text() or None, 60, "the scheduler to start")
        wd = ["--workdir", str(workdir.root)]
        assert main(["schedule", "add", str(path), "--cron", "* * * * *", *wd]) == 0  # as from a shell
        _miss(workdir, "tiny", minutes=1)  # due now rather than at the next minute
        row = _until(lambda: _row(workdir, "FINISHED"), 75, "the new schedule's run to finish")
        proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        _kill(proc, [])
    assert row["trigger"] == "schedule" and row["mlflow_run_id"]
    assert "RUNNING" not in set(_runs(workdir)["status"])
    assert "Scheduler stopped" in log.read_text()


def test_sigterm_stops_the_scheduler_and_its_run(slow, tmp_path):
    path, workdir = slow
    schedule.add_schedule(path, "0 6 2 * *", workdir)
    _miss(workdir, "slow", minutes=1)  # due: caught up as the scheduler starts
    log = tmp_path / "scheduler.log"
    proc = _scheduler_process(workdir, log)
    groups: list[int] = []
    try:
        row = _until(lambda: _row(workdir, "RUNNING", with_run=True), 80, "the run to start")
        run_pid = int(row["pid"])
        groups.append(run_pid)
        assert run_pid in _children(proc.pid) and os.getpgid(run_pid) == run_pid  # a group of its own
        workers = _until(lambda: _children(run_pid), 60, "the run's worker pool")
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        assert proc.wait(timeout=schedule.STOP_GRACE + 30) == 0, log.read_text()
        seconds = time.monotonic() - sent
    finally:
        _kill(proc, groups)
    assert seconds < schedule.STOP_GRACE + 15
    runs = _runs(workdir)
    assert len(runs) == 1
    stopped = runs.iloc[0]
    assert stopped["status"] == "STOPPED" and stopped["error"] == "stopped by SIGTERM to the scheduler"
    assert stopped["ended_at"] is not None and stopped["mlflow_run_id"] == row["mlflow_run_id"]
    assert not _group(run_pid) and not {*workers} & {pid for pid, _, _ in _processes()}
    with pipeline_lock(workdir, "slow"):  # the lock went with the run's process
        pass
    # the run's process ended itself within the grace period: its MLflow run says so too
    assert _client(workdir).get_run(row["mlflow_run_id"]).info.status == "KILLED"


def test_a_run_past_the_job_timeout_is_stopped(slow):
    path, workdir = slow
    schedule.add_schedule(path, "0 6 2 * *", workdir)
    _miss(workdir, "slow", minutes=1)
    stop = threading.Event()
    scheduler = threading.Thread(
        target=schedule.run_scheduler, args=(workdir,), kwargs={"job_timeout": 20, "poll": 0.5, "stop": stop}
    )
    scheduler.start()
    try:
        row = _until(lambda: _row(workdir, "TIMEOUT"), 80, "the run to time out")
        assert scheduler.is_alive()  # the scheduler goes on
        assert not _group(int(row["pid"]))
        with pipeline_lock(workdir, "slow"):
            pass
    finally:
        stop.set()
        scheduler.join(timeout=60)
    assert not scheduler.is_alive()
    assert row["error"].startswith("still running after the scheduler's job_timeout of 20 s;")
    assert row["mlflow_run_id"]  # stopped mid-run, not before it started
    assert list(_runs(workdir)["status"]) == ["TIMEOUT"]


def test_exit_after_stops_a_running_run(slow):
    path, workdir = slow
    schedule.add_schedule(path, "0 6 2 * *", workdir)
    _miss(workdir, "slow", minutes=1)
    started = time.monotonic()
    schedule.run_scheduler(workdir, exit_after=12, poll=0.5)
    assert time.monotonic() - started < 12 + schedule.STOP_GRACE + 10
    runs = _runs(workdir)
    assert list(runs["status"]) == ["STOPPED"]
    assert runs.iloc[0]["error"] == "stopped at the scheduler's exit_after (12 s)"
    if runs.iloc[0]["pid"] != os.getpid():  # the run's own row (it had started)
        assert not _group(int(runs.iloc[0]["pid"]))
    with pipeline_lock(workdir, "slow"):
        pass


def test_bad_job_timeout_names_the_flag(tiny, capsys):
    _, workdir = tiny
    assert main(["scheduler", "--job-timeout", "-5", "--workdir", str(workdir.root)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "job_timeout must be a positive number" in err and "--job-timeout" in err


def test_a_run_deaf_to_sigterm_is_killed_with_its_children_after_the_grace():
    # a process group whose leader and child ignore SIGTERM, as a run stuck in a lock would
    child = subprocess.Popen(["bash", "-c", "trap '' TERM; sleep 120 & wait"], start_new_session=True)
    try:
        _until(lambda: _children(child.pid), 10, "the group's second process")
        started = time.monotonic()
        schedule._end_group(child, grace=1.0)
        assert 1.0 <= time.monotonic() - started < 5
        assert child.returncode == -signal.SIGKILL and not _group(child.pid)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def test_run_history_opens_safely_from_several_processes_at_once(tmp_path):
    """The scheduler, its run's process and a planner's command may create the history
    database at the same moment; none of them may fail on "table already exists"."""
    from sopforecast.pipeline.history import RunHistory

    errors = []
    for attempt in range(10):
        url = f"sqlite:///{tmp_path / f'history{attempt}.db'}"
        barrier = threading.Barrier(6)

        def open_it(url=url, barrier=barrier):
            barrier.wait()
            try:
                RunHistory(url)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
