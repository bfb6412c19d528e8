"""The demo's supply inputs fit its demand: valid for the supply readers, every SKU routed,
every SKU-location stocked, lines sized so growth and the planned shutdown bind."""

from __future__ import annotations

import pandas as pd
import pytest

from sopforecast.data.datasets import generate_plan
from sopforecast.data.supply_demo import generate_supply
from sopforecast.supply.inputs import validate_capacity, validate_inventory, validate_routing


@pytest.fixture(scope="module")
def demo():
    plan = generate_plan(120, seed=3)
    start = plan.history["ds"].max() + pd.DateOffset(months=1)
    return plan, generate_supply(plan.history, start=start, seed=3)


def test_supply_inputs_pass_their_own_validation(demo):
    _, supply = demo
    assert len(validate_capacity(supply.capacity, source="demo")) == len(supply.capacity)
    assert len(validate_routing(supply.routing, source="demo")) == len(supply.routing)
    assert len(validate_inventory(supply.inventory, source="demo")) == len(supply.inventory)


def test_every_sku_is_routed_and_every_location_stocked(demo):
    plan, supply = demo
    skus = set(plan.history[["category", "family", "sku"]].astype(str).agg("/".join, axis=1))
    assert set(supply.routing["key"]) == skus
    bottom = (
        plan.history[["category", "family", "sku", "region", "channel"]].astype(str).agg("/".join, axis=1)
    )
    assert set(supply.inventory["key"]) == set(bottom)
    assert set(supply.routing["priority"]) == {1, 2}


def test_lines_are_sized_to_their_busiest_month_and_one_shuts_down(demo):
    plan, supply = demo
    cap = supply.capacity.pivot(index="ds", columns="resource", values="capacity")
    assert cap.shape == (18, plan.history["category"].nunique())
    shut = cap.iloc[1]
    normal = cap.iloc[0]
    lowered = shut[shut < normal]
    assert len(lowered) == 1 and lowered.iloc[0] == pytest.approx(0.2 * normal[lowered.index[0]], abs=0.1)
    # the busiest month of the last 12 fits, with no headroom
    recent = plan.history[plan.history["ds"] > plan.history["ds"].max() - pd.DateOffset(months=12)].copy()
    recent["key"] = recent[["category", "family", "sku"]].astype(str).agg("/".join, axis=1)
    hours = recent.merge(supply.routing, on="key").assign(h=lambda f: f["y"] * f["rate"])
    peak = hours.groupby(["resource", "ds"])["h"].sum().groupby(level="resource").max()
    assert normal.sort_index().to_numpy() == pytest.approx(1.0 * peak.sort_index().to_numpy(), abs=0.1)


def test_the_same_seed_gives_the_same_inputs(demo):
    plan, supply = demo
    again = generate_supply(plan.history, start=supply.capacity["ds"].min(), seed=3)
    pd.testing.assert_frame_equal(again.routing, supply.routing)
    pd.testing.assert_frame_equal(again.inventory, supply.inventory)
