"""The plan store on SQLite and on a real PostgreSQL server: versions, publishing, overrides,
actuals, the schema and its migrations, atomic writes (also under SIGKILL), first use by
two processes at once. Real numbers from a small synthetic hierarchy; no mocks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from sopforecast.data.hierarchy import Hierarchy
from sopforecast.errors import SopforecastError
from sopforecast.planning import service
from sopforecast.planning.lines import is_coherent, summing
from sopforecast.planning.overrides import validate_overrides
from sopforecast.planning.plan import draft_lines
from sopforecast.store import schema
from sopforecast.store.plans import PlanNotFound, PlanStore
from sopforecast.store.tables import overrides, plan_lines, plan_series, plan_versions

ROOT = Path(__file__).resolve().parents[1]
HIERARCHY = ["category/family/sku", "region"]
KEYS = ["category", "family", "sku", "region"]
BOTTOM = [
    ("C1", "F1", "S1", "R1"),
    ("C1", "F1", "S1", "R2"),
    ("C1", "F2", "S2", "R1"),
    ("C2", "F3", "S3", "R1"),
    ("C2", "F3", "S3", "R2"),
    ("C2", "F4", "S4", "R2"),
]
MONTHS = 12
FIRST = pd.Timestamp("2026-01-01")
N_SERIES = 29  # every series of every level of BOTTOM under HIERARCHY


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A new, empty database: a SQLite file, or a fresh database on the session's server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'plans.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url(name, driver="psycopg")
    finally:
        server.drop_database(name)


@pytest.fixture
def open_store(store_url):
    """Open a :class:`PlanStore` on the test's database (its engines disposed afterwards)."""
    opened: list[PlanStore] = []

    def _open(url: str = store_url) -> PlanStore:
        store = PlanStore(url)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.engine.dispose()


@pytest.fixture(scope="module")
def example():
    """Plan lines and bottom series of a coherent synthetic forecast (29 series, 12 months)."""
    rng = np.random.default_rng(7)
    bottom = pd.DataFrame(BOTTOM, columns=KEYS)
    bottom.insert(0, "unique_id", bottom[KEYS].agg("/".join, axis=1))
    S, _ = summing(bottom, HIERARCHY)
    assert len(S) == N_SERIES

    past = pd.date_range(FIRST - pd.DateOffset(months=24), periods=24, freq="MS")
    history = pd.concat(
        [
            bottom.assign(ds=ds, y=np.round(rng.uniform(20, 200, len(bottom)), 1))
            for ds in past  # one row per bottom series and month
        ],
        ignore_index=True,
    )[["unique_id", "ds", "y", *KEYS]]

    future = pd.date_range(FIRST, periods=MONTHS, freq="MS")
    base = rng.uniform(50, 150, (len(bottom), MONTHS))  # non-round floats: exact round trips
    parts = []
    for name, scale in (("forecast", 1.0), ("forecast-lo-80", 0.8), ("forecast-hi-80", 1.25)):
        every = S.to_numpy() @ (base * scale)  # aggregates are the sums of their bottom series
        parts.append(pd.DataFrame(every, index=S.index, columns=future).stack().rename(name))
    forecast = pd.concat(parts, axis=1).rename_axis(["unique_id", "ds"]).reset_index()
    lines, bottom_out = draft_lines(forecast, history, HIERARCHY, months=MONTHS)
    assert len(lines) == N_SERIES * MONTHS
    return lines, bottom_out, history


def _create(store: PlanStore, example, plan: str = "demand", **kwargs):
    lines, bottom, _ = example
    return service.create_version(store, plan, lines, bottom, HIERARCHY, **kwargs)


def _counts(store: PlanStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (plan_versions, plan_series, plan_lines, overrides)
        }


def _raw_lines(store: PlanStore, version_id: int) -> list[tuple]:
    """The stored rows of a version's lines, as the database holds them."""
    query = select(plan_lines).where(plan_lines.c.version_id == version_id)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query.order_by(plan_lines.c.unique_id, plan_lines.c.ds))]


def _override(lines: pd.DataFrame, key: str, month: str, author: str = "ana", **change) -> pd.DataFrame:
    raw = pd.DataFrame([{"key": key, "month": month, "author": author, "reason": "test", **change}])
    return validate_overrides(raw, lines)


def _at(lines: pd.DataFrame, uid: str, ds: pd.Timestamp, column: str = "final") -> float:
    return float(lines.loc[(lines["unique_id"] == uid) & (lines["ds"] == ds), column].item())


def _under(S: Hierarchy, key: str) -> list[str]:
    return list(S.bottom_of(key))


def _sql(store: PlanStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))


# --------------------------------------------------------------------------------- tests
def test_create_version_stores_every_line_and_series(open_store, example):
    lines, bottom, _ = example
    store = open_store()
    v = _create(
        store,
        example,
        source_run_id="run-1",
        created_by="ana",
        history_end=pd.Timestamp("2025-12-01"),
        data_config={"freq": "MS"},
    )
    assert (v.plan, v.cycle, v.number, v.status, v.parent_id) == ("demand", "2026-01", 1, "draft", None)
    assert (v.created_by, v.source_run_id, v.bucket) == ("ana", "run-1", "month")
    assert v.history_end == date(2025, 12, 1) and v.hierarchy == HIERARCHY
    assert v.data_config == {"freq": "MS"}
    assert _counts(store) == {"plan_versions": 1, "plan_series": N_SERIES, "plan_lines": 348, "overrides": 0}

    stored = store.lines(v)
    assert list(stored.columns) == list(lines.columns)
    pd.testing.assert_frame_equal(stored, lines, check_exact=True)
    assert stored["author"].isna().all() and stored["consensus"].isna().all()
    pd.testing.assert_frame_equal(store.bottom(v), bottom, check_like=True)  # key columns in any order
    S, levels = service.structure(store, v)
    expected_S, expected_levels = summing(bottom, HIERARCHY)
    pd.testing.assert_index_equal(S.index, expected_S.index)
    pd.testing.assert_index_equal(S.columns, expected_S.columns)
    assert (S.S != expected_S.S).nnz == 0
    pd.testing.assert_series_equal(levels, expected_levels)

    listed = store.versions()
    assert len(listed) == 1
    row = listed.iloc[0]
    assert row["status"] == "draft" and row["overrides"] == 0 and row["created_by"] == "ana"
    total = lines.loc[lines["unique_id"] == "Total", "final"].sum()
    assert row["total_final"] == pytest.approx(total, rel=1e-12)
    assert row["total_final"] == pytest.approx(lines.loc[lines["unique_id"].isin(S.columns), "final"].sum())

    # numbers count per (plan, cycle)
    assert _create(store, example).number == 2
    assert _create(store, example, cycle="2026-02").number == 1
    other = _create(store, example, plan="other")
    assert (other.number, other.cycle) == (1, "2026-01")
    assert _create(store, example).number == 3
    listed = store.versions("demand")
    assert list(listed["number"]) == [3, 1, 2, 1]  # newest first
    assert list(listed["cycle"]) == ["2026-01", "2026-02", "2026-01", "2026-01"]
    # one open draft per cycle: a new forecast for 2026-01 supersedes the draft before it
    assert list(listed["status"]) == ["draft", "draft", "superseded", "superseded"]
    # no version named: the current version of the latest cycle, not the newest id
    assert store.version(plan="demand").name == "2026-02 v1"
    assert store.version("2026-01", plan="demand").number == 3  # a cycle: its open draft
    assert store.version("2026-01 v2", plan="demand").status == "superseded"  # by name
    assert store.version(" 2026-01  v3 ", plan="demand").id == store.version("2026-01").id
    assert store.version(str(v.id)).id == v.id and store.version(v.id).status == "superseded"
    assert store.version().plan == "demand"  # the latest of all
    with pytest.raises(PlanNotFound, match="versions here"):
        store.version(10_000)
    assert _counts(store)["plan_lines"] == 5 * 348


def test_flat_plan_round_trips(open_store, example):
    lines, bottom, history = example
    ids = bottom["unique_id"]
    forecast = lines[lines["unique_id"].isin(ids)].rename(
        columns={"statistical": "forecast", "statistical-lo-80": "forecast-lo-80"}
    )[["unique_id", "ds", "forecast", "forecast-lo-80"]]
    flat, flat_bottom = draft_lines(forecast, history[["unique_id", "ds", "y"]], [], months=MONTHS)
    assert set(flat["level"]) == {"series"} and len(flat) == len(ids) * MONTHS
    store = open_store()
    v = service.create_version(store, "flat", flat, flat_bottom, [])
    assert v.hierarchy == [] and _counts(store)["plan_series"] == len(ids)
    pd.testing.assert_frame_equal(store.lines(v), flat, check_exact=True)
    pd.testing.assert_frame_equal(store.bottom(v), flat_bottom)
    S, _ = service.structure(store, v)
    np.testing.assert_array_equal(S.to_numpy(), np.eye(len(ids)))

    uid = ids.iloc[2]
    service.apply(store, _override(flat, uid, "2026-04", value=42.0), version=v)
    out = store.lines(v)
    changed = out[out["consensus"].notna()]
    assert changed[["unique_id", "ds", "final"]].values.tolist() == [[uid, pd.Timestamp("2026-04-01"), 42.0]]
    rest = out.drop(index=changed.index)
    assert (rest["final"] == rest["statistical"]).all()


def test_publish_freezes_a_version(open_store, example):
    store = open_store()
    draft = _create(store, example)
    lines = store.lines(draft)
    same, _ = service.apply(store, _override(lines, "C1", "2026-02", value=1000.0), version=draft)
    assert same.id == draft.id  # a draft takes overrides in place
    first = int(store.overrides(draft)["id"].item())

    published = store.publish(draft.id, by="lead")
    assert published.status == "published" and published.published_by == "lead"
    assert published.published_at is not None
    with pytest.raises(SopforecastError, match="published already"):
        store.publish(draft.id)
    with pytest.raises(SopforecastError, match="published"):
        store.delete_draft(published)
    frozen_rows, frozen = _raw_lines(store, draft.id), store.lines(draft)
    frozen_overrides = store.overrides(published)

    # an override on the published version: a new draft carries the old override and the new one
    new, result = service.apply(store, _override(lines, "R2", "2026-05", change_pct=10.0), version=published)
    assert new.id != published.id and new.parent_id == published.id
    assert (new.number, new.status, new.cycle, new.plan, new.name) == (
        2,
        "draft",
        "2026-01",
        "demand",
        "2026-01 v2",
    )
    assert list(result.applied["key"]) == ["R2"]  # what this change did; the carried one is in the audit
    carried = store.overrides(new).sort_values("id")
    assert list(carried["key"]) == ["C1", "R2"]
    assert list(carried["copied_from"].fillna(0).astype(int)) == [first, 0]
    assert list(carried["origin_id"].fillna(0).astype(int)) == [first, 0]
    out = store.lines(new)
    may, feb = pd.Timestamp("2026-05-01"), pd.Timestamp("2026-02-01")
    assert _at(out, "R2", may) == pytest.approx(1.1 * _at(lines, "R2", may, "statistical"), rel=1e-12)
    assert _at(out, "C1", feb) == pytest.approx(1000.0, rel=1e-12)
    S, _ = service.structure(store, new)
    assert is_coherent(out, S)

    # the published version did not change, not by one byte
    assert _raw_lines(store, published.id) == frozen_rows
    pd.testing.assert_frame_equal(store.lines(published), frozen, check_exact=True)
    pd.testing.assert_frame_equal(store.overrides(published), frozen_overrides)
    assert store.version(published.id) == published

    # another change to the published version continues the cycle's draft: never a branch
    again, _ = service.apply(store, _override(lines, "C2", "2026-03", value=500.0), version=published)
    assert again.id == new.id and again.revision == new.revision + 1
    assert _at(store.lines(again), "R2", may) == pytest.approx(_at(out, "R2", may), rel=1e-12)

    # reverting the published version's override undoes its copy in the cycle's draft
    reverted, _ = service.revert(store, first, by="ben", reason="promo cancelled")
    assert reverted.id == new.id and reverted.status == "draft"
    back = store.lines(reverted)
    assert _at(back, "C1", feb) == pytest.approx(_at(back, "C1", feb, "statistical"), rel=1e-12)
    copy = store.overrides(reverted).set_index("key")
    assert int(copy.loc["C1", "copied_from"]) == first
    assert copy.loc["C1", "reverted_by"] == "ben" and copy.loc["C1", "revert_reason"] == "promo cancelled"
    assert copy.loc[["R2", "C2"], "reverted_at"].isna().all()
    assert _raw_lines(store, published.id) == frozen_rows
    pd.testing.assert_frame_equal(store.overrides(published), frozen_overrides)
    with pytest.raises(SopforecastError, match="not in force"):
        service.revert(store, first, by="ben", reason="twice")  # its copy is reverted already

    listed = store.versions().set_index("id")
    assert listed.loc[published.id, "overrides"] == 1
    assert listed.loc[new.id, "overrides"] == 2
    assert list(listed["status"]) == ["draft", "published"]
    # a named branch is opened only when asked for
    branch, _ = service.apply(
        store, _override(lines, "C1", "2026-04", value=10.0), version=published, branch="what-if"
    )
    assert branch.branch == "what-if" and branch.id not in (new.id, published.id)
    assert store.version("2026-01").id == new.id  # the cycle's current version is its main draft


def test_overrides_on_a_draft_are_disaggregated_and_reverted(open_store, example):
    store = open_store()
    draft = _create(store, example)
    lines = store.lines(draft)
    S, _ = service.structure(store, draft)
    feb = pd.Timestamp("2026-02-01")
    target = 1234.5
    checked = _override(lines, "C1", "2026-02", author="ana", value=target)

    version, result = service.apply(store, checked, version=draft, source="sheet.csv")
    assert version.id == draft.id and version.status == "draft"
    assert result.conflicts.empty and result.applied["requested"].item() == target
    out = store.lines(draft)
    assert is_coherent(out, S)

    under = _under(S, "C1")
    stat = np.array([_at(lines, b, feb, "statistical") for b in under])
    got = np.array([_at(out, b, feb) for b in under])
    np.testing.assert_allclose(got, target * stat / stat.sum(), rtol=1e-12)  # in proportion
    assert _at(out, "C1", feb) == pytest.approx(target, rel=1e-12)
    c2 = _at(lines, "C2", feb, "statistical")
    assert _at(out, "Total", feb) == pytest.approx(target + c2, rel=1e-12)
    assert _at(out, "C2", feb) == c2  # untouched lines keep their statistical value exactly

    touched = S.index[np.asarray(S.S[:, S.columns.isin(under)].sum(axis=1)).ravel() > 0.5]
    changed = out[out["consensus"].notna()]
    assert set(changed["ds"]) == {feb}
    assert set(changed["unique_id"]) == set(touched)
    assert (changed["author"] == "ana").all()
    assert out.loc[out["consensus"].isna(), "author"].isna().all()
    untouched = out["consensus"].isna()
    assert (out.loc[untouched, "final"] == out.loc[untouched, "statistical"]).all()

    listed = store.overrides(draft)
    assert len(listed) == 1
    row = listed.iloc[0]
    assert (row["key"], row["value"], row["author"], row["reason"]) == ("C1", target, "ana", "test")
    assert (row["basis"], row["source"], row["plan"], row["cycle"]) == (
        "statistical",
        "sheet.csv",
        "demand",
        "2026-01",
    )
    assert row["ds"] == feb and pd.notna(row["created_at"]) and pd.isna(row["reverted_at"])
    assert store.overrides(plan="demand")["id"].tolist() == [row["id"]]
    assert store.versions()["overrides"].item() == 1
    total = out.loc[out["unique_id"] == "Total", "final"].sum()
    assert store.versions()["total_final"].item() == pytest.approx(total, rel=1e-12)

    # a second override in another month, then revert the first: the second stays
    service.apply(store, _override(lines, "C2/F3/S3/R1", "2026-03", author="cem", value=0.0), version=draft)
    again, _ = service.revert(store, int(row["id"]), by="ben")
    assert again.id == draft.id
    out = store.lines(draft)
    assert is_coherent(out, S)
    assert out.loc[out["ds"] == feb, "consensus"].isna().all()
    assert (out.loc[out["ds"] == feb, "final"] == out.loc[out["ds"] == feb, "statistical"]).all()
    assert _at(out, "C2/F3/S3/R1", pd.Timestamp("2026-03-01")) == 0.0
    assert set(out.loc[out["consensus"].notna(), "author"]) == {"cem"}

    listed = store.overrides(draft).set_index("id")
    assert listed.loc[row["id"], "reverted_by"] == "ben" and pd.notna(listed.loc[row["id"], "reverted_at"])
    assert listed["reverted_at"].isna().sum() == 1
    with pytest.raises(SopforecastError, match="reverted already"):
        service.revert(store, int(row["id"]))
    with pytest.raises(PlanNotFound, match="no override"):
        service.revert(store, 10_000)

    # reverting the last one: the plan is the statistical forecast again
    service.revert(store, int(listed.index[listed["reverted_at"].isna()][0]), by="ben")
    out = store.lines(draft)
    assert (out["final"] == out["statistical"]).all()
    assert out["consensus"].isna().all() and out["author"].isna().all()
    pd.testing.assert_frame_equal(out, lines, check_exact=True)
    assert store.versions()["overrides"].item() == 0


def test_history_basis_is_kept_when_the_plan_is_replayed(open_store, example):
    lines, _, history = example
    store = open_store()
    draft = _create(store, example)
    store.load_actuals("demand", history[["unique_id", "ds", "y"]])
    S, _ = service.structure(store, draft)
    feb = pd.Timestamp("2026-02-01")
    under = _under(S, "C1")
    last_year = history[history["ds"] >= FIRST - pd.DateOffset(months=12)]
    shares = last_year.groupby("unique_id")["y"].sum().reindex(under).to_numpy()
    expected = 900.0 * shares / shares.sum()

    # no history passed: the store reads it from the plan's actuals
    service.apply(store, _override(lines, "C1", "2026-02", value=900.0), version=draft, basis="history")
    out = store.lines(draft)
    np.testing.assert_allclose([_at(out, b, feb) for b in under], expected, rtol=1e-12)
    assert store.overrides(draft)["basis"].tolist() == ["history"]

    # a later override and its revert replay the first with the basis it was made with
    service.apply(store, _override(lines, "R2", "2026-06", value=50.0), version=draft)
    later = int(store.overrides(draft)["id"].max())
    service.revert(store, later)
    out = store.lines(draft)
    np.testing.assert_allclose([_at(out, b, feb) for b in under], expected, rtol=1e-12)
    assert is_coherent(out, S)
    assert out.loc[out["ds"] == pd.Timestamp("2026-06-01"), "consensus"].isna().all()

    # and so does the draft that carries it from the published version
    published = store.publish(draft.id)
    copy, _ = service.apply(store, _override(lines, "C2", "2026-03", change_pct=-20.0), version=published)
    carried = store.lines(copy)
    np.testing.assert_allclose([_at(carried, b, feb) for b in under], expected, rtol=1e-12)
    assert sorted(store.overrides(copy)["basis"]) == ["history", "statistical"]


def test_a_failing_write_leaves_nothing(open_store, example):
    lines, bottom, _ = example
    store = open_store()
    first = _create(store, example)
    before = _counts(store)
    broken = lines.copy()
    broken.loc[100, "statistical"] = np.nan  # NOT NULL: the last insert of the transaction fails
    with pytest.raises(IntegrityError):
        service.create_version(store, "demand", broken, bottom, HIERARCHY)
    assert _counts(store) == before
    assert store.versions()["id"].tolist() == [first.id]
    assert _create(store, example).number == 2  # no gap left by the failed one

    # an override batch with one bad row: nothing of the batch is written
    draft = store.version()
    good = _override(lines, "C1", "2026-02", value=900.0)
    bad = _override(lines, "C2", "2026-02", value=10.0).assign(author=None)  # author NOT NULL
    written = _raw_lines(store, draft.id)
    with pytest.raises(IntegrityError):
        service.apply(store, pd.concat([good, bad], ignore_index=True), version=draft)
    assert store.overrides(draft).empty and _raw_lines(store, draft.id) == written


BIG_PLAN = textwrap.dedent(
    """
    import sys
    import numpy as np, pandas as pd
    from sopforecast.planning import service
    from sopforecast.store import bulk
    from sopforecast.planning.lines import summing
    from sopforecast.store.plans import PlanStore

    url, marker = sys.argv[1], sys.argv[2]
    cats, skus, months = {cats}, {skus}, {months}
    bottom = pd.DataFrame({{"category": np.repeat([f"c{{i}}" for i in range(cats)], skus)}})
    bottom["sku"] = [f"s{{i:04d}}" for i in range(cats * skus)]
    bottom["unique_id"] = bottom["category"] + "/" + bottom["sku"]
    S, levels = summing(bottom, ["category/sku"])
    values = S.to_numpy() @ np.random.default_rng(0).uniform(1, 100, (len(bottom), months))
    ds = pd.date_range("2000-01-01", periods=months, freq="MS")
    lines = pd.DataFrame({{
        "unique_id": np.repeat(S.index.to_numpy(), months),
        "level": np.repeat(levels.to_numpy(), months),
        "ds": np.tile(ds, len(S)),
        "statistical": values.ravel(),
    }})
    lines["statistical-lo-80"] = lines["statistical"] * 0.8
    lines["statistical-hi-80"] = lines["statistical"] * 1.2
    lines = lines.assign(naive=1.0, consensus=np.nan, final=lines["statistical"], author=None,
                         price=np.nan, unit_cost=np.nan)
    store = PlanStore(url)
    load = bulk.insert_columns

    def in_parts(conn, table, columns):  # the lines' bulk load in 200 parts: killed amid them
        if table.name != "plan_lines":
            return load(conn, table, columns)
        open(marker, "w").close()
        n = len(columns["unique_id"])
        step = max(1, n // 200)
        for start in range(0, n, step):
            load(conn, table, {{k: v[start : start + step] for k, v in columns.items()}})
        return n

    bulk.insert_columns = in_parts

    service.create_version(store, "big", lines, bottom[["unique_id", "category", "sku"]], ["category/sku"])
    open(marker + ".done", "w").close()
    """
)


def test_sigkill_while_writing_leaves_no_partial_version(open_store, store_url, tmp_path):
    cats, skus, months = 10, 100, 198  # 1011 series x 198 months
    expected_series, expected_lines = 1 + cats + cats * skus, (1 + cats + cats * skus) * months
    assert expected_lines > 200_000
    marker = tmp_path / "writing"
    script = BIG_PLAN.format(cats=cats, skus=skus, months=months)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, store_url, str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():  # the transaction is open: version and series rows are in it
            if proc.poll() is not None:
                pytest.fail(f"the writer ended before writing lines: {proc.communicate()[1][-2000:]}")
            assert time.monotonic() < deadline, "the writer did not start writing within 60 s"
            time.sleep(0.005)
        time.sleep(0.15)  # well into the 200k lines
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    finished = Path(f"{marker}.done").exists()
    assert not finished, "the writer finished before the kill; the test did not kill it mid-write"

    store = open_store()  # SQLite rolls the hot journal back here; PostgreSQL aborted it
    counts = _counts(store)
    if counts["plan_versions"]:  # committed just before the kill: then whole
        assert counts == {
            "plan_versions": 1,
            "plan_series": expected_series,
            "plan_lines": expected_lines,
            "overrides": 0,
        }
    else:
        assert counts == {"plan_versions": 0, "plan_series": 0, "plan_lines": 0, "overrides": 0}
    assert store.versions("big")["number"].tolist() == ([1] if counts["plan_versions"] else [])
    if store_url.startswith("sqlite"):
        db = Path(store_url.removeprefix("sqlite:///"))
        with store.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        assert not Path(f"{db}-journal").exists() or Path(f"{db}-journal").stat().st_size == 0


def test_actuals_keep_drivers_and_load_time_through_the_bulk_load(open_store):
    store = open_store()
    frame = pd.DataFrame(
        {
            "unique_id": ["A", "A", '=B,"x"'],
            "ds": pd.to_datetime(["2025-10-01", "2025-11-01", "2025-10-01"]),
            "y": [1.5, 2.0, 3.25],
            "price": [9.99, None, 1e-07],
            "promo": [1, 0, None],
        }
    )
    before = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s")
    assert store.load_actuals("demand", frame, source="erp.csv")["new"] == 3
    got = store.actuals("demand", drivers=True).set_index(["unique_id", "ds"])
    assert got.loc[("A", pd.Timestamp("2025-10-01")), ["price", "promo"]].tolist() == [9.99, 1.0]
    assert np.isnan(got.loc[("A", pd.Timestamp("2025-11-01")), "price"])
    assert got.loc[('=B,"x"', pd.Timestamp("2025-10-01")), "price"] == 1e-07
    every = store.actual_revisions("demand")
    stored = {json.loads(v)["promo"] if "promo" in json.loads(v) else None for v in every["drivers"]}
    assert stored == {1.0, 0.0, None}
    # the load time is a timestamp (read back as one), not text
    assert every["loaded_at"].dtype.kind == "M" and (every["loaded_at"] >= before).all()


def test_actuals_are_loaded_with_revisions(open_store):
    store = open_store()
    frame = pd.DataFrame(
        {
            "unique_id": ["A"] * 3 + ["B"] * 3,
            "ds": list(pd.date_range("2025-10-01", periods=3, freq="MS")) * 2,
            "y": [10.5, 11.25, 12.0, 7.0, 0.0, 3.125],
        }
    )
    assert store.load_actuals("demand", frame, source="erp.csv") == {"new": 6, "revised": 0, "unchanged": 0}
    got = store.actuals("demand")
    pd.testing.assert_frame_equal(got[["unique_id", "ds", "y"]], frame)
    assert (got["revision"] == 1).all()

    assert store.load_actuals("demand", frame) == {"new": 0, "revised": 0, "unchanged": 6}
    assert len(store.actual_revisions("demand")) == 6  # nothing written again

    restated = frame.copy()
    restated.loc[4, "y"] = 2.5  # B, 2025-11 restated by the ERP
    assert store.load_actuals("demand", restated, source="erp2.csv") == {
        "new": 0,
        "revised": 1,
        "unchanged": 5,
    }
    got = store.actuals("demand")
    pd.testing.assert_frame_equal(got[["unique_id", "ds", "y"]], restated)
    nov = got[(got["unique_id"] == "B") & (got["ds"] == pd.Timestamp("2025-11-01"))]
    assert nov["y"].item() == 2.5 and nov["revision"].item() == 2
    assert (got.drop(index=nov.index)["revision"] == 1).all()

    every = store.actual_revisions("demand")
    assert len(every) == 7
    both = every[(every["unique_id"] == "B") & (every["ds"] == pd.Timestamp("2025-11-01"))]
    both = both.sort_values("revision")
    assert both["y"].tolist() == [0.0, 2.5] and both["revision"].tolist() == [1, 2]
    assert both["source"].tolist() == ["erp.csv", "erp2.csv"]

    # actuals belong to their plan
    assert store.actuals("other").empty and store.actual_revisions("other").empty
    assert store.load_actuals("other", frame.head(2)) == {"new": 2, "revised": 0, "unchanged": 0}
    assert len(store.actuals("demand")) == 6


def test_new_database_gets_the_schema_beside_mlflow(open_store, store_url):
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:  # MLflow's own Alembic table, at one of its revisions
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('bda7b8c39065')"))
    finally:
        engine.dispose()
    store = open_store()
    tables = set(inspect(store.engine).get_table_names())
    assert {"plan_versions", "plan_series", "plan_lines", "overrides", "actuals", "pipeline_runs"} <= tables
    assert schema.VERSION_TABLE == "sopforecast_alembic_version" and schema.VERSION_TABLE in tables
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            "bda7b8c39065"
        ]
        assert conn.execute(text(f"SELECT version_num FROM {schema.VERSION_TABLE}")).scalars().all() == [
            schema.head_revision()
        ]
    assert schema.current_revision(store.engine) == schema.head_revision()
    assert schema.upgrade(store.engine) == (schema.head_revision(), schema.head_revision())
    open_store()  # opens again as it is


def test_new_database_has_no_mlflow_table(open_store):
    store = open_store()
    tables = set(inspect(store.engine).get_table_names())
    assert "alembic_version" not in tables and schema.VERSION_TABLE in tables
    head = schema.head_revision()
    assert head and schema.current_revision(store.engine) == head
    assert schema.upgrade(store.engine) == (head, head)


def test_upgrade_creates_an_empty_database(store_url, open_store):
    engine = create_engine(store_url)
    try:
        assert schema.current_revision(engine) is None
        assert schema.upgrade(engine) == (None, schema.head_revision())
    finally:
        engine.dispose()
    assert schema.current_revision(open_store().engine) == schema.head_revision()


def test_a_store_from_elsewhere_is_refused(open_store, store_url, example):
    store = open_store()
    _create(store, example)
    _sql(store, f"UPDATE {schema.VERSION_TABLE} SET version_num = 'ffff9999'")
    with pytest.raises(schema.OutdatedSchemaError, match="newer sopforecast") as err:
        open_store()
    assert "ffff9999" in str(err.value)

    _sql(store, f"DELETE FROM {schema.VERSION_TABLE}")
    assert schema.current_revision(store.engine) is None
    with pytest.raises(schema.OutdatedSchemaError, match="not made by sopforecast"):
        open_store()
    assert _counts(store)["plan_lines"] == 348  # refused, not touched


OPEN_AT_ONCE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from sopforecast.store.plans import PlanStore
    from sopforecast.store.schema import current_revision

    url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    store = PlanStore(url)
    print(current_revision(store.engine), len(store.versions()))
    """
)


def test_two_processes_open_a_new_store_at_once(open_store, store_url, tmp_path):
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_ONCE, store_url, str(tmp_path / f"ready{i}"), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        go.touch()
        results = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
    head = schema.head_revision()
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert out.split() == [head, "0"]
    store = open_store()
    assert schema.current_revision(store.engine) == head
    with store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {schema.VERSION_TABLE}")).scalar_one() == 1


# ----------------------------------------------------------------- bulk lines (issue 21)
def test_upgrade_moves_json_intervals_into_columns(store_url):
    """A store at revision 0004 (bounds as JSON) upgrades without loss: 80/95% bounds move
    to their columns, other levels' bounds stay in the JSON, NaN becomes NULL."""
    engine = create_engine(store_url)
    with engine.begin() as conn:
        from alembic import command

        command.upgrade(schema._config(conn), "0004")
        conn.execute(
            text(
                "INSERT INTO plan_versions (id, plan, cycle, number, status, created_at, created_by, "
                "bucket, hierarchy, revision, branch) VALUES (1, 'p', '2026-01', 1, 'published', "
                "'2026-01-02 00:00:00', 'ana', 'month', '[]', 1, '')"
            )
        )
        conn.execute(
            text("INSERT INTO plan_series VALUES (1, 'a', 'series', 0, '{}'), (1, 'b', 'series', 1, '{}')")
        )
        lines = [
            ("a", '{"lo-80": 8.0, "hi-80": 12.0, "lo-95": 6.5, "hi-95": NaN, "lo-50": 9.0, "hi-50": 11.0}'),
            ("b", None),
        ]
        for uid, bounds in lines:
            conn.execute(
                text(
                    "INSERT INTO plan_lines (version_id, unique_id, ds, statistical, intervals, final) "
                    "VALUES (1, :u, :d, 10.0, :b, 10.0)"
                ),
                {"u": uid, "d": date(2026, 1, 1), "b": bounds},
            )
    assert schema.upgrade(engine) == ("0004", schema.head_revision())
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT unique_id, lo_80, hi_80, lo_95, hi_95, intervals FROM plan_lines ORDER BY unique_id")
        ).all()
    assert [tuple(r) for r in stored] == [
        ("a", 8.0, 12.0, 6.5, None, '{"lo-50": 9.0, "hi-50": 11.0}'),
        ("b", None, None, None, None, None),
    ]
    store = PlanStore(store_url)
    try:
        read = store.lines(1)
        assert [c for c in read.columns if c.startswith("statistical-")] == [
            # a bound empty on every line (hi-95 here) is not returned: NULL there is NaN
            f"statistical-{b}"
            for b in ("lo-50", "hi-50", "lo-80", "hi-80", "lo-95")
        ]
        assert read.iloc[0][["statistical-lo-50", "statistical-lo-80", "statistical-lo-95"]].tolist() == [
            9.0,
            8.0,
            6.5,
        ]
        assert read.iloc[1, 4:9].isna().all()
        schema_downgrade = schema._config  # back to 0004: the JSON holds every bound again
        with store.engine.begin() as conn:
            from alembic import command

            command.downgrade(schema_downgrade(conn), "0004")
        with store.engine.connect() as conn:
            back = conn.execute(text("SELECT intervals FROM plan_lines ORDER BY unique_id")).scalars().all()
        import json

        assert json.loads(back[0]) == {"lo-50": 9.0, "hi-50": 11.0, "lo-80": 8.0, "hi-80": 12.0, "lo-95": 6.5}
        assert back[1] is None
    finally:
        store.dispose()
        engine.dispose()


def test_bulk_lines_keep_text_and_numbers_exactly(open_store, example):
    lines, bottom, _ = example
    store = open_store()
    odd = ['=HYPERLINK("x")', "+1", "tab\there", "line\nbreak", "back\\slash", "quote'\"", "", "ünï"]
    written = lines.assign(author=[odd[i % len(odd)] if i % 3 else None for i in range(len(lines))])
    written.loc[5, "statistical-lo-95"] = np.nan
    written["statistical"] = written["statistical"] + 1e-9 / 3  # every digit kept
    version = service.create_version(store, "demand", written, bottom, HIERARCHY)
    read = store.lines(version)
    pd.testing.assert_frame_equal(read, written[read.columns], check_dtype=False)


def test_top_totals_sum_the_top_level_in_the_database(open_store, example):
    lines = example[0]
    store = open_store()
    draft = _create(store, example)
    changed, _ = service.apply(store, _override(lines, "C1/F1/S1/R1", "2026-03", value=500.0), version=draft)
    read = store.lines(changed)
    top = read[read["level"] == read["level"].iloc[0]]
    expected = top.groupby("ds")[["statistical", "final"]].sum().reset_index()
    got = store.top_totals(changed)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
    assert got["final"].sum() != pytest.approx(got["statistical"].sum())  # the override counts


def test_an_override_rewrites_only_the_lines_it_changes(open_store, example):
    lines = example[0]
    store = open_store()
    draft = _create(store, example)
    before = {r[1:3]: r for r in _raw_lines(store, draft.id)}
    changed, _ = service.apply(store, _override(lines, "C1/F1/S1/R1", "2026-03", value=500.0), version=draft)
    after = {r[1:3]: r for r in _raw_lines(store, changed.id)}
    assert after.keys() == before.keys()
    moved = {k for k in after if after[k] != before[k]}
    # the series, its ancestors (sku, family, category, region, total ...) in that month only
    assert moved and {k[1] for k in moved} == {date(2026, 3, 1)}
    ids = {k[0] for k in moved}
    assert "C1/F1/S1/R1" in ids and "Total" in ids and not any(i.startswith("C2") for i in ids)
    assert len(moved) < N_SERIES
    # published: the change opens a draft whose lines start as a copy made in the database
    store.publish(changed.id)
    forked, _ = service.apply(store, _override(lines, "C2", "2026-04", value=900.0), version=changed)
    assert forked.id != changed.id
    copy = store.lines(forked)
    assert len(copy) == len(lines) and _at(copy, "C2", pd.Timestamp("2026-04-01")) == pytest.approx(900.0)
    assert _at(copy, "C1/F1/S1/R1", pd.Timestamp("2026-03-01")) == pytest.approx(500.0)


def test_published_lines_read_only_the_months_asked_for(open_store, example):
    store = open_store()
    first = _create(store, example)
    store.publish(first.id)
    second = _create(store, example, cycle="2026-02")
    store.publish(second.id)
    _create(store, example, cycle="2026-03")  # a draft: never in the stack
    every = store.published_lines("demand")
    assert every["version_id"].drop_duplicates().tolist() == [second.id, first.id]
    assert set(every["cycle"]) == {"2026-01", "2026-02"}
    stacked = pd.concat(
        [
            store.lines(v).assign(version_id=v, cycle=c)
            for v, c in ((second.id, "2026-02"), (first.id, "2026-01"))
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(every, stacked, check_dtype=False)
    upto = store.published_lines("demand", through=pd.Timestamp("2026-03-01"))
    expected = stacked[stacked["ds"] <= "2026-03-01"].reset_index(drop=True)
    pd.testing.assert_frame_equal(upto, expected, check_dtype=False)
    assert store.published_lines("demand", through=pd.Timestamp("2025-12-01")).empty
    assert store.published_lines("other").empty and not store.has_published("other")
