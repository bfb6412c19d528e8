"""Scheduling: cron schedules in the work directory's database, catch-up, one run at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from test_pipeline import _history, _pipeline

from sopforecast.cli import main
from sopforecast.errors import ConfigError
from sopforecast.pipeline import schedule
from sopforecast.pipeline.history import RunHistory, pipeline_lock
from sopforecast.workdir import Workdir


@pytest.fixture()
def tiny(tmp_path):
    _history(tmp_path / "sales.csv")
    return _pipeline(tmp_path), Workdir(tmp_path / "work")


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
    schedule.add_schedule(path, "* * * * *", workdir)  # every minute: ten slots missed
    _miss(workdir, "tiny", minutes=10)
    schedule.run_scheduler(workdir, exit_after=2)  # shutdown waits for the running job
    runs = RunHistory.for_workdir(workdir).frame()
    assert len(runs) == 1
    row = runs.iloc[0]
    assert (row["trigger"], row["status"]) == ("schedule", "FINISHED") and row["mlflow_run_id"]
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
