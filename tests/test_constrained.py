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


@pytest.mark.parametrize("planner", [constrained_plan, greedy_plan])
def test_a_storage_limit_caps_the_prebuild(planner):
    demand, cap, routing, inventory = _tiny()
    plan = planner(demand, cap, routing, inventory=inventory, storage=2.0)
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


@pytest.mark.parametrize(("batches", "solver"), [("round", "highs-lp+batches"), ("milp", "highs-milp")])
def test_batch_sizes_make_whole_batches(batches, solver):
    demand, cap, routing, inventory = _tiny(capacity=20.0, shelf_life=np.nan)
    plan = constrained_plan(demand, cap, routing, inventory=inventory.assign(batch_size=4.0), batches=batches)
    assert plan.summary["solver"] == solver
    assert ("Batch sizes" in plan.summary["rule"]) == (batches == "round")
    assert np.allclose(plan.supply["supply"] % 4, 0, atol=1e-6) or np.allclose(
        (plan.supply["supply"] / 4).round() * 4, plan.supply["supply"], atol=1e-6
    )
    assert plan.summary["unmet_units"] == pytest.approx(0)
    _check_feasible(plan)


def test_batch_rounding_goes_down_where_capacity_binds_and_up_where_it_has_room():
    # one key at 1 hour a unit, 8 then 7 hours, demand 7 then 7, batches of 4. The LP makes
    # 7 and 7. January rounds 7 up to 8 (one spare hour: fits, 1 unit left in stock);
    # February's cumulative 14 would round up to 16 (8 more, 7 hours: no room), so down to
    # 12: 4 more, with the 1 in stock 5 of 7 served, 2 unmet; all within capacity.
    months = pd.to_datetime(["2026-01-01", "2026-02-01"])
    demand = pd.DataFrame({"unique_id": "A", "ds": months, "final": [7.0, 7.0], "price": 1.0})
    cap = pd.DataFrame({"resource": "R", "ds": months, "capacity": [8.0, 7.0]})
    routing = pd.DataFrame({"key": ["A"], "resource": ["R"], "rate": [1.0], "priority": [1]})
    inventory = pd.DataFrame({"key": ["A"], "on_hand": [0.0], "batch_size": [4.0]})
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    assert plan.supply["supply"].tolist() == pytest.approx([8.0, 4.0])
    assert plan.unmet["unmet"].tolist() == pytest.approx([0.0, 2.0])
    assert plan.inventory["closing"].tolist() == pytest.approx([1.0, 0.0])
    assert (plan.resources["load"] <= plan.resources["capacity"] + 1e-9).all()


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


def _clusters(seed=5):
    """90 series on 6 resources in 3 families: three groups that share no resource; capacity
    cut to 70% so that more than the last priority class goes short."""
    data = synthetic_supply(n_series=90, months=12, n_resources=6, seed=seed, families=3)
    inputs = {"inventory": data["inventory"], "safety": data["safety"]}
    capacity = data["capacity"].assign(capacity=0.7 * data["capacity"]["capacity"])
    return (data["demand"], capacity, data["routing"]), inputs


def _at_stake_by_priority(plan, routing):
    priority = routing.groupby("key")["priority"].min()
    return plan.unmet.groupby(plan.unmet["key"].map(priority))[["unmet", "revenue_at_stake"]].sum()


@pytest.mark.parametrize("seed", [5, 11])
def test_one_lp_per_group_gives_the_single_lp_plan(monkeypatch, seed):
    frames, inputs = _clusters(seed)
    monkeypatch.setattr(constrained, "_MIN_VARIABLES", 0)  # every group its own HiGHS call
    split = constrained_plan(*frames, **inputs)
    monkeypatch.setattr(constrained, "_MIN_VARIABLES", 10**9)  # all groups in one LP, as before
    whole = constrained_plan(*frames, **inputs)
    assert (split.summary["groups"], split.summary["solves"]) == (3, 3)
    assert (whole.summary["groups"], whole.summary["solves"]) == (3, 1)
    assert split.summary["solver"] == whole.summary["solver"] == "highs-lp"
    assert split.summary["priority_gap"] == whole.summary["priority_gap"]  # one rule for all groups
    assert split.summary["binding_resource_months"] > 0  # the case is constrained
    assert split.summary["unmet_units"] == pytest.approx(whole.summary["unmet_units"], rel=1e-5)
    assert split.summary["revenue_at_stake"] == pytest.approx(whole.summary["revenue_at_stake"], rel=1e-5)
    by_split, by_whole = (_at_stake_by_priority(p, frames[2]) for p in (split, whole))
    np.testing.assert_allclose(by_split, by_whole, rtol=1e-5, atol=1e-4)
    _check_feasible(split, on_hand=inputs["inventory"].set_index("key")["on_hand"])


def test_groups_are_counted_and_small_ones_packed():
    frames, inputs = _clusters()
    plan = constrained_plan(*frames, **inputs)
    # 30 series x 12 months x 4 columns = 1,440 variables a group: two fit in one call
    assert plan.summary["groups"] == 3 and plan.summary["solves"] == 2
    assert plan.summary["fallback_groups"] == 0 and plan.summary["fallback_reason"] is None
    assert len(plan.supply) == 90 * 12 and plan.unmet["key"].nunique() == 90
    # keys in the inventory without routing load nothing: one more group, planned by HiGHS too
    extra = inputs["inventory"].head(5).assign(key=[f"X{i}" for i in range(5)])
    lines = frames[0].head(12 * 5).assign(unique_id=np.repeat(extra["key"].to_numpy(), 12))
    demand = pd.concat([frames[0], lines], ignore_index=True)
    inventory = pd.concat([inputs["inventory"], extra], ignore_index=True)
    plan = constrained_plan(demand, *frames[1:], inventory=inventory, safety=inputs["safety"])
    assert plan.summary["groups"] == 4 and plan.summary["keys"] == 95
    free = plan.unmet[plan.unmet["key"].str.startswith("X")]
    assert free["unmet"].abs().max() == pytest.approx(0)  # no capacity: all served


def test_a_total_storage_limit_keeps_one_lp():
    frames, inputs = _clusters()
    plan = constrained_plan(*frames, **inputs, storage=1_000.0)
    assert plan.summary["groups"] == 1 and plan.summary["solves"] == 1
    assert plan.inventory.groupby("ds")["closing"].sum().max() <= 1_000.0 + 1e-6
    per_key = pd.DataFrame({"key": frames[2]["key"].unique(), "max_stock": 50.0})
    assert constrained_plan(*frames, **inputs, storage=per_key).summary["groups"] == 3  # links none


def test_only_the_group_whose_solve_fails_falls_back(monkeypatch):
    frames, inputs = _clusters()
    monkeypatch.setattr(constrained, "_MIN_VARIABLES", 0)
    calls, real = [], constrained.linprog

    class Failed:
        status, message, x = 1, "Time limit reached", None

    def second_fails(*args, **kwargs):
        calls.append(1)
        return Failed() if len(calls) == 2 else real(*args, **kwargs)

    monkeypatch.setattr(constrained, "linprog", second_fails)
    plan = constrained_plan(*frames, **inputs)
    s = plan.summary
    assert s["solver"] == "highs-lp+greedy" and (s["groups"], s["fallback_groups"]) == (3, 1)
    assert s["fallback_reason"].startswith("1 of 3 groups: highs-lp 1: Time limit")
    assert "priority 1 first" in s["rule"] and "Greedy fallback" in s["rule"]
    _check_feasible(plan, on_hand=inputs["inventory"].set_index("key")["on_hand"])


def test_the_time_limit_is_for_all_groups_together():
    frames, inputs = _clusters()
    plan = constrained_plan(*frames, **inputs, time_limit=0.0)  # no time left for any group
    assert plan.summary["solver"] == "greedy" and plan.summary["fallback_groups"] == 3
    assert "before this group's turn" in plan.summary["fallback_reason"]
    greedy = greedy_plan(*frames, **inputs)
    np.testing.assert_allclose(plan.unmet["unmet"], greedy.unmet["unmet"], atol=1e-9)


def test_a_milp_group_leaves_time_for_the_others():
    # MILPs rarely prove optimality in time: one given all that is left would leave the
    # other groups to the fallback; each gets its share and keeps its best plan instead
    frames, inputs = _clusters()
    inventory = inputs["inventory"].assign(batch_size=10.0)
    plan = constrained_plan(
        *frames, inventory=inventory, safety=inputs["safety"], time_limit=5.0, batches="milp"
    )
    assert plan.summary["solver"] == "highs-milp" and plan.summary["fallback_groups"] == 0
    _check_feasible(plan, on_hand=inventory.set_index("key")["on_hand"])


def test_batch_rounding_keeps_capacity_and_whole_batches_on_a_panel():
    data = synthetic_supply(n_series=60, months=12, n_resources=4, seed=5, families=2, batch_share=0.4)
    inventory = data["inventory"]
    plan = constrained_plan(
        data["demand"], data["capacity"], data["routing"], inventory=inventory, safety=data["safety"]
    )
    assert plan.summary["solver"] == "highs-lp+batches"
    res = plan.resources.dropna(subset=["capacity"])
    assert (res["load"] <= res["capacity"] + 1e-6).all()
    batch = plan.supply.merge(inventory[["key", "batch_size"]], on="key").dropna(subset=["batch_size"])
    assert len(batch) and np.allclose(
        batch["supply"] / batch["batch_size"], (batch["supply"] / batch["batch_size"]).round()
    )
    _check_feasible(plan, on_hand=inventory.set_index("key")["on_hand"])


def test_a_priority_1_batch_takes_the_room_of_priority_2_not_the_other_way():
    # 10 hours; A (priority 1, batches of 4) needs 6, B (priority 2) needs 4: the LP makes
    # both. Rounding A down to 4 would leave priority 1 short to serve priority 2; A is
    # rounded up to 8 (2 left in stock) and the LP then gives B the 2 hours left.
    month = pd.to_datetime(["2026-01-01"])
    demand = pd.DataFrame({"unique_id": ["A", "B"], "ds": month[0], "final": [6.0, 4.0], "price": 1.0})
    cap = pd.DataFrame({"resource": ["R"], "ds": month, "capacity": [10.0]})
    routing = pd.DataFrame({"key": ["A", "B"], "resource": "R", "rate": 1.0, "priority": [1, 2]})
    inventory = pd.DataFrame({"key": ["A", "B"], "on_hand": 0.0, "batch_size": [4.0, np.nan]})
    plan = constrained_plan(demand, cap, routing, inventory=inventory)
    assert _by(plan.supply, "supply")[("A", month[0])] == pytest.approx(8.0)
    unmet = _by(plan.unmet, "unmet")
    assert unmet[("A", month[0])] == pytest.approx(0.0) and unmet[("B", month[0])] == pytest.approx(2.0)
    _check_feasible(plan)
