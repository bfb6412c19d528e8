"""Safety stock from lead-time backtest errors, projected inventory and its exceptions
(``sopforecast.supply.safety`` and ``sopforecast.supply.inventory``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.errors import DataError
from sopforecast.supply.inventory import inventory_exceptions, project_inventory
from sopforecast.supply.safety import lead_time_errors, safety_stock

MONTHS = pd.date_range("2024-01-01", periods=4, freq="MS")


def _backtest(series: dict[str, tuple[np.ndarray, float]], windows: int, horizon: int = 3) -> pd.DataFrame:
    """Backtest frame: per series its actuals (``windows * horizon`` values) and a flat forecast."""
    rows = []
    for uid, (y, forecast) in series.items():
        for w in range(windows):
            cutoff = pd.Timestamp("2015-01-01") + pd.DateOffset(months=w * horizon)
            for h in range(1, horizon + 1):
                rows.append(
                    {
                        "unique_id": uid,
                        "cutoff": cutoff,
                        "ds": cutoff + pd.DateOffset(months=h),
                        "y": float(y[w * horizon + h - 1]),
                        "forecast": forecast,
                    }
                )
    return pd.DataFrame(rows)


def _inventory(keys, lead_time=0, service_level=0.95, **extra) -> pd.DataFrame:
    return pd.DataFrame({"key": keys, "lead_time": lead_time, "service_level": service_level, **extra})


# -- lead-time errors ---------------------------------------------------------------------
def test_lead_time_errors_sum_the_first_lead_time_plus_review_months():
    bt = _backtest({"007": (np.array([5, 7, 9, 1, 2, 3]), 4.0)}, windows=2)
    errors = lead_time_errors(bt, lead_time=1)  # L = 2 months
    assert errors["unique_id"].tolist() == ["007", "007"]  # ids stay text
    assert errors["months"].tolist() == [2, 2]
    assert errors["error"].tolist() == [(5 - 4) + (7 - 4), (1 - 4) + (2 - 4)]
    # mean |e| over all six months, and over the other window's three
    assert errors["scale"].iloc[0] == pytest.approx((1 + 3 + 5 + 3 + 2 + 1) / 6)
    assert errors["scale_other"].tolist() == pytest.approx([(3 + 2 + 1) / 3, (1 + 3 + 5) / 3])


def test_windows_shorter_than_the_lead_time_are_left_out():
    bt = _backtest({"a": (np.arange(6), 1.0)}, windows=2)
    assert lead_time_errors(bt, lead_time=3).empty  # L = 4 > 3 months of backtest
    per_series = lead_time_errors(bt, lead_time=pd.Series({"a": 2}))
    assert set(per_series["months"]) == {3}


# -- safety stock ---------------------------------------------------------------------------
def _pool(errors: list[float]) -> pd.DataFrame:
    """A hand-made error pool: one series per error, all with scale 1."""
    n = len(errors)
    return pd.DataFrame(
        {
            "unique_id": [f"s{i:02d}" for i in range(n)],
            "cutoff": pd.Timestamp("2020-01-01"),
            "months": 1,
            "error": errors,
            "scale": 1.0,
            "scale_other": 1.0,
            "sigma": 1.0,
        }
    )


def test_safety_stock_is_the_pool_quantile_at_the_finite_sample_position():
    errors = _pool([float(i) for i in range(1, 40)])  # 39 series-windows: 1, 2, ..., 39
    inv = _inventory([f"s{i:02d}" for i in range(39)], service_level=0.9)
    out = safety_stock(errors, inv)
    # position (m + 1) * 0.9 / m = 36 / 39 of the sorted errors: 1 + 38 * 36 / 39
    expected = 1 + 38 * (40 * 0.9 / 39)
    assert out["safety_stock"].to_numpy() == pytest.approx(np.full(39, expected))
    assert set(out["method"]) == {"pool quantile"}
    assert out["safety_stock_normal"].iloc[0] == pytest.approx(1.2815515655, rel=1e-6)  # z(0.9) * 1 * sqrt(1)


def test_small_pools_borrow_from_every_series_and_then_take_the_largest_error():
    errors = _pool([float(i) for i in range(1, 40)])
    pools = pd.Series({f"s{i:02d}": "few" if i < 5 else "many" for i in range(39)})
    out = safety_stock(errors, _inventory(list(pools.index), service_level=0.9), pool_by=pools)
    assert set(out.loc[out["pool"] == "few", "method"]) == {"all-series quantile"}
    tiny = safety_stock(errors.head(3), _inventory(["s00", "s01", "s02"], service_level=0.9))
    assert set(tiny["method"]) == {"largest error"}
    assert tiny["safety_stock"].tolist() == [3.0, 3.0, 3.0]


def test_safety_stock_is_never_negative_and_missing_keys_are_reported():
    errors = _pool([-5.0] * 30)  # a forecast always too high
    out = safety_stock(errors, _inventory([f"s{i:02d}" for i in range(30)] + ["new"]))
    known = out[out["key"] != "new"]
    assert (known["safety_stock"] == 0).all()
    new = out[out["key"] == "new"].iloc[0]
    assert new["method"] == "no backtest" and np.isnan(new["safety_stock"])


def test_noisier_series_carry_more_stock_than_smooth_ones_with_the_same_mean():
    rng = np.random.default_rng(0)
    windows, horizon = 8, 3
    series = {}
    for i in range(10):
        series[f"smooth{i}"] = (100 + rng.normal(0, 3, windows * horizon), 100.0)
        series[f"noisy{i}"] = (100 + rng.normal(0, 30, windows * horizon), 100.0)
    bt = _backtest(series, windows, horizon)
    inv = _inventory(list(series), lead_time=1)
    out = safety_stock(lead_time_errors(bt, lead_time=1), inv).set_index("key")
    smooth = out.loc[[f"smooth{i}" for i in range(10)], "safety_stock"]
    noisy = out.loc[[f"noisy{i}" for i in range(10)], "safety_stock"]
    assert noisy.min() > 3 * smooth.max()


def test_intermittent_demand_gets_a_different_stock_from_its_normal_approximation():
    """Zeros most months and an order of 100 in about one in ten: the lead-time error is
    skewed (many small negative errors, a few large positive ones), so its 95% quantile is
    far from z * sigma * sqrt(L)."""
    rng = np.random.default_rng(1)
    windows, horizon = 12, 3
    series = {}
    for i in range(20):
        y = np.where(rng.random(windows * horizon) < 0.1, 100.0, 0.0)
        series[f"int{i}"] = (y, 10.0)
    bt = _backtest(series, windows, horizon)
    out = safety_stock(lead_time_errors(bt, lead_time=0), _inventory(list(series)))
    ratio = out["safety_stock"] / out["safety_stock_normal"]
    assert (abs(ratio - 1) > 0.2).mean() > 0.9
    # an order of 100 less one month's forecast of 10, scaled per series: about 90 units
    assert out["safety_stock"].median() == pytest.approx(90, rel=0.35)


def test_pools_come_from_a_class_frame():
    errors = _pool([float(i) for i in range(1, 41)])
    classes = pd.DataFrame({"unique_id": errors["unique_id"], "demand_class": ["a"] * 20 + ["b"] * 20})
    out = safety_stock(errors, _inventory(list(errors["unique_id"]), service_level=0.8), pool_by=classes)
    by_pool = out.groupby("pool")["safety_stock"].first()
    assert by_pool["b"] > by_pool["a"]  # b's errors are 21..40


def test_bad_service_levels_are_refused_with_the_fix():
    with pytest.raises(DataError, match="fractions"):
        safety_stock(_pool([1.0]), _inventory(["s00"], service_level=95))


# -- projection -----------------------------------------------------------------------------
def _lines(key: str, demand: list[float], price: float = 2.0) -> pd.DataFrame:
    return pd.DataFrame(
        {"unique_id": key, "level": "sku", "ds": MONTHS[: len(demand)], "final": demand, "price": price}
    )


def test_projection_by_hand_with_a_stockout_month_and_its_gap():
    lines = pd.concat([_lines("0042", [10, 20, 30, 10]), _lines("Total", [99, 99, 99, 99])])
    inv = pd.DataFrame({"key": ["0042"], "on_hand": [25.0]})
    supply = pd.DataFrame({"key": ["0042", "0042"], "ds": [MONTHS[1], MONTHS[3]], "supply": [5.0, 40.0]})
    safety = pd.DataFrame({"key": ["0042"], "safety_stock": [8.0]})
    out = project_inventory(lines, inv, safety, supply=supply)
    assert out["key"].tolist() == ["0042"] * 4  # text, leading zeros kept; Total not projected
    assert out["opening"].tolist() == [25, 15, 0, -30]
    assert out["supply"].tolist() == [0, 5, 0, 40]
    assert out["demand"].tolist() == [10, 20, 30, 10]
    assert out["closing"].tolist() == [15, 0, -30, 0]
    assert out["stockout"].tolist() == [False, False, True, False]
    assert out["below_safety"].tolist() == [False, True, True, True]
    assert out["gap"].tolist() == [0, 8, 38, 8]

    exceptions = inventory_exceptions(out)
    assert exceptions[["kind", "ds", "last", "gap", "closing"]].values.tolist() == [
        ["stockout", MONTHS[2], MONTHS[2], 38.0, -30.0],
        ["below safety stock", MONTHS[1], MONTHS[1], 8.0, 0.0],
        ["below safety stock", MONTHS[3], MONTHS[3], 8.0, 0.0],
    ]


def test_exceptions_are_episodes_ranked_by_money():
    lines = pd.concat([_lines("cheap", [10, 10, 10], price=1.0), _lines("dear", [2, 2, 2], price=50.0)])
    inv = pd.DataFrame({"key": ["cheap", "dear"], "on_hand": [0.0, 0.0]})
    supply = pd.DataFrame({"key": ["cheap"], "ds": [MONTHS[0]], "supply": [0.0]})
    out = project_inventory(lines, inv, supply=supply)
    exceptions = inventory_exceptions(out, prices=lines)
    assert exceptions["key"].tolist() == ["dear", "cheap"]  # 6 units x 50 before 30 units x 1
    assert exceptions["months"].tolist() == [3, 3]
    assert exceptions["ds"].tolist() == [MONTHS[0], MONTHS[0]]
    assert exceptions["value"].tolist() == [300.0, 30.0]


def test_make_to_forecast_supply_rounds_cumulative_supply_up_to_whole_batches():
    lines = _lines("b", [3, 4, 10, 0])
    inv = pd.DataFrame({"key": ["b"], "on_hand": [0.0], "batch_size": [5.0]})
    out = project_inventory(lines, inv)
    # cumulative demand 3, 7, 17, 17 -> cumulative supply 5, 10, 20, 20
    assert out["supply"].tolist() == [5, 5, 10, 0]
    assert out["closing"].tolist() == [2, 3, 3, 3]
    unbatched = project_inventory(lines, inv.drop(columns="batch_size"))
    assert unbatched["supply"].tolist() == [3, 4, 10, 0]


def test_no_exceptions_when_stock_covers_the_plan():
    out = project_inventory(_lines("x", [1, 1]), pd.DataFrame({"key": ["x"], "on_hand": [5.0]}))
    assert inventory_exceptions(out).empty
