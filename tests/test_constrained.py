"""The constrained supply plan: solved by hand on tiny cases, then held to its constraints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.bench.supply import synthetic_supply
from sopforecast.supply import constrained
from sopforecast.supply.constrained import constrained_plan, greedy_plan

JAN, FEB = pd.Timestamp("2027-01-01"), pd.Timestamp("2027-02-01")


def _tiny(capacity=10.0, shelf_life=1.0, prices=(5.0, 3.0), priorities=(1, 2), rates=(1.0, 1.0)):
    """Two keys on one line of ``capacity`` a month: 3 + 3 in January, 8 + 8 in February."""
    demand = pd.DataFrame(
        {
            "unique_id": ["A", "A", "B", "B"],
            "level": "sku",
            "ds": [JAN, FEB, JAN, FEB],
            "final": [3.0, 8.0, 3.0, 8.0],
            "price": [prices[0], prices[0], prices[1], prices[1]],
            "unit_cost": 1.0,
        }
    )
    cap = pd.DataFrame({"resource": "line", "ds": [JAN, FEB], "capacity": capacity, "unit": "units"})
    routing = pd.DataFrame({"key": ["A", "B"], "resource": "line", "rate": rates, "priority": priorities})
    inventory = pd.DataFrame(
        {"key": ["A", "B"], "on_hand": 0.0, "lead_time": 1, "service_level": 0.95, "shelf_life": shelf_life}
    )
    return demand, cap, routing, inventory


def _by(frame, column):
    return frame.set_index(["key", "ds"])[column]


def _check_feasible(plan, on_hand=None):
    """Balance from on hand, bounds and capacity hold in every key-month and resource-month."""
    u = plan.unmet.set_index(["key", "ds"])
    closing = _by(plan.inventory, "closing").unstack()
    supply = _by(plan.supply, "supply").unstack()
    served = u["served"].unstack()
    start = pd.Series(0.0 if on_hand is None else on_hand, index=closing.index)
    opening = pd.concat([start.rename(closing.columns[0] - pd.DateOffset(months=1)), closing], axis=1)
    opening = opening.iloc[:, :-1].set_axis(closing.columns, axis=1)
    np.testing.assert_allclose(closing, opening + supply - served, atol=1e-6)
    assert (plan.supply["supply"] >= -1e-9).all() and (plan.inventory["closing"] >= -1e-9).all()
    assert ((u["unmet"] >= -1e-9) & (u["unmet"] <= u["demand"] + 1e-9)).all()
    limited = plan.resources.dropna(subset=["capacity"])
    assert (limited["load"] <= limited["capacity"] + 1e-6).all()


def test_tiny_case_solved_by_hand():
    # February needs 16 on a line of 10; January has 4 spare and shelf life is one month:
    # A (priority 1) is served in full, 4 units are pre-built in January, B misses 2 units at 3.
    plan = constrained_plan(*_tiny()[:3], inventory=_tiny()[3])
    unmet = _by(plan.unmet, "unmet")
    assert unmet[("A", JAN)] == pytest.approx(0) and unmet[("A", FEB)] == pytest.approx(0)
    assert unmet[("B", JAN)] == pytest.approx(0) and unmet[("B", FEB)] == pytest.approx(2)
    assert plan.summary["unmet_units"] == pytest.approx(2)
    assert plan.summary["revenue_at_stake"] == pytest.approx(6)
    assert plan.supply.groupby("ds")["supply"].sum().tolist() == pytest.approx([10, 10])
    assert plan.inventory.groupby("ds")["closing"].sum().tolist() == pytest.approx([4, 0])
    assert plan.resources["utilisation"].tolist() == pytest.approx([1, 1])
    assert plan.summary["binding_resource_months"] == 2
    assert plan.summary["solver"] == "highs-lp" and plan.summary["fallback_reason"] is None
    assert "priority 1 first" in plan.summary["rule"]
    _check_feasible(plan)


def test_shelf_life_zero_means_no_prebuild():
    demand, cap, routing, inventory = _tiny(shelf_life=0.0)
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    assert plan.inventory["closing"].abs().max() == pytest.approx(0)
    assert _by(plan.unmet, "unmet")[("B", FEB)] == pytest.approx(6)
    assert plan.summary["revenue_at_stake"] == pytest.approx(18)
    assert plan.supply.groupby("ds")["supply"].sum().tolist() == pytest.approx([6, 10])


def test_a_storage_limit_caps_the_prebuild():
    demand, cap, routing, inventory = _tiny()
    plan = constrained_plan(demand, cap, routing, inventory=inventory, storage=2.0)
    assert plan.inventory.groupby("ds")["closing"].sum().tolist() == pytest.approx([2, 0])
    assert _by(plan.unmet, "unmet")[("B", FEB)] == pytest.approx(4)
    _check_feasible(plan)


def test_no_binding_capacity_supplies_the_demand_and_builds_no_stock():
    demand, cap, routing, inventory = _tiny(capacity=100.0, shelf_life=np.nan)
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    np.testing.assert_allclose(plan.supply["supply"], demand["final"])
    assert plan.inventory["closing"].abs().max() == pytest.approx(0)
    assert plan.summary["unmet_units"] == pytest.approx(0)
    assert plan.summary["binding_resource_months"] == 0


def test_zero_capacity_leaves_everything_unmet_without_error():
    demand, cap, routing, inventory = _tiny(capacity=0.0)
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    np.testing.assert_allclose(plan.unmet["unmet"], demand["final"])
    assert plan.summary["revenue_at_stake"] == pytest.approx((demand["final"] * demand["price"]).sum())
    assert plan.supply["supply"].abs().max() == pytest.approx(0)
    assert plan.summary["binding_resource_months"] == 2  # shut down with demand routed: binding
    assert plan.resources["utilisation"].tolist() == [0.0, 0.0]


def test_priority_outranks_price_and_hours():
    # A (priority 1) takes 2 hours a unit and sells at 1; B (priority 2) takes 1 hour and sells
    # at 100. Weighting by money alone would serve B; the priority classes serve A first.
    demand, cap, routing, inventory = _tiny(shelf_life=0.0, prices=(1.0, 100.0), rates=(2.0, 1.0))
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    unmet = _by(plan.unmet, "unmet")
    assert unmet[("A", JAN)] == pytest.approx(0) and unmet[("A", FEB)] == pytest.approx(3)  # 16 h > 10
    assert unmet[("B", JAN)] == pytest.approx(0) and unmet[("B", FEB)] == pytest.approx(8)
    assert plan.summary["priority_gap"] >= 2 * 2 * 100  # hours ratio x price ratio, doubled


def test_within_a_priority_money_decides():
    demand, cap, routing, inventory = _tiny(shelf_life=0.0, prices=(3.0, 5.0), priorities=(1, 1))
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    unmet = _by(plan.unmet, "unmet")
    assert unmet[("B", FEB)] == pytest.approx(0) and unmet[("A", FEB)] == pytest.approx(6)
    assert plan.summary["revenue_at_stake"] == pytest.approx(18)


def test_safety_stock_is_built_only_with_spare_capacity():
    demand, cap, routing, inventory = _tiny(capacity=12.0, shelf_life=np.nan)
    safety = pd.DataFrame({"key": ["A", "B"], "safety_stock": [2.0, 2.0]})
    plan = constrained_plan(demand, cap, routing, inventory=inventory, safety=safety)
    # 24 hours for 22 units of demand: nothing is left unmet to hold stock. January's 6 spare
    # hours make 4 for February and 2 towards safety; February ends with those 2 (of 4 wanted).
    assert plan.summary["unmet_units"] == pytest.approx(0)
    assert plan.inventory.groupby("ds")["closing"].sum().tolist() == pytest.approx([6, 2])
    _check_feasible(plan)


def test_batch_sizes_make_whole_batches_with_milp():
    demand, cap, routing, inventory = _tiny(capacity=20.0, shelf_life=np.nan)
    plan = constrained_plan(demand, cap, routing, inventory=inventory.assign(batch_size=4.0))
    assert plan.summary["solver"] == "highs-milp"
    assert np.allclose(plan.supply["supply"] % 4, 0, atol=1e-6) or np.allclose(
        (plan.supply["supply"] / 4).round() * 4, plan.supply["supply"], atol=1e-6
    )
    assert plan.summary["unmet_units"] == pytest.approx(0)
    _check_feasible(plan)


def test_greedy_fallback_plans_the_tiny_case_feasibly():
    demand, cap, routing, inventory = _tiny()
    plan = greedy_plan(demand, cap, routing, inventory=inventory)
    assert plan.summary["solver"] == "greedy" and "Greedy" in plan.summary["rule"]
    assert _by(plan.unmet, "unmet")[("A", FEB)] == pytest.approx(0)
    assert plan.summary["unmet_units"] == pytest.approx(2)
    _check_feasible(plan)


def test_a_failed_solve_falls_back_to_greedy_and_says_so(monkeypatch):
    class Failed:
        status, message, x = 1, "Time limit reached", None

    monkeypatch.setattr(constrained, "linprog", lambda *a, **k: Failed())
    demand, cap, routing, inventory = _tiny()
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    assert plan.summary["solver"] == "greedy"
    assert "Time limit" in plan.summary["fallback_reason"]
    assert plan.summary["unmet_units"] == pytest.approx(2)
    _check_feasible(plan)


@pytest.mark.parametrize("planner", [constrained_plan, greedy_plan])
def test_capacity_holds_on_a_random_case(planner):
    data = synthetic_supply(n_series=60, months=12, n_resources=4, seed=3)
    inputs = {"inventory": data["inventory"], "safety": data["safety"]}
    plan = planner(data["demand"], data["capacity"], data["routing"], **inputs)
    assert (plan.resources["load"] <= plan.resources["capacity"] + 1e-6).all()
    assert plan.summary["binding_resource_months"] > 0  # the case is constrained
    _check_feasible(plan, on_hand=data["inventory"].set_index("key")["on_hand"])
    if planner is constrained_plan:  # priority 1 loses no more money than under the rule of thumb
        greedy = greedy_plan(data["demand"], data["capacity"], data["routing"], **inputs)
        first = set(data["routing"].loc[data["routing"]["priority"] == 1, "key"])

        def at_stake(p):
            return p.unmet.loc[p.unmet["key"].isin(first), "revenue_at_stake"].sum()

        assert at_stake(plan) <= at_stake(greedy) + 1e-6


def test_missing_columns_are_named():
    demand, cap, routing, _ = _tiny()
    with pytest.raises(ValueError, match=r"routing frame lacks the columns \['priority'\]"):
        constrained_plan(demand, cap, routing.drop(columns="priority"))
