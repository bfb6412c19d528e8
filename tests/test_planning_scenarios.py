"""Scenarios and the balance review on stored plans (``sopforecast.planning.scenarios``):
each demand change computed once and kept as the lines it changes, a scenario's plan of
every level, supply changes and launches held against supply, and the comparison of the
base plan with its scenarios, figure by figure. A tiny plan in a SQLite store: C1/A, C1/B
and C2/D over three months (test_store_supply.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_store_supply import BOTTOM, MONTHS, create_version, plan_lines

from sopforecast.errors import DataError
from sopforecast.planning import scenarios, service
from sopforecast.planning.lines import summing
from sopforecast.planning.scenarios import SupplyInputs
from sopforecast.store.plans import PlanStore
from sopforecast.supply.balance import FIGURES

JAN, FEB, MAR = MONTHS
CHANGES = {
    "up": {"kind": "uplift", "node": "C1", "pct": 10, "start": "2027-02"},
    "dear": {"kind": "price", "node": "C2/D", "pct": 10, "elasticity": -2},
    "new": {"kind": "launch", "item": "NEW", "like": "C1/A", "scale": 0.5, "start": "2027-02"},
    "late": {"kind": "delay", "resource": "line2", "months": 2, "start": "2027-02"},
}


@pytest.fixture
def store(tmp_path):
    opened = PlanStore(f"sqlite:///{tmp_path / 'plans.db'}")
    yield opened
    opened.dispose()


@pytest.fixture
def version(store):
    return create_version(store)


@pytest.fixture
def supply() -> SupplyInputs:
    """line1 (40 a month) makes C1/A (1 h a unit, priority 1) and C1/B (2 h, priority 2);
    line2 (10 a month) makes C2/D. 3 units of C1/B on hand; no shelf life."""
    months = pd.date_range(JAN, periods=4, freq="MS")
    capacity = pd.DataFrame(
        {
            "resource": ["line1"] * 4 + ["line2"] * 4,
            "ds": list(months) * 2,
            "capacity": [40.0] * 4 + [10.0] * 4,
        }
    )
    routing = pd.DataFrame(
        {"key": ["C1/A", "C1/B", "C2/D"], "resource": ["line1", "line1", "line2"], "rate": [1.0, 2.0, 1.0]}
    ).assign(priority=[1, 2, 1])
    inventory = pd.DataFrame(
        {"key": ["C1/A", "C1/B", "C2/D"], "on_hand": [0.0, 3.0, 0.0], "lead_time": 0, "service_level": 0.9}
    )
    return SupplyInputs(capacity, routing, inventory)


def _at(lines: pd.DataFrame, uid: str, ds: pd.Timestamp, column: str = "final") -> float:
    return float(lines.loc[(lines["unique_id"] == uid) & (lines["ds"] == ds), column].item())


def _create(store, version, name: str) -> dict:
    return scenarios.create(store, version, name, CHANGES[name], by="ana")


# -- the plan of every level ---------------------------------------------------------------
def test_members_pair_every_series_with_its_bottom_series():
    S, _ = summing(BOTTOM, ["category/sku"])
    pairs = scenarios.members(S)
    assert sorted(pairs.loc[pairs["unique_id"] == "C1", "bottom"]) == ["C1/A", "C1/B"]
    assert sorted(pairs.loc[pairs["unique_id"] == "Total", "bottom"]) == ["C1/A", "C1/B", "C2/D"]
    assert pairs.loc[pairs["unique_id"] == "C2/D", "bottom"].tolist() == ["C2/D"]
    assert len(pairs) == 3 + 3 + 3  # Total, the categories, the SKUs themselves


def test_plan_lines_roll_up_final_and_weigh_price_by_revenue():
    bottom_lines = plan_lines().query("level == 'category/sku'")[
        ["unique_id", "ds", "final", "price", "unit_cost"]
    ]
    bottom_lines.loc[(bottom_lines["unique_id"] == "C1/B") & (bottom_lines["ds"] == JAN), "final"] = 0.0
    out = scenarios.plan_lines(bottom_lines, BOTTOM, ["category/sku"])
    assert _at(out, "C1", JAN) == 10.0 and _at(out, "Total", JAN) == 18.0
    assert _at(out, "C1", FEB, "price") == pytest.approx((20 * 4 + 5 * 2) / 25)
    assert _at(out, "C1", JAN, "price") == 4.0  # C1/B sells nothing in January
    assert _at(out, "Total", FEB, "unit_cost") == pytest.approx((20 * 2 + 5 * 1 + 8 * 5) / 33)
    assert _at(out, "C1/B", JAN, "price") == 2.0  # a series keeps its own price when it sells nothing
    assert _at(out, "C2", MAR) == 8.0
    assert out.loc[out["unique_id"] == "C1", "level"].unique().tolist() == ["category"]


# -- demand scenarios -----------------------------------------------------------------------
def test_an_uplift_keeps_only_the_lines_it_changes(store, version):
    row = _create(store, version, "up")
    assert (row["kind"], row["version_id"], row["created_by"]) == ("uplift", version.id, "ana")
    assert row["description"] == "+10% demand on C1 from 2027-02"
    assert row["params"] == {"kind": "uplift", "node": "C1", "pct": 10.0, "start": "2027-02", "end": None}
    changed = store.scenario_lines(int(row["id"]))
    assert changed[["unique_id", "ds", "final"]].to_numpy().tolist() == [
        ["C1/A", FEB, 22.0],
        ["C1/A", MAR, 33.0],
        ["C1/B", FEB, 5.5],
        ["C1/B", MAR, 5.5],
    ]
    lines, bottom = scenarios.scenario_plan(store, version, row)
    assert _at(lines, "C1", MAR) == pytest.approx(38.5) and _at(lines, "Total", MAR) == pytest.approx(46.5)
    assert _at(lines, "C1", JAN) == 15.0 and _at(lines, "C2/D", MAR) == 8.0
    pd.testing.assert_frame_equal(bottom, store.bottom(version))
    unchanged, _ = scenarios.scenario_plan(store, version, None)
    assert _at(unchanged, "C1", MAR) == 35.0  # the version itself is untouched


def test_a_price_change_with_its_elasticity(store, version):
    row = _create(store, version, "dear")
    changed = store.scenario_lines(int(row["id"]))
    assert changed["unique_id"].unique().tolist() == ["C2/D"] and len(changed) == 3
    assert changed["final"].tolist() == pytest.approx([8 * 1.1**-2] * 3)  # 6.61 units
    assert changed["price"].tolist() == pytest.approx([11.0] * 3)
    assert changed["unit_cost"].tolist() == [5.0] * 3
    lines, _ = scenarios.scenario_plan(store, version, row)
    assert _at(lines, "C2", FEB, "price") == pytest.approx(11.0)


def _price_history(elasticity: float, promo_recorded: bool = True) -> pd.DataFrame:
    """36 months of C2/D (and steady C1/A) with C2/D's price moving and 5% noise."""
    rng = np.random.default_rng(3)
    ds = pd.date_range("2024-01-01", periods=36, freq="MS")
    price = 10.0 * np.exp(rng.normal(0, 0.2, len(ds)))
    promo = (rng.uniform(size=len(ds)) < 0.25).astype(float)
    y = 80.0 * price**elasticity * np.exp(0.3 * promo + rng.normal(0, 0.05, len(ds)))
    d = pd.DataFrame({"unique_id": "C2/D", "ds": ds, "y": y, "price": price, "promo": promo})
    if not promo_recorded:
        d["promo"] = d["promo"].where(d["promo"] > 0)  # only the promoted months have the driver
    a = pd.DataFrame({"unique_id": "C1/A", "ds": ds, "y": 10.0, "price": 4.0, "promo": 0.0})
    return pd.concat([a, d], ignore_index=True)


def test_a_price_change_estimates_its_elasticity_from_the_stored_actuals(store, version):
    store.load_actuals("demand", _price_history(-1.2, promo_recorded=False))
    row = scenarios.create(store, version, "dear", {"kind": "price", "node": "C2/D", "pct": 10})
    estimated = row["params"]["elasticity_estimated"]
    assert estimated == pytest.approx(-1.2, abs=0.1) and row["params"]["elasticity_stderr"] < 0.1
    assert row["params"]["elasticity"] is None
    changed = store.scenario_lines(int(row["id"]))
    assert changed["final"].tolist() == pytest.approx([8 * 1.1**estimated] * 3, rel=1e-3)


def test_a_price_change_without_a_moving_price_asks_for_an_elasticity(store, version):
    steady = _price_history(-1.2).assign(price=10.0)
    with pytest.raises(DataError, match="no price elasticity can be estimated for 'C2/D'"):
        scenarios.create(store, version, "dear", {"kind": "price", "node": "C2/D", "pct": 10}, history=steady)
    assert store.scenarios("demand").empty


def test_a_launch_adds_an_item_beside_its_like_item(store, version):
    row = _create(store, version, "new")
    assert row["params"]["item_id"] == "C1/NEW"
    changed = store.scenario_lines(int(row["id"]))
    assert changed["final"].tolist() == [0.0, 10.0, 15.0] and changed["price"].tolist() == [4.0] * 3
    assert set(changed["keys"]) == {'{"category": "C1", "sku": "NEW"}'}
    lines, bottom = scenarios.scenario_plan(store, version, row)
    assert bottom.iloc[-1].to_dict() == {"unique_id": "C1/NEW", "category": "C1", "sku": "NEW"}
    assert _at(lines, "C1", MAR) == 50.0 and _at(lines, "Total", MAR) == 58.0
    assert lines.loc[lines["unique_id"] == "C1/NEW", "level"].unique().tolist() == ["category/sku"]


def test_unknown_series_are_refused_before_anything_is_stored(store, version):
    with pytest.raises(DataError, match="'C3' is not a series of the plan"):
        scenarios.create(store, version, "x", {"kind": "uplift", "node": "C3", "pct": 5})
    with pytest.raises(DataError, match="like item 'C1' is not a bottom series"):
        scenarios.create(
            store, version, "x", {"kind": "launch", "item": "N", "like": "C1", "start": "2027-02"}
        )
    flat = service.create_version(
        store, "flat", plan_lines().query("level == 'category/sku'"), BOTTOM[["unique_id"]], []
    )
    with pytest.raises(DataError, match="'C1/Z' is not a series of the plan"):
        scenarios.create(store, flat, "x", {"kind": "uplift", "node": "C1/Z", "pct": 5})
    assert store.scenarios().empty


def test_the_base_plans_name_is_not_a_scenarios(store, version):
    with pytest.raises(DataError, match="'base' names the plan itself"):
        scenarios.create(store, version, "base", CHANGES["up"])


def test_a_promotion_moves_the_plan_by_the_forecasters_reaction(store, version):
    class Reacting:  # the fitted champion's stand-in: 10 + 5 per unit of the promotion driver
        def predict(self, future):
            return SimpleNamespace(forecast=future.assign(forecast=10 + 5 * future["promo"]))

    future = BOTTOM.drop(columns="unique_id").merge(pd.DataFrame({"ds": MONTHS}), how="cross")
    future = future.assign(promo=0.0, price=future["sku"].map({"A": 4.0, "B": 2.0, "D": 10.0}))
    change = {"kind": "promotion", "node": "C1/A", "start": "2027-02", "end": "2027-02", "price_pct": -10}
    row = scenarios.create(store, version, "promo", change, forecaster=Reacting(), future=future)
    changed = store.scenario_lines(int(row["id"]))
    assert changed[["unique_id", "ds", "final", "price"]].to_numpy().tolist() == [["C1/A", FEB, 25.0, 3.6]]
    with pytest.raises(DataError, match="needs the fitted champion"):
        scenarios.create(store, version, "promo2", change)


# -- balance and comparison -----------------------------------------------------------------
def test_the_base_plan_is_balanced_and_kept(store, version, supply):
    result, run_id = scenarios.balance_plan(store, version, supply)
    assert result.figures["units"] == 99.0 and result.figures["revenue"] == 60 * 4 + 15 * 2 + 24 * 10
    assert result.figures["unmet_units"] == pytest.approx(0.0)
    assert result.utilisation["load"].tolist() == [20.0, 30.0, 40.0, 8.0, 8.0, 8.0]
    (row,) = store.balances("demand").to_dict("records")
    assert row["id"] == run_id and pd.isna(row["scenario_id"]) and row["source"] == "sopforecast balance run"
    assert scenarios.balance_plan(store, version, supply, record=False)[1] is None
    assert len(store.balances("demand")) == 1


def test_a_supplier_delay_leaves_its_items_unmet(store, version, supply):
    row = _create(store, version, "late")
    assert store.scenario_lines(int(row["id"])).empty  # a supply change keeps its settings only
    result, run_id = scenarios.balance_plan(store, version, supply, scenario="late")
    # line2 makes nothing in February and March: January's 10 make 8 + 2 ahead, 14 of D's 16 are lost
    assert result.figures["unmet_units"] == pytest.approx(14.0)
    assert result.figures["revenue_at_stake"] == pytest.approx(140.0)
    assert result.figures["fill_rate"] == pytest.approx(1 - 14 / 99)
    assert store.balances(run_id=run_id)["scenario_id"].tolist() == [row["id"]]


def test_a_launched_item_is_made_where_its_like_item_is(store, version, supply):
    _create(store, version, "new")
    result, _ = scenarios.balance_plan(store, version, supply, scenario="new", record=False)
    line1 = result.utilisation[result.utilisation["resource"] == "line1"]
    assert line1["load"].tolist() == [20.0, 40.0, 55.0]  # NEW at C1/A's hour a unit
    new = result.projection[result.projection["key"] == "C1/NEW"]
    assert new["opening"].iloc[0] == 0.0 and new["demand"].tolist() == [0.0, 10.0, 15.0]
    # 109 hours in three months of 40: March's 15 extra are made in January, nothing is lost
    assert result.figures["unmet_units"] == pytest.approx(0.0)
    assert result.figures["binding_resource_months"] == 2
    assert list(supply.routing["key"]) == ["C1/A", "C1/B", "C2/D"]  # the inputs given are not changed


def test_compare_lays_the_base_and_its_scenarios_side_by_side(store, version, supply):
    for name in ("up", "dear", "late"):
        _create(store, version, name)
    table, balances = scenarios.compare(store, version, supply, ["up", "dear", "late"])
    assert list(balances) == ["base", "up", "dear", "late"]
    assert list(table.columns) == [
        "figure",
        *balances,
        "up vs base",
        "dear vs base",
        "late vs base",
    ]
    figures = table.set_index("figure")
    assert list(figures.index) == list(FIGURES)
    assert figures.loc["units", "up vs base"] == pytest.approx((20 + 30 + 5 + 5) * 0.1)
    assert figures.loc["revenue", "up vs base"] == pytest.approx((20 + 30) * 0.4 + (5 + 5) * 0.2)
    assert figures.loc["revenue", "dear"] == pytest.approx(270 + 3 * 8 * 1.1**-2 * 11)
    assert figures.loc["overloaded_resource_months", "up"] == 1  # March: 33 + 11 h on 40
    assert figures.loc["unmet_units", "late vs base"] == pytest.approx(14.0)
    assert len(store.balances("demand")) == 4


def test_a_scenario_balanced_on_a_later_version_keeps_to_that_versions_months(store, version, supply):
    scenarios.create(store, version, "up", {"kind": "uplift", "node": "C1", "pct": 10})  # January too
    later = plan_lines().assign(ds=lambda f: f["ds"] + pd.DateOffset(months=1))  # February to April
    newer = service.create_version(store, "demand", later, BOTTOM, ["category/sku"])
    result, _ = scenarios.balance_plan(store, newer, supply, scenario="up", record=False)
    assert sorted(result.utilisation["ds"].unique()) == list(pd.date_range(FEB, periods=3, freq="MS"))
    # February and March as the scenario stored them (22 + 5.5, 33 + 5.5), April the later version's
    assert result.figures["units"] == pytest.approx(99.0 + (22 - 10) + (33 - 20) + 0.5 + 0.5)
