"""The balance review (``sopforecast.supply.balance``): routing spread over the plan's bottom
series, plan money, and one balance of a tiny plan solved by hand, figure by figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sopforecast.errors import DataError
from sopforecast.supply.balance import (
    DECISION_COLUMNS,
    FIGURES,
    BalanceSettings,
    balance,
    expand_routing,
    plan_money,
)

JAN, FEB = pd.Timestamp("2027-01-01"), pd.Timestamp("2027-02-01")


def tiny(capacity=(10.0, 10.0), priced=True):
    """Two keys on one line: A (priority 1, price 5) and B (priority 2, price 3) need 3 + 3
    in January and 8 + 8 in February; shelf life one month, nothing on hand, lead time 0.

    Returns ``lines, capacity, routing, inventory``."""
    lines = pd.DataFrame(
        {
            "unique_id": ["A", "A", "B", "B"],
            "ds": [JAN, FEB, JAN, FEB],
            "final": [3.0, 8.0, 3.0, 8.0],
            "price": [5.0, 5.0, 3.0, 3.0] if priced else np.nan,
            "unit_cost": 1.0 if priced else np.nan,
        }
    )
    cap = pd.DataFrame({"resource": "line", "ds": [JAN, FEB], "capacity": list(capacity), "unit": "units"})
    routing = pd.DataFrame({"key": ["A", "B"], "resource": "line", "rate": 1.0, "priority": [1, 2]})
    inventory = pd.DataFrame(
        {"key": ["A", "B"], "on_hand": 0.0, "lead_time": 0, "service_level": 0.95, "shelf_life": 1.0}
    )
    return lines, cap, routing, inventory


def backtest(uid: str, errors: list[float], forecast: float = 10.0) -> pd.DataFrame:
    """One-month backtest windows of ``uid`` whose errors ``y - forecast`` are ``errors``."""
    cutoffs = pd.date_range("2026-01-01", periods=len(errors), freq="MS")
    return pd.DataFrame(
        {
            "unique_id": uid,
            "cutoff": cutoffs,
            "ds": cutoffs + pd.DateOffset(months=1),
            "y": forecast + np.asarray(errors, dtype=float),
            "forecast": forecast,
        }
    )


def _at(frame: pd.DataFrame, key: str, ds: pd.Timestamp, column: str) -> float:
    return float(frame.loc[(frame["key"] == key) & (frame["ds"] == ds), column].item())


# -- routing and money -------------------------------------------------------------------
MEMBERS = pd.DataFrame(
    {
        "unique_id": ["S1", "S1", "S1/R1", "S1/R2", "S2/R1"],
        "bottom": ["S1/R1", "S1/R2", "S1/R1", "S1/R2", "S2/R1"],
    }
)


def test_a_sku_row_of_the_routing_applies_to_every_bottom_series_beneath_it():
    routing = pd.DataFrame(
        {"key": ["S1", "S2/R1"], "resource": ["line", "paint"], "rate": [2.0, 0.5], "priority": [1, 2]}
    )
    out = expand_routing(routing, MEMBERS)
    assert list(out.columns) == ["key", "resource", "rate", "priority"]
    assert out.to_dict("records") == [
        {"key": "S1/R1", "resource": "line", "rate": 2.0, "priority": 1},
        {"key": "S1/R2", "resource": "line", "rate": 2.0, "priority": 1},
        {"key": "S2/R1", "resource": "paint", "rate": 0.5, "priority": 2},
    ]
    pd.testing.assert_frame_equal(expand_routing(routing, None), routing)  # flat: as given


def test_routed_keys_outside_the_plan_load_nothing(caplog):
    routing = pd.DataFrame({"key": ["S2/R1", "GONE"], "resource": "line", "rate": 1.0, "priority": 1})
    with caplog.at_level("INFO", logger="sopforecast.supply.balance"):
        out = expand_routing(routing, MEMBERS)
    assert out["key"].tolist() == ["S2/R1"]
    assert "1 routed key(s) are not series of the plan" in caplog.text and "GONE" in caplog.text


def test_a_resource_routed_from_a_series_and_its_ancestor_is_refused():
    routing = pd.DataFrame(
        {"key": ["S1", "S1/R1", "S1/R2"], "resource": ["line", "line", "paint"], "rate": 1.0, "priority": 1}
    )
    with pytest.raises(DataError, match="line: S1 and S1/R1") as info:
        expand_routing(routing, MEMBERS)
    assert "twice" in str(info.value)


def test_plan_money_counts_revenue_and_margin_only_when_known():
    lines, *_ = tiny()
    assert plan_money(lines) == {"units": 22.0, "revenue": 3 * 5 + 8 * 5 + 3 * 3 + 8 * 3, "margin": 88 - 22}
    assert plan_money(lines.assign(unit_cost=np.nan)) == {"units": 22.0, "revenue": 88.0, "margin": None}
    assert plan_money(lines.drop(columns="price")) == {"units": 22.0, "revenue": None, "margin": None}
    halved = lines.assign(half=lines["final"] / 2)
    assert plan_money(halved, column="half")["revenue"] == pytest.approx(44.0)


def test_settings_keep_under_use_below_overload():
    with pytest.raises(ValidationError, match="under"):
        BalanceSettings(under=1.0, over=1.0)
    with pytest.raises(ValidationError):
        BalanceSettings(spare=1)  # unknown settings are refused, not ignored


# -- the review --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def review():
    """February needs 16 on a line of 10: 4 are pre-built in January, B misses 2 units at 3."""
    return balance(*tiny())


def test_the_capacity_check_holds_the_unconstrained_plan_against_capacity(review):
    assert review.utilisation[["load", "capacity", "utilisation"]].to_numpy().tolist() == [
        [6.0, 10.0, 0.6],
        [16.0, 10.0, 1.6],
    ]
    (exc,) = review.capacity_exceptions.to_dict("records")
    assert (exc["kind"], exc["ds"], exc["gap"], exc["drivers"]) == ("overload", FEB, 6.0, "A (50%), B (50%)")


def test_the_constrained_plan_serves_priority_first_and_prebuilds(review):
    unmet = review.plan.unmet
    assert _at(unmet, "A", FEB, "unmet") == pytest.approx(0.0)
    assert _at(unmet, "B", FEB, "unmet") == pytest.approx(2.0)
    # no backtest: no safety stock, and the projection follows the constrained supply
    assert review.safety["safety_stock"].isna().all() and set(review.safety["method"]) == {"no backtest"}
    proj = review.projection
    assert _at(proj, "B", JAN, "supply") == pytest.approx(7.0)  # 3 + 4 pre-built
    assert _at(proj, "B", JAN, "closing") == pytest.approx(4.0)
    assert _at(proj, "B", FEB, "closing") == pytest.approx(-2.0)  # the 2 unmet, as a backlog
    assert proj["stockout"].tolist() == [False, False, False, True]


def test_decisions_are_ranked_by_money_then_gap(review):
    dec = review.decisions
    assert list(dec.columns) == DECISION_COLUMNS
    # both put 6 at stake (2 units of B at 3); the overload's gap (6) outranks the stock-out's (2)
    assert dec[["rank", "kind", "subject", "gap", "at_stake"]].to_numpy().tolist() == [
        [1, "overload", "line", 6.0, 6.0],
        [2, "stockout", "B", 2.0, 6.0],
    ]
    assert dec["detail"].tolist() == ["utilisation 160%; drivers A (50%), B (50%)", "1 month(s); closing -2"]
    assert dec["action"].iloc[1] == "expedite supply or agree who is served first"


def test_figures_of_the_tiny_plan_by_hand(review):
    assert list(review.figures) == list(FIGURES)
    assert review.figures == pytest.approx(
        {
            "units": 22.0,
            "revenue": 88.0,
            "margin": 66.0,
            "overloaded_resource_months": 1,
            "underused_resource_months": 0,  # January at 60% is not below 50%
            "max_utilisation": 1.6,
            "binding_resource_months": 2,
            "unmet_units": 2.0,
            "revenue_at_stake": 6.0,
            "revenue_served": 82.0,  # 88 planned, 6 of it at stake
            "fill_rate": 20 / 22,
            "stockout_months": 1,
            "below_safety_months": 1,  # stock-outs are below safety stock too
            "safety_stock_units": None,
            "closing_stock_end": 0.0,  # B's backlog of 2 is not stock
        }
    )
    assert "priority 1 first" in review.rule


def test_month_totals_add_up_the_keys(review):
    months = review.monthly().set_index("ds")
    assert months.loc[JAN, ["demand", "served", "unmet", "closing", "stockouts"]].tolist() == [6, 6, 0, 4, 0]
    assert months.loc[FEB, ["demand", "served", "unmet", "revenue_at_stake", "closing"]].tolist() == [
        16,
        14,
        2,
        6,
        0,
    ]
    assert months["closing"].iloc[-1] == review.figures["closing_stock_end"]


def test_safety_stock_comes_from_the_backtest_errors_and_is_built_with_spare_capacity():
    lines, cap, routing, inventory = tiny(capacity=(100.0, 100.0))
    # A's one-month errors +2 and +4: scale 3, each scaled by the other window's |error| (4, 2):
    # 0.5 and 2; two windows are too few for a 95% quantile, so the largest, 2 x 3 = 6 units
    result = balance(lines, cap, routing, inventory, backtest=backtest("A", [2.0, 4.0]))
    safety = result.safety.set_index("key")
    assert safety.loc["A", "safety_stock"] == pytest.approx(6.0)
    assert safety.loc["A", "method"] == "largest error"
    assert np.isnan(safety.loc["B", "safety_stock"]) and safety.loc["B", "method"] == "no backtest"
    proj = result.projection
    assert _at(proj, "A", JAN, "supply") == pytest.approx(3.0 + 6.0)
    assert proj.loc[proj["key"] == "A", "closing"].tolist() == pytest.approx([6.0, 6.0])
    assert result.figures["safety_stock_units"] == pytest.approx(6.0)
    assert result.figures["closing_stock_end"] == pytest.approx(6.0)
    assert result.figures["below_safety_months"] == 0 and result.figures["underused_resource_months"] == 2
    assert result.decisions["kind"].tolist() == ["underused", "underused"]  # 6% and 16% of the line
    assert result.decisions["at_stake"].tolist() == [0.0, 0.0]


def test_stock_below_safety_stock_is_a_decision_to_raise_supply():
    lines, cap, routing, inventory = tiny(capacity=(7.0, 16.0))
    # one unit spare in January, none in February: A ends both months at 1 against 6
    result = balance(lines, cap, routing, inventory, backtest=backtest("A", [2.0, 4.0]))
    assert result.projection.loc[result.projection["key"] == "A", "closing"].tolist() == pytest.approx([1, 1])
    assert result.figures["below_safety_months"] == 2 and result.figures["stockout_months"] == 0
    (row,) = result.decisions.to_dict("records")
    assert (row["kind"], row["subject"], row["ds"], row["last"]) == ("below safety stock", "A", JAN, FEB)
    assert row["gap"] == pytest.approx(5.0) and row["at_stake"] == pytest.approx(25.0)  # 5 units at 5
    assert row["action"] == "raise supply by 5 units before 2027-01"
    assert row["detail"] == "2 month(s); closing 1 against safety stock 6"


def test_a_routed_resource_without_capacity_is_a_decision_named_as_such():
    lines, cap, routing, inventory = tiny(capacity=(100.0, 100.0))
    paint = pd.DataFrame({"key": ["B"], "resource": "paint", "rate": 1.0, "priority": 2})
    result = balance(lines, cap, pd.concat([routing, paint], ignore_index=True), inventory)
    missing = result.decisions[result.decisions["kind"] == "no capacity"]
    assert missing["subject"].tolist() == ["paint", "paint"] and missing["gap"].tolist() == [8.0, 3.0]
    assert missing["detail"].tolist() == ["no capacity given; drivers B (100%)"] * 2
    assert missing["action"].str.startswith("give this resource's capacity").all()
    assert result.figures["unmet_units"] == 0.0  # a resource-month without capacity is unlimited


def test_a_shutdown_month_reads_capacity_zero_not_an_infinite_utilisation():
    result = balance(*tiny(capacity=(20.0, 0.0)))
    overload = result.decisions[result.decisions["kind"] == "overload"]
    assert overload["detail"].tolist() == ["capacity 0; drivers A (50%), B (50%)"]
    # January makes A's and B's February (shelf life one month): 6 + 16 > 20, B misses 2
    assert result.figures["unmet_units"] == pytest.approx(2.0)
    assert result.figures["revenue_at_stake"] == pytest.approx(6.0)


def test_a_plan_without_prices_has_no_money_figures():
    result = balance(*tiny(priced=False))
    assert result.figures["revenue"] is None and result.figures["revenue_at_stake"] is None
    assert result.figures["unmet_units"] == pytest.approx(2.0)  # capacity still goes by priority
    assert _at(result.plan.unmet, "B", FEB, "unmet") == pytest.approx(2.0)
    assert result.decisions["at_stake"].tolist() == [0.0, 0.0]  # units are not money
    assert result.monthly()["revenue_at_stake"].tolist() == [0.0, 0.0]


def test_a_hierarchical_plan_loads_the_routed_sku_and_plans_its_bottom_series():
    # S1 (an aggregate: S1/R1 + S1/R2) is routed; its bottom series hold the stock
    bottom = pd.DataFrame(
        {
            "unique_id": ["S1/R1", "S1/R1", "S1/R2", "S1/R2"],
            "ds": [JAN, FEB, JAN, FEB],
            "final": [2.0, 6.0, 4.0, 6.0],
            "price": 2.0,
        }
    )
    sku = bottom.groupby("ds", as_index=False)["final"].sum().assign(unique_id="S1", price=2.0)
    lines = pd.concat([sku, bottom], ignore_index=True)
    cap = pd.DataFrame({"resource": "line", "ds": [JAN, FEB], "capacity": 10.0})
    routing = pd.DataFrame({"key": ["S1"], "resource": "line", "rate": 1.0, "priority": 1})
    inventory = pd.DataFrame(
        {"key": ["S1/R1", "S1/R2"], "on_hand": 0.0, "lead_time": 0, "service_level": 0.9}
    )
    members = MEMBERS[MEMBERS["unique_id"] != "S2/R1"]
    result = balance(lines, cap, routing, inventory, members=members)
    assert result.utilisation["load"].tolist() == [6.0, 12.0]
    assert sorted(result.plan.supply["key"].unique()) == ["S1/R1", "S1/R2"]
    assert result.plan.supply["supply"].sum() == pytest.approx(18.0)  # 2 pre-built in January
    assert result.figures["units"] == 18.0 and result.figures["revenue"] == 36.0  # S1 is not counted twice
    assert result.figures["unmet_units"] == pytest.approx(0.0)


def test_a_plan_whose_bottom_series_are_missing_is_refused():
    lines, cap, routing, inventory = tiny()
    with pytest.raises(DataError, match="no bottom series"):
        balance(lines, cap, routing, inventory, members=MEMBERS)
