"""The capacity check on a plan small enough to compute by hand.

Two resources, three routed keys (ids ``00101`` and ``NA`` kept as text), three months, and
a shutdown of PACK in February:

=======  ======  =====================  =========  ========  ====================
month    00101   NA     SKU-1           FILL load  PACK load  capacity FILL / PACK
=======  ======  =====================  =========  ========  ====================
Jan      100     50     200             200        110        250 / 200
Feb      120     60     200             240        112        200 / 0 (shutdown)
Mar       80     40     200             160        108        250 / 300
=======  ======  =====================  =========  ========  ====================

FILL = 1 x 00101 + 2 x NA (units); PACK = 0.5 x SKU-1 + 0.1 x 00101 (hours).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.errors import ConfigError
from sopforecast.supply.capacity import (
    DETAIL_COLUMNS,
    EXCEPTION_COLUMNS,
    LOAD_COLUMNS,
    UTILISATION_COLUMNS,
    capacity_exceptions,
    capacity_load,
    resource_load,
    utilisation,
)
from sopforecast.supply.inputs import validate_capacity, validate_routing

A, B, C = "00101", "NA", "Beverages/Juice/SKU-1"
MONTHS = pd.date_range("2026-01-01", periods=3, freq="MS")
JAN, FEB, MAR = MONTHS


@pytest.fixture
def lines():
    finals = {A: [100, 120, 80], B: [50, 60, 40], C: [200, 200, 200], "Total": [350, 380, 320]}
    return pd.DataFrame(
        {
            "unique_id": np.repeat(list(finals), 3),
            "level": np.repeat(["sku", "sku", "sku", "Total"], 3),
            "ds": np.tile(MONTHS, 4),
            "statistical": 1.0,  # not the plan: the check must read final
            "final": np.concatenate(list(finals.values())).astype(float),
        }
    )


@pytest.fixture
def routing(lines):
    raw = pd.DataFrame(
        {"key": [A, B, C, A], "resource": ["FILL", "FILL", "PACK", "PACK"], "rate": [1, 2, 0.5, 0.1]}
    )
    return validate_routing(raw, source="routing.csv", plan_keys=set(lines["unique_id"]))


@pytest.fixture
def capacity():
    raw = pd.DataFrame(
        {
            "resource": ["FILL"] * 3 + ["PACK"] * 3,
            "ds": ["2026-01", "2026-02", "2026-03"] * 2,
            "capacity": [250, 200, 250, 200, 0, 300],
            "unit": ["units"] * 3 + ["hours"] * 3,
        }
    )
    return validate_capacity(raw, source="capacity.csv")


def _by(frame, col):
    return {(r, d): v for r, d, v in zip(frame["resource"], frame["ds"], frame[col], strict=True)}


def test_load_by_hand(lines, routing):
    load = capacity_load(lines, routing)
    assert list(load.columns) == LOAD_COLUMNS
    assert _by(load, "load") == {
        ("FILL", JAN): 200.0,
        ("FILL", FEB): 240.0,
        ("FILL", MAR): 160.0,
        ("PACK", JAN): 110.0,
        ("PACK", FEB): 112.0,
        ("PACK", MAR): 108.0,
    }


def test_detail_by_key_and_sums_to_load(lines, routing):
    detail = capacity_load(lines, routing, detail=True)
    assert list(detail.columns) == DETAIL_COLUMNS
    feb_pack = detail[(detail["resource"] == "PACK") & (detail["ds"] == FEB)]
    assert dict(zip(feb_pack["key"], feb_pack["load"], strict=True)) == {A: 12.0, C: 100.0}
    assert set(detail["key"]) == {A, B, C}  # Total is not routed
    pd.testing.assert_frame_equal(resource_load(detail), capacity_load(lines, routing))


def test_unloaded_resource_months_are_zero(lines, routing):
    quiet = lines.assign(final=np.where(lines["ds"] == MAR, 0.0, lines["final"]))
    routing = pd.concat([routing, routing.head(1).assign(key="Total", resource="SPARE")])
    load = capacity_load(quiet.query("unique_id != 'Total'"), routing)
    assert _by(load, "load")[("FILL", MAR)] == 0.0
    assert (load.loc[load["resource"] == "SPARE", "load"] == 0).all() and len(load) == 9


def test_utilisation_by_hand_with_shutdown(lines, routing, capacity):
    util = utilisation(capacity_load(lines, routing), capacity)
    assert list(util.columns) == UTILISATION_COLUMNS
    got = _by(util, "utilisation")
    assert got[("FILL", JAN)] == pytest.approx(0.8) and got[("FILL", FEB)] == pytest.approx(1.2)
    assert got[("FILL", MAR)] == pytest.approx(0.64) and got[("PACK", JAN)] == pytest.approx(0.55)
    assert got[("PACK", FEB)] == np.inf  # load in the shutdown month
    assert got[("PACK", MAR)] == pytest.approx(0.36)


def test_shutdown_without_load_is_not_inf(lines, routing, capacity):
    lines = lines.assign(final=np.where(lines["ds"] == FEB, 0.0, lines["final"]))
    util = utilisation(capacity_load(lines, routing), capacity)
    assert _by(util, "utilisation")[("PACK", FEB)] == 0.0


def test_missing_capacity_is_missing_not_zero(lines, routing, capacity):
    util = utilisation(
        capacity_load(lines, routing), capacity[~((capacity["resource"] == "PACK") & (capacity["ds"] == MAR))]
    )
    row = util[(util["resource"] == "PACK") & (util["ds"] == MAR)].iloc[0]
    assert np.isnan(row["capacity"]) and np.isnan(row["utilisation"]) and row["load"] == 108.0


def test_capacity_outside_the_plan_is_left_out(lines, routing, capacity):
    later = capacity.assign(ds=capacity["ds"] + pd.DateOffset(years=1))
    util = utilisation(capacity_load(lines, routing), pd.concat([capacity, later]))
    assert len(util) == 6


def test_exceptions_by_hand_sorted_by_severity(lines, routing, capacity):
    detail = capacity_load(lines, routing, detail=True)
    util = utilisation(resource_load(detail), capacity)
    out = capacity_exceptions(util, detail)
    assert list(out.columns) == EXCEPTION_COLUMNS
    assert list(zip(out["resource"], out["ds"], out["kind"], strict=True)) == [
        ("PACK", FEB, "overload"),  # inf first
        ("FILL", FEB, "overload"),
        ("PACK", MAR, "underused"),  # 0.36 < 0.5
    ]
    assert out["gap"].tolist() == [112.0, 40.0, -192.0]
    assert out["drivers"].tolist() == [
        f"{C} (89%), {A} (11%)",
        f"{A} (50%), {B} (50%)",  # a tie: by key
        f"{C} (93%), {A} (7%)",
    ]


def test_thresholds_configurable(lines, routing, capacity):
    detail = capacity_load(lines, routing, detail=True)
    util = utilisation(resource_load(detail), capacity)
    out = capacity_exceptions(util, detail, over=1.25, under=0.7)
    assert list(zip(out["resource"], out["ds"], out["kind"], strict=True)) == [
        ("PACK", FEB, "overload"),
        ("PACK", MAR, "underused"),
        ("PACK", JAN, "underused"),
        ("FILL", MAR, "underused"),
    ]
    assert capacity_exceptions(util, detail, under=0.0)["kind"].tolist() == ["overload", "overload"]


def test_top_drivers(lines, routing, capacity):
    detail = capacity_load(lines, routing, detail=True)
    util = utilisation(resource_load(detail), capacity)
    assert capacity_exceptions(util, detail, top_drivers=1)["drivers"].tolist() == [
        f"{C} (89%)",
        f"{A} (50%)",
        f"{C} (93%)",
    ]
    assert set(capacity_exceptions(util, detail, top_drivers=0)["drivers"]) == {""}


def test_missing_capacity_is_an_exception(lines, routing, capacity):
    detail = capacity_load(lines, routing, detail=True)
    util = utilisation(resource_load(detail), capacity[capacity["resource"] != "PACK"])
    out = capacity_exceptions(util, detail)
    missing = out[out["kind"] == "no capacity"]
    assert list(zip(missing["ds"], missing["load"], missing["gap"], strict=True)) == [
        (FEB, 112.0, 112.0),
        (JAN, 110.0, 110.0),
        (MAR, 108.0, 108.0),
    ]
    assert out["kind"].tolist() == ["overload", "no capacity", "no capacity", "no capacity"]


@pytest.mark.parametrize(
    ("kw", "setting"),
    [({"under": 1.2}, "over"), ({"under": -0.1}, "under"), ({"top_drivers": -1}, "top_drivers")],
)
def test_bad_thresholds(lines, routing, capacity, kw, setting):
    detail = capacity_load(lines, routing, detail=True)
    util = utilisation(resource_load(detail), capacity)
    with pytest.raises(ConfigError) as info:
        capacity_exceptions(util, detail, **kw)
    assert info.value.setting == setting


def test_inputs_not_modified(lines, routing, capacity):
    before = lines.copy(), routing.copy(), capacity.copy()
    detail = capacity_load(lines, routing, detail=True)
    capacity_exceptions(utilisation(resource_load(detail), capacity), detail)
    for frame, copy in zip((lines, routing, capacity), before, strict=True):
        pd.testing.assert_frame_equal(frame, copy)
