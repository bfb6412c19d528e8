"""The rules of a planning cycle, on SQLite and a real PostgreSQL server: one open draft per
cycle (a change to any published version continues it, never a silent branch), closed
cycles reopen only with a reason, "no version" means the current version of the latest
cycle, and versions are named the way planners read them."""

from __future__ import annotations

import pandas as pd
import pytest
import test_plan_store as base

from sopforecast.planning import service
from sopforecast.planning.service import ClosedCycle
from sopforecast.store.plans import parse_version_name

HIERARCHY, _at, _override = base.HIERARCHY, base._at, base._override
store_url, open_store, example = base.store_url, base.open_store, base.example  # the same fixtures

FEB, MAR = pd.Timestamp("2026-02-01"), pd.Timestamp("2026-03-01")


def _create(store, example, **kwargs):
    lines, bottom, _ = example
    return service.create_version(store, "demand", lines, bottom, HIERARCHY, **kwargs)


def test_a_change_to_an_older_published_version_continues_the_cycle(open_store, example):
    store = open_store()
    lines = store.lines(_create(store, example))
    v1 = store.publish("2026-01", by="lead")
    v2, _ = service.apply(store, _override(lines, "C1", "2026-02", value=900.0), version=v1)
    v2 = store.publish(v2, by="lead")
    assert (v1.name, v2.name) == ("2026-01 v1", "2026-01 v2")

    # the planner still looks at v1 (--version 7 in the issue): the change builds on v2, not on v1
    v3, _ = service.apply(store, _override(lines, "R2", "2026-03", value=321.0), version=v1)
    assert v3.name == "2026-01 v3" and v3.parent_id == v2.id and v3.branch == ""
    out = store.lines(v3)
    assert _at(out, "C1", FEB) == pytest.approx(900.0) and _at(out, "R2", MAR) == pytest.approx(321.0)
    # and again from v1 or v2: the same draft, never a second one
    for old in (v1, v2):
        again, _ = service.apply(store, _override(lines, "C2", "2026-03", value=55.0), version=old)
        assert again.id == v3.id
    listed = store.versions("demand")
    assert list(listed["status"]) == ["draft", "published", "published"]
    assert store.version("2026-01").id == v3.id  # the cycle's current version is its draft
    with pytest.raises(Exception, match="published already"):
        service.publish(store, "2026-01 v2")


def test_a_new_forecast_carries_the_cycles_overrides_and_a_failed_run_gives_the_draft_back(
    open_store,
    example,
):
    store = open_store()
    first = _create(store, example)
    lines = store.lines(first)
    service.apply(store, _override(lines, "C1", "2026-02", value=900.0, author="ana"), version=first)
    rerun = _create(store, example, source_run_id="run-2")
    assert rerun.name == "2026-01 v2" and rerun.parent_id == first.id
    assert store.version(first.id).status == "superseded"
    carried = store.overrides(rerun)
    assert list(carried["key"]) == ["C1"] and carried["author"].item() == "ana"
    assert _at(store.lines(rerun), "C1", FEB) == pytest.approx(900.0)
    store.delete_draft(rerun)  # the run failed after drafting: the earlier draft is the cycle's again
    assert store.version(first.id).status == "draft" and store.version("2026-01").id == first.id


def test_a_cycle_with_actuals_is_closed_unless_reopened_with_a_reason(open_store, example):
    store = open_store()
    lines = store.lines(_create(store, example))
    published = store.publish("2026-01")
    store.load_actuals("demand", pd.DataFrame({"unique_id": ["C1/F1/S1/R1"], "ds": [FEB], "y": [12.0]}))
    with pytest.raises(ClosedCycle, match=r"closed: actuals up to 2026-02.*--reopen"):
        service.apply(store, _override(lines, "C1", "2026-03", value=1.0), version=published)
    assert store.overrides(plan="demand").empty and len(store.versions()) == 1  # nothing written

    draft, _ = service.apply(
        store,
        _override(lines, "C1", "2026-03", value=1.0),
        version=published,
        reopen="ERP restatement",
        by="ana",
    )
    assert (draft.reopen_reason, draft.reopened_by) == ("ERP restatement", "ana")
    with pytest.raises(ClosedCycle):
        service.publish(store, "2026-01")
    done = service.publish(store, "2026-01", reopen="ERP restatement")
    assert done.status == "published"


def test_no_version_means_the_current_version_of_the_latest_cycle(open_store, example):
    store = open_store()
    lines, bottom, _ = example
    later = lines.assign(ds=lines["ds"] + pd.DateOffset(months=1))
    service.create_version(store, "demand", later, bottom, HIERARCHY)  # cycle 2026-02, id 1
    store.publish("2026-02")
    _create(store, example)  # a back-filled past cycle 2026-01 made after it: id 2
    assert store.version().name == "2026-02 v1"  # the latest cycle, not the latest id
    assert store.version("2026-01 v1").id == 2 and store.version("2026-02 v1").id == 1
    assert store.version("v1").id == 1  # a bare number: of the latest cycle
    with pytest.raises(Exception, match="no plan version '2026-02 v9'"):
        store.version("2026-02 v9")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("2026-01 v2", ("2026-01", 2)),
        (" 2026-01v12 ", ("2026-01", 12)),
        ("FY26-P03 v1", ("FY26-P03", 1)),
        ("2026-01 v3 [what-if]", ("2026-01", 3)),
        ("v2", (None, 2)),
    ],
)
def test_version_names_parse(text, parsed):
    assert parse_version_name(text) == parsed


@pytest.mark.parametrize("text", ["2026-01", "17", "version 2", ""])
def test_other_text_is_not_a_version_name(text):
    assert parse_version_name(text) is None


def test_a_stale_workbook_is_refused_on_every_store(open_store, example, tmp_path, monkeypatch):
    from openpyxl import load_workbook

    from sopforecast.errors import DataError
    from sopforecast.planning.workflow import apply_override_file, export_version

    monkeypatch.setenv("SOPFORECAST_USER", "ana")
    store = open_store()
    draft = _create(store, example)
    store.load_actuals("demand", example[2][["unique_id", "ds", "y"]])  # the workbook shows them
    lines = store.lines(draft)
    book = export_version(store, tmp_path / "plan.xlsx", version=draft, layout="planner")
    # another planner changes the draft after the export
    service.apply(store, _override(lines, "C1", "2026-02", value=900.0, author="ben"), version=draft)
    wb = load_workbook(book)
    ws = wb["Plan"]
    rows = list(ws.iter_rows(values_only=True))
    head = next(i for i, r in enumerate(rows) if "unique_id" in r and "measure" in r)
    uid, measure, col = (
        rows[head].index("unique_id"),
        rows[head].index("measure"),
        rows[head].index("2026-03"),
    )
    r = next(i for i, row in enumerate(rows) if row[uid] == "C2" and row[measure] == "consensus")
    ws.cell(row=r + 1, column=col + 1, value=123.0)
    wb.save(book)
    with pytest.raises(DataError, match=r"(?s)has moved.*C1 2026-02"):
        apply_override_file(store, book, reason="review")
    assert list(store.overrides(plan="demand")["author"]) == ["ben"]  # nothing applied
    version, _ = apply_override_file(store, book, reason="review", rebase=True)
    active = store.overrides(version).set_index("key")
    assert active.loc["C2", "value"] == 123.0 and active.loc["C1", "author"] == "ben"


def test_a_busy_postgresql_store_names_the_session_holding_it(postgres_server, example, monkeypatch):
    """Another session holds the version's row lock: the write waits the store timeout,
    then refuses naming that session (pid, application name), and writes nothing."""
    from sopforecast.store.engine import StoreBusy
    from sopforecast.store.plans import PlanStore

    name = postgres_server.create_database()
    url = postgres_server.url(name, driver="psycopg")
    try:
        store = PlanStore(url, timeout=1)
        draft = _create(store, example)
        lines = store.lines(draft)
        with postgres_server.connect(name) as other:
            other.autocommit = False
            other.execute("SET application_name = 'erp-import'")
            other.execute("SELECT id FROM plan_versions FOR UPDATE")
            with pytest.raises(StoreBusy, match=r"busy: pid \d+ \(erp-import"):
                service.apply(store, _override(lines, "C1", "2026-02", value=1.0), version=draft)
            other.rollback()
        assert store.overrides(plan="demand").empty
        store.dispose()
    finally:
        postgres_server.drop_database(name)
