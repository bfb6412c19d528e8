"""What-if changes as pure deltas (``sopforecast.supply.scenarios``): the changes a meeting
asks about, checked as numbers on two series over three months, and the price elasticity
recovered from synthetic history."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sopforecast.errors import DataError
from sopforecast.supply import scenarios as what_if
from sopforecast.supply.scenarios import (
    CapacityChange,
    Launch,
    PriceChange,
    Promotion,
    SupplierDelay,
    Uplift,
    capacity_after,
    compare,
    describe,
    estimate_elasticity,
    in_window,
    launch_lines,
    parse_change,
    price_lines,
    promotion_calendar,
    promotion_lines,
    subtree,
    uplift_lines,
)

MONTHS = pd.date_range("2027-01-01", periods=3, freq="MS")
JAN, FEB, MAR = MONTHS


@pytest.fixture
def bottom() -> pd.DataFrame:
    """Bottom lines of C1/A (10, 20, 30 at 4) and C1/B (5, 5, 5 at 2)."""
    return pd.DataFrame(
        {
            "unique_id": ["C1/A"] * 3 + ["C1/B"] * 3,
            "ds": list(MONTHS) * 2,
            "statistical": [9.0, 19.0, 29.0, 5.0, 5.0, 5.0],
            "final": [10.0, 20.0, 30.0, 5.0, 5.0, 5.0],
            "price": [4.0] * 3 + [2.0] * 3,
            "unit_cost": [2.0] * 3 + [1.0] * 3,
        }
    )


def _column(frame: pd.DataFrame, uid: str, column: str = "final") -> list[float]:
    return frame.loc[frame["unique_id"] == uid, column].tolist()


# -- the changes ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"kind": "uplift", "node": "C1", "pct": 10, "start": "2027-02"}, "+10% demand on C1 from 2027-02"),
        ({"kind": "uplift", "node": "C1", "pct": -20, "end": "2027-02"}, "-20% demand on C1 until 2027-02"),
        (
            {"kind": "promotion", "node": "C1/A", "start": "2027-02", "end": "2027-03", "price_pct": -15},
            "promotion on C1/A 2027-02..2027-03, price -15%",
        ),
        (
            {"kind": "launch", "item": "NEW-1", "like": "C1/A", "scale": 0.5, "start": "2027-02"},
            "launch NEW-1 from 2027-02 like C1/A x0.5",
        ),
        ({"kind": "price", "node": "C1", "pct": 5}, "price +5% on C1 (estimated elasticity)"),
        ({"kind": "price", "node": "C1", "pct": 5, "elasticity": -1.5}, "price +5% on C1 (elasticity -1.5)"),
        ({"kind": "capacity", "resource": "line", "pct": -50}, "capacity -50% on line"),
        (
            {"kind": "delay", "resource": "supplier", "months": 2, "start": "2027-02"},
            "supplier delivers nothing for 2 month(s) from 2027-02",
        ),
    ],
)
def test_every_change_parses_and_reads_as_one_line(raw, expected):
    change = parse_change(raw)
    assert change.kind == raw["kind"]
    assert describe(change) == expected


def test_months_are_written_year_month():
    assert Uplift(node="C1", pct=1, start=pd.Timestamp("2027-02-01")).start == "2027-02"
    with pytest.raises(ValidationError, match="YYYY-MM"):
        Uplift(node="C1", pct=1, start="Feb 2027")
    with pytest.raises(ValidationError, match="end 2027-01 is before start 2027-02"):
        Uplift(node="C1", pct=1, start="2027-02", end="2027-01")


@pytest.mark.parametrize(
    "raw, problem",
    [
        ({"kind": "uplift", "node": "C1", "pct": -100}, "greater than -100"),  # no cut to nothing
        ({"kind": "uplift", "node": "C1", "pct": 5, "share": 1}, "Extra inputs"),
        ({"kind": "promotion", "node": "C1"}, "needs its first month"),
        ({"kind": "launch", "item": "NEW", "like": "C1/A"}, "needs its launch month"),
        ({"kind": "launch", "item": "C1/NEW", "like": "C1/A", "start": "2027-02"}, "path separator"),
        ({"kind": "price", "node": "C1", "pct": 5, "elasticity": 0.5}, "less than or equal to 0"),
        ({"kind": "delay", "resource": "s", "months": 1, "end": "2027-03"}, "give months, not end"),
        ({"kind": "rebate", "node": "C1"}, "does not match any of the expected tags"),
    ],
)
def test_changes_that_make_no_sense_are_refused(raw, problem):
    with pytest.raises(ValidationError, match=problem):
        parse_change(raw)


def test_windows_are_open_where_no_month_is_given():
    ds = pd.Series(MONTHS)
    assert in_window(ds, None, None).tolist() == [True, True, True]
    assert in_window(ds, "2027-02", None).tolist() == [False, True, True]
    assert in_window(ds, None, "2027-02").tolist() == [True, True, False]
    assert in_window(ds, "2027-02", "2027-02").tolist() == [False, True, False]


def test_a_subtree_is_the_bottom_series_beneath_a_node():
    members = pd.DataFrame(
        {"unique_id": ["C1", "C1", "C1/B", "C1/A"], "bottom": ["C1/B", "C1/A", "C1/B", "C1/A"]}
    )
    assert subtree(members, "C1") == ["C1/A", "C1/B"]
    assert subtree(members, "C1/B") == ["C1/B"]
    with pytest.raises(DataError, match="'c1/' is not a series of the plan. Close: .*C1/A"):
        subtree(members, "c1/")


# -- demand deltas -------------------------------------------------------------------------
def test_an_uplift_raises_the_subtree_in_its_months_only(bottom):
    before = bottom.copy()
    out = uplift_lines(bottom, ["C1/A"], Uplift(node="C1/A", pct=10, start="2027-02"))
    assert _column(out, "C1/A") == pytest.approx([10.0, 22.0, 33.0])
    assert _column(out, "C1/B") == [5.0, 5.0, 5.0]
    assert _column(out, "C1/A", "price") == [4.0] * 3
    pd.testing.assert_frame_equal(bottom, before)  # the plan given is not changed
    cut = uplift_lines(bottom, ["C1/A", "C1/B"], Uplift(node="C1", pct=-20, end="2027-01"))
    assert cut["final"].tolist() == pytest.approx([8.0, 20.0, 30.0, 4.0, 5.0, 5.0])


def test_whole_units_and_hours_are_scaled_into_fractions(bottom, capacity):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas refuses floats in an integer column (a warning today)
        out = uplift_lines(bottom.astype({"final": int}), ["C1/B"], Uplift(node="C1/B", pct=15))
        cap = capacity_after(capacity.astype({"capacity": int}), CapacityChange(resource="line", pct=15))
    assert _column(out, "C1/B") == pytest.approx([5.75] * 3)
    assert cap["capacity"].tolist() == pytest.approx([115.0] * 3 + [100.0] * 3)


def test_a_price_change_moves_price_and_units_by_the_elasticity(bottom):
    change = PriceChange(node="C1/B", pct=10, elasticity=-2.0, start="2027-03")
    out = price_lines(bottom, ["C1/B"], change, elasticity=-2.0)
    assert _column(out, "C1/B") == pytest.approx([5.0, 5.0, 5.0 * 1.1**-2])  # 4.13 units
    assert _column(out, "C1/B", "price") == pytest.approx([2.0, 2.0, 2.2])
    assert _column(out, "C1/A") == [10.0, 20.0, 30.0] and _column(out, "C1/A", "price") == [4.0] * 3
    # a unit elasticity keeps the revenue: 5 / 1.1 units at 2.2
    unit = price_lines(bottom, ["C1/B"], change, elasticity=-1.0)
    assert (unit["final"] * unit["price"]).iloc[-1] == pytest.approx(10.0)


def test_a_launch_copies_the_like_items_profile_from_its_month(bottom):
    change = Launch(item="NEW", like="C1/A", scale=0.5, start="2027-02")
    out = launch_lines(bottom, "C1/NEW", change)
    assert out["unique_id"].tolist() == ["C1/NEW"] * 3
    assert out["ds"].tolist() == list(MONTHS)
    assert out["final"].tolist() == [0.0, 10.0, 15.0]
    assert out["price"].tolist() == [4.0] * 3 and out["unit_cost"].tolist() == [2.0] * 3
    assert out["statistical"].isna().all()  # nobody forecast it
    ended = launch_lines(bottom, "C1/NEW", Launch(item="NEW", like="C1/A", start="2027-01", end="2027-02"))
    assert ended["final"].tolist() == [10.0, 20.0, 0.0]


def test_a_launch_needs_a_known_like_item_and_a_new_name(bottom):
    with pytest.raises(DataError, match="like item 'C9/Z' is not a bottom series"):
        launch_lines(bottom, "C1/NEW", Launch(item="NEW", like="C9/Z", start="2027-02"))
    with pytest.raises(DataError, match="'C1/B' is already a series of the plan"):
        launch_lines(bottom, "C1/B", Launch(item="B", like="C1/A", start="2027-02"))


def test_a_promotion_calendar_sets_the_driver_and_moves_the_price():
    future = pd.DataFrame(
        {"unique_id": ["C1/A"] * 3 + ["C1/B"] * 3, "ds": list(MONTHS) * 2, "promo": 0.0, "price": 4.0}
    )
    change = Promotion(node="C1/A", start="2027-02", end="2027-02", price_pct=-25)
    out = promotion_calendar(future, ["C1/A"], change)
    assert out["promo"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert out["price"].tolist() == [4.0, 3.0, 4.0, 4.0, 4.0, 4.0]
    assert future["promo"].eq(0).all()  # the calendar given is not changed
    with pytest.raises(DataError, match="no 'feature' column"):
        promotion_calendar(future, ["C1/A"], change, driver="feature")


def test_a_promotion_adds_the_forecasters_reaction_never_below_zero(bottom):
    base = bottom[["unique_id", "ds"]].assign(forecast=bottom["final"])
    # the promoted forecast: +6 on A in February, a dip of 40 after (more than A's 30), and
    # a move on B that the promotion does not name (ignored)
    promoted = base.assign(forecast=base["forecast"] + [0.0, 6.0, -40.0, 1.0, 1.0, 1.0])
    change = Promotion(node="C1/A", start="2027-02", end="2027-02", price_pct=-25)
    out = promotion_lines(bottom, ["C1/A"], base, promoted, change)
    assert _column(out, "C1/A") == [10.0, 26.0, 0.0]
    assert _column(out, "C1/B") == [5.0, 5.0, 5.0]
    assert _column(out, "C1/A", "price") == [4.0, 3.0, 4.0]


# -- supply deltas -------------------------------------------------------------------------
@pytest.fixture
def capacity() -> pd.DataFrame:
    return pd.DataFrame(
        {"resource": ["line"] * 3 + ["supplier"] * 3, "ds": list(MONTHS) * 2, "capacity": 100.0}
    )


def test_a_capacity_change_scales_one_resource_in_its_months(capacity):
    out = capacity_after(capacity, CapacityChange(resource="line", pct=-50, start="2027-02", end="2027-02"))
    assert out["capacity"].tolist() == [100.0, 50.0, 100.0, 100.0, 100.0, 100.0]
    assert capacity["capacity"].eq(100).all()
    gone = capacity_after(capacity, CapacityChange(resource="supplier", pct=-100))
    assert gone["capacity"].tolist() == [100.0] * 3 + [0.0] * 3


def test_a_supplier_delay_delivers_nothing_for_its_months(capacity):
    out = capacity_after(capacity, SupplierDelay(resource="supplier", months=2, start="2027-02"))
    assert out["capacity"].tolist() == [100.0] * 3 + [100.0, 0.0, 0.0]
    first = capacity_after(capacity, SupplierDelay(resource="supplier", months=1))  # from its first month
    assert first["capacity"].tolist() == [100.0] * 3 + [0.0, 100.0, 100.0]
    with pytest.raises(DataError, match="resource 'press' is not in the capacity file; name one of"):
        capacity_after(capacity, SupplierDelay(resource="press", months=1))


# -- elasticity ----------------------------------------------------------------------------
def _history(elasticity: float = -1.5, months: int = 36, seed: int = 0) -> pd.DataFrame:
    """Three series with seasonality, promotions (+50%) and a moving price, demand
    ``level * season * price ** elasticity`` with 5% noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-01", periods=months, freq="MS")
    season = 1 + 0.3 * np.sin(2 * np.pi * ds.month / 12)
    frames = []
    for i, (uid, level) in enumerate([("A", 500.0), ("B", 200.0), ("C", 80.0)]):
        price = (5.0 + 3 * i) * np.exp(rng.normal(0, 0.15, months))
        promo = (rng.uniform(size=months) < 0.2).astype(float)
        noise = np.exp(np.log(1.5) * promo + rng.normal(0, 0.05, months))
        y = level * season * price**elasticity * noise
        frames.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y, "price": price, "promo": promo}))
    return pd.concat(frames, ignore_index=True)


def test_the_elasticity_is_recovered_from_noisy_history():
    found = estimate_elasticity(_history(-1.5))
    assert found.value == pytest.approx(-1.5, abs=0.05)
    assert abs(found.value + 1.5) < 3 * found.stderr
    assert (found.observations, found.series) == (108, 3)
    only_a = estimate_elasticity(_history(-0.8), ids=["A"])  # 36 months of one series: less sure
    assert only_a.value == pytest.approx(-0.8, abs=0.15) and abs(only_a.value + 0.8) < 3 * only_a.stderr
    assert (only_a.observations, only_a.series) == (36, 1)


def test_promotion_months_without_a_recorded_driver_count_as_none():
    history = _history(-1.5)
    history.loc[history["promo"] == 0, "promo"] = np.nan  # only the promoted months recorded
    found = estimate_elasticity(history)
    assert found is not None and found.value == pytest.approx(-1.5, abs=0.05)


def test_no_elasticity_where_the_history_cannot_give_one():
    history = _history(-1.5)
    steady = history.assign(price=history.groupby("unique_id")["price"].transform("first"))
    assert estimate_elasticity(steady) is None  # each series' price never moves
    assert estimate_elasticity(history.drop(columns="price")) is None
    assert estimate_elasticity(history, ids=["A"], min_observations=37) is None  # 36 months of A
    rising = history.assign(y=history["y"] * history["price"] ** 3)  # +1.5: not an elasticity
    assert estimate_elasticity(rising) is None


# -- comparison ----------------------------------------------------------------------------
def test_compare_lays_the_plans_side_by_side_with_the_change_against_base():
    table = compare(
        {
            "base": {"units": 100.0, "revenue": None, "unmet_units": 4.0},
            "up": {"units": 110.0, "revenue": None, "unmet_units": 9.0},
        }
    )
    assert list(table.columns) == ["figure", "base", "up", "up vs base"]
    assert table["figure"].tolist() == ["units", "revenue", "unmet_units"]
    assert table["up vs base"].iloc[[0, 2]].tolist() == [10.0, 5.0]
    assert np.isnan(table["up vs base"].iloc[1])  # no revenue known, no change to give
    alone = compare({"up": {"units": 1.0}})  # no base: nothing to hold it against
    assert list(alone.columns) == ["figure", "up"]


def test_demand_and_supply_kinds_cover_every_change():
    kinds = {cls.model_fields["kind"].default for cls in (Uplift, Promotion, Launch, PriceChange)}
    assert kinds == set(what_if.DEMAND_KINDS)
    supply = {cls.model_fields["kind"].default for cls in (CapacityChange, SupplierDelay)}
    assert supply == set(what_if.SUPPLY_KINDS)


def test_promotion_price_cuts_give_the_elasticity_when_list_prices_do_not():
    # list prices step up each year while demand grows anyway (no reaction); promotions cut
    # the price 20% and sell 1.25 ** 2 = 56% more: elasticity log(1.5625) / log(0.8) = -2
    rng = np.random.default_rng(4)
    ds = pd.date_range("2022-01-01", periods=48, freq="MS")
    frames = []
    for uid in ("A", "B", "C"):
        promo = (rng.uniform(size=48) < 0.15).astype(float)
        list_price = 10.0 * 1.04 ** (np.arange(48) // 12)
        price = list_price * np.where(promo == 1, 0.8, 1.0)
        y = 100 * 1.01 ** np.arange(48) * np.where(promo == 1, 1.5625, 1.0) * np.exp(rng.normal(0, 0.03, 48))
        frames.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y, "price": price, "promo": promo}))
    found = estimate_elasticity(pd.concat(frames, ignore_index=True))
    assert found is not None and found.basis == "promotion price cuts"
    assert found.value == pytest.approx(-2.0, abs=0.3)
