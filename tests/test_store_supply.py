"""Supply records in the plan store, on SQLite and on a real PostgreSQL server: a version's
delivered backtest (inherited along its parents, gone with its draft), scenarios with the
lines they change (one name per plan), balance reviews with their tables, and what
deleting a scenario takes with it. A tiny plan: three SKUs in two categories, three months."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import test_plan_store as base
from sqlalchemy import func, select
from test_balance import tiny

from sopforecast.errors import SopforecastError
from sopforecast.planning import service
from sopforecast.planning.lines import rollup, summing
from sopforecast.store.plans import PlanNotFound, PlanStore, PlanVersion
from sopforecast.store.tables import (
    balance_decisions,
    balance_months,
    balance_resources,
    balance_runs,
    plan_backtest,
    scenario_lines,
    scenarios,
)
from sopforecast.supply.balance import balance

store_url, open_store = base.store_url, base.open_store  # SQLite, and a fresh PostgreSQL database

HIERARCHY = ["category/sku"]
BOTTOM = pd.DataFrame(
    {"unique_id": ["C1/A", "C1/B", "C2/D"], "category": ["C1", "C1", "C2"], "sku": ["A", "B", "D"]}
)
MONTHS = pd.date_range("2027-01-01", periods=3, freq="MS")
FINAL = {"C1/A": [10.0, 20.0, 30.0], "C1/B": [5.0, 5.0, 5.0], "C2/D": [8.0, 8.0, 8.0]}
PRICE = {"C1/A": 4.0, "C1/B": 2.0, "C2/D": 10.0}


def plan_lines() -> pd.DataFrame:
    """Lines of every level (Total, C1, C2 and the SKUs); price and half of it as cost on
    the SKUs."""
    S, levels = summing(BOTTOM, HIERARCHY)
    values = pd.DataFrame(
        {
            "unique_id": np.repeat(list(FINAL), len(MONTHS)),
            "ds": np.tile(MONTHS, len(FINAL)),
            "final": np.concatenate(list(FINAL.values())),
        }
    )
    lines = rollup(values, S, "final").reset_index()
    price = lines["unique_id"].map(PRICE)
    return lines.assign(
        level=lines["unique_id"].map(levels),
        statistical=lines["final"],
        naive=np.nan,
        consensus=np.nan,
        author=None,
        price=price,
        unit_cost=price / 2,
    )[
        [
            "unique_id",
            "level",
            "ds",
            "statistical",
            "naive",
            "consensus",
            "final",
            "author",
            "price",
            "unit_cost",
        ]
    ]


def create_version(store: PlanStore, plan: str = "demand") -> PlanVersion:
    """A new draft of ``plan`` (its 2027-01 cycle) from :func:`plan_lines`."""
    return service.create_version(store, plan, plan_lines(), BOTTOM, HIERARCHY)


def _count(store: PlanStore, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _backtest(forecast: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["C1/A", "C1/A", "C2/D"],
            "cutoff": pd.to_datetime(["2026-10-01", "2026-10-01", "2026-11-01"]),
            "ds": pd.to_datetime(["2026-11-01", "2026-12-01", "2026-12-01"]),
            "y": [12.5, np.nan, 7.25],  # a month without an actual stays empty
            "forecast": forecast,
        }
    )


def _scenario(store: PlanStore, version: PlanVersion, name: str, lines: pd.DataFrame | None = None) -> int:
    return store.add_scenario(
        version,
        name,
        kind="uplift",
        params={"kind": "uplift", "node": "C1", "pct": 10.0, "start": None},
        description="+10% demand on C1",
        lines=lines,
        seconds=0.25,
        by="ana",
    )


def _changed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unique_id": ["C1/A", "C1/NEW"],
            "ds": [MONTHS[1], MONTHS[1]],
            "final": [22.0, 10.0],
            "price": [4.0, np.nan],
            "unit_cost": [2.0, np.nan],
            "keys": [None, '{"category": "C1", "sku": "NEW"}'],
        }
    )


# -- the delivered backtest -----------------------------------------------------------------
def test_a_backtest_is_kept_with_its_version_and_replaced_when_saved_again(open_store):
    store = open_store()
    version = create_version(store)
    assert store.save_backtest(version, _backtest(10.0)) == 3
    stored = store.backtest(version)
    assert list(stored.columns) == ["unique_id", "cutoff", "ds", "y", "forecast"]
    pd.testing.assert_frame_equal(
        stored.sort_values(["unique_id", "ds"]).reset_index(drop=True), _backtest(10.0), check_dtype=False
    )
    assert store.save_backtest(version, _backtest(11.0).head(1)) == 1
    assert store.backtest(version)["forecast"].tolist() == [11.0]
    assert _count(store, plan_backtest) == 1


def test_a_version_made_from_another_has_its_parents_backtest(open_store):
    store = open_store()
    first = create_version(store)
    assert store.backtest(first).empty and list(store.backtest(first).columns)[0] == "unique_id"
    store.save_backtest(first, _backtest(10.0))
    second = create_version(store)  # a new draft of the cycle, made from the first
    third = create_version(store)
    assert (second.parent_id, third.parent_id) == (first.id, second.id)
    assert store.backtest(third)["forecast"].tolist() == [10.0] * 3  # two parents up
    store.save_backtest(second, _backtest(20.0))
    assert store.backtest(third)["forecast"].tolist() == [20.0] * 3  # the nearest one's


def test_deleting_a_draft_deletes_its_backtest_and_keeps_its_parents(open_store):
    store = open_store()
    first = create_version(store)
    store.save_backtest(first, _backtest(10.0))
    second = create_version(store)
    store.save_backtest(second, _backtest(20.0))
    store.delete_draft(second)
    assert _count(store, plan_backtest, version_id=second.id) == 0
    assert _count(store, plan_backtest, version_id=first.id) == 3
    assert store.backtest(store.version(first.id))["forecast"].tolist() == [10.0] * 3


# -- scenarios -------------------------------------------------------------------------------
def test_a_scenario_is_stored_with_the_lines_it_changes(open_store):
    store = open_store()
    version = create_version(store)
    scenario_id = _scenario(store, version, "up", _changed())
    row = store.scenario("demand", "up")
    assert row["id"] == scenario_id and row["version_id"] == version.id
    assert (row["plan"], row["name"], row["kind"], row["created_by"]) == ("demand", "up", "uplift", "ana")
    assert row["params"] == {"kind": "uplift", "node": "C1", "pct": 10.0, "start": None}
    assert (row["description"], row["seconds"]) == ("+10% demand on C1", 0.25)
    lines = store.scenario_lines(scenario_id).sort_values("unique_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(lines, _changed(), check_dtype=False)
    assert store.scenarios("demand")["name"].tolist() == ["up"] and store.scenarios("other").empty


def test_a_second_scenario_of_the_same_name_is_refused_and_writes_nothing(open_store):
    store = open_store()
    version = create_version(store)
    _scenario(store, version, "up", _changed())
    with pytest.raises(SopforecastError, match="plan 'demand' already has a scenario named 'up'"):
        _scenario(store, version, "up", _changed().assign(final=1.0))
    assert (_count(store, scenarios), _count(store, scenario_lines)) == (1, 2)
    assert store.scenario_lines(int(store.scenario("demand", "up")["id"]))["final"].tolist() == [22.0, 10.0]
    other = create_version(store, plan="other")  # the name is the plan's own: another may use it
    _scenario(store, other, "up")  # a supply change: no lines
    assert _count(store, scenarios) == 2 and _count(store, scenario_lines) == 2


def test_a_missing_scenario_names_the_plans_scenarios(open_store):
    store = open_store()
    version = create_version(store)
    with pytest.raises(PlanNotFound, match="no scenario named 'up'; its scenarios: none yet"):
        store.scenario("demand", "up")
    _scenario(store, version, "down")
    with pytest.raises(PlanNotFound, match="its scenarios: .*down"):
        store.delete_scenario("demand", "up")


# -- balance reviews -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def review():
    """The tiny balance with a shutdown in February: B misses 2, February's utilisation is
    infinite, and a figure that is not a number."""
    result = balance(*tiny(capacity=(20.0, 0.0)))
    return replace(result, figures={**result.figures, "max_utilisation": float("inf")})


def _record(store: PlanStore, version: PlanVersion, result, scenario_id: int | None = None) -> int:
    return store.record_balance(version, result, scenario_id=scenario_id, by="ana", source="test")


def test_a_balance_review_keeps_its_figures_and_tables(open_store, review):
    store = open_store()
    version = create_version(store)
    run_id = _record(store, version, review)
    (row,) = store.balances("demand").to_dict("records")
    assert (row["id"], row["version_id"], row["created_by"], row["source"]) == (
        run_id,
        version.id,
        "ana",
        "test",
    )
    assert pd.isna(row["scenario_id"]) and row["solver"] == "highs-lp" and row["rule"] == review.rule
    expected = {**review.figures, "max_utilisation": None}  # not a number: stored empty
    assert row["figures"] == pytest.approx(expected)

    resources = store.balance_table(run_id, "resources")
    assert resources["load"].tolist() == [6.0, 16.0] and resources["capacity"].tolist() == [20.0, 0.0]
    assert resources["utilisation"].iloc[0] == 0.3 and np.isnan(resources["utilisation"].iloc[1])
    assert resources["planned_load"].tolist() == pytest.approx([20.0, 0.0])  # all made in January
    months = store.balance_table(run_id, "months")
    pd.testing.assert_frame_equal(months, review.monthly(), check_dtype=False)
    decisions = store.balance_table(run_id, "decisions")
    assert decisions["rank"].tolist() == list(range(1, len(review.decisions) + 1))
    pd.testing.assert_frame_equal(decisions, review.decisions, check_dtype=False)


def test_balance_reviews_are_listed_newest_first_by_plan_version_or_id(open_store, review):
    store = open_store()
    first, other = create_version(store), create_version(store, plan="other")
    older = _record(store, first, review)
    newer = _record(store, first, review)
    elsewhere = _record(store, other, review)
    assert store.balances("demand")["id"].tolist() == [newer, older]
    assert store.balances(version=other)["id"].tolist() == [elsewhere]
    assert store.balances(run_id=older)["id"].tolist() == [older]
    assert store.balances()["id"].tolist() == [elsewhere, newer, older]


def test_deleting_a_scenario_takes_its_lines_and_balance_reviews(open_store, review):
    store = open_store()
    version = create_version(store)
    up, down = _scenario(store, version, "up", _changed()), _scenario(store, version, "down", _changed())
    base_run = _record(store, version, review)
    up_run, down_run = _record(store, version, review, up), _record(store, version, review, down)
    store.delete_scenario("demand", "up")
    assert store.scenarios("demand")["name"].tolist() == ["down"]
    assert _count(store, scenario_lines, scenario_id=up) == 0
    assert _count(store, scenario_lines, scenario_id=down) == 2
    assert sorted(store.balances("demand")["id"]) == [base_run, down_run]
    for table in (balance_resources, balance_months, balance_decisions):
        assert _count(store, table, run_id=up_run) == 0
        assert _count(store, table, run_id=down_run) == _count(store, table, run_id=base_run) > 0
    assert _count(store, balance_runs) == 2


def test_deleting_a_draft_takes_its_scenarios_and_balance_reviews(open_store, review):
    store = open_store()
    first = create_version(store)
    kept = _scenario(store, first, "kept", _changed())
    kept_run = _record(store, first, review, kept)
    second = create_version(store)
    store.save_backtest(second, _backtest(20.0))
    on_draft = _scenario(store, second, "up", _changed())
    _record(store, second, review)
    _record(store, first, review, on_draft)  # its scenario balanced on another version
    store.delete_draft(second)
    assert store.scenarios("demand")["name"].tolist() == ["kept"]
    assert store.balances("demand")["id"].tolist() == [kept_run]
    assert _count(store, scenario_lines) == 2 and _count(store, plan_backtest) == 0
    for table in (balance_resources, balance_months, balance_decisions):
        assert _count(store, table) == _count(store, table, run_id=kept_run)
    assert store.version(first.id).status == "draft"  # the draft it superseded is open again
