"""New products from like items (sopforecast.forecasting.launches): the like item's profile at
the new item's scale, the level from the first months, the like item's launch curve at the
new item's age, intervals scaled alike, aggregates moved so the forecast stays coherent, and
clear errors for a bad launch file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.data.hierarchy import Hierarchy
from sopforecast.errors import DataError
from sopforecast.forecasting.launches import (
    CURVE_MONTHS,
    delist_forecast,
    launch_curve,
    launch_forecast,
    read_delistings,
    read_launches,
)

MONTHS = pd.date_range("2026-01-01", periods=6, freq="MS")


def _forecast(ids_values: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for uid, values in ids_values.items():
        rows.append(
            pd.DataFrame(
                {
                    "unique_id": uid,
                    "ds": MONTHS,
                    "forecast": values,
                    "forecast-lo-80": values * 0.8,
                    "forecast-hi-80": values * 1.3,
                    "model": "AutoETS",
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _history(ids_values: dict[str, np.ndarray], start="2023-01-01") -> pd.DataFrame:
    rows = []
    for uid, values in ids_values.items():
        ds = pd.date_range(start, periods=len(values), freq="MS")
        rows.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": values}))
    return pd.concat(rows, ignore_index=True)


def _launch(**row) -> pd.DataFrame:
    return read_launches(pd.DataFrame([{"new_item": "new", "like_item": "like", **row}]))


def test_a_new_item_gets_the_like_items_profile_at_its_scale_from_its_launch():
    like = np.array([100.0, 120, 140, 90, 80, 110])
    forecast = _forecast({"like": like})
    history = _history({"like": np.full(36, 100.0)})
    out, report = launch_forecast(forecast, _launch(launch_month="2026-03", scale=0.5), history)
    new = out[out["unique_id"] == "new"].set_index("ds")
    assert new["forecast"].tolist() == [0.0, 0.0, 70.0, 45.0, 40.0, 55.0]
    assert np.allclose(new["forecast-hi-80"], new["forecast"] * 1.3)  # the like item's errors, scaled
    assert new["model"].eq("like item").all()
    assert report.iloc[0]["how"] == "scale" and report.iloc[0]["scale"] == 0.5
    pd.testing.assert_frame_equal(out[out["unique_id"] == "like"].reset_index(drop=True), forecast)


def test_without_a_scale_the_level_comes_from_the_first_months():
    """The new item sold twice what the like item sold in the same months."""
    like_past = np.tile([100.0, 150.0], 18)
    history = pd.concat(
        [_history({"like": like_past}), _history({"new": [300.0, 200.0, 300.0]}, start="2025-10-01")]
    )
    forecast = _forecast({"like": np.full(6, 120.0), "new": np.full(6, 250.0)})  # short-history forecast
    out, report = launch_forecast(forecast, _launch(launch_month="2025-10"), history)
    assert report.iloc[0]["scale"] == pytest.approx(2.0)
    assert report.iloc[0]["how"] == "first 3 months"
    assert out.loc[out["unique_id"] == "new", "forecast"].tolist() == [240.0] * 6


def test_the_level_is_set_against_the_like_items_forecast_for_the_same_months_a_year_on():
    """The like item's past months were a promotion spike (300 in Oct-Dec 2025): set against
    them, the new item would look a third of its size. Its forecast for Oct-Dec 2026 (100, its
    level without the spike) is what the new item is set against when the forecast reaches them."""
    months = pd.date_range("2026-01-01", periods=12, freq="MS")
    history = pd.concat(
        [
            _history({"like": np.r_[np.full(33, 100.0), 300.0, 300.0, 300.0]}),
            _history({"new": [50.0, 40.0, 60.0]}, start="2025-10-01"),
        ]
    )
    like = np.r_[np.full(9, 120.0), 100.0, 100.0, 100.0]  # Jan-Sep 120, Oct-Dec 100
    forecast = pd.concat(
        [
            pd.DataFrame({"unique_id": uid, "ds": months, "forecast": values})
            for uid, values in (("like", like), ("new", np.full(12, 50.0)))
        ],
        ignore_index=True,
    )
    out, report = launch_forecast(forecast, _launch(launch_month="2025-10"), history)
    assert report.iloc[0]["scale"] == pytest.approx(0.5)  # 150 sold against 300 forecast, not 900 sold
    assert out.loc[out["unique_id"] == "new", "forecast"].tolist() == pytest.approx(list(like * 0.5))


def test_a_like_item_forecast_to_sell_nothing_leaves_the_new_item_its_own_forecast():
    history = pd.concat(
        [
            _history({"like": np.r_[np.full(30, 10.0), np.zeros(6)]}),
            _history({"new": [30.0] * 3}, start="2025-10-01"),
        ]
    )
    forecast = _forecast({"like": np.zeros(6), "new": np.full(6, 30.0)})
    out, report = launch_forecast(forecast, _launch(launch_month="2025-10"), history)
    pd.testing.assert_frame_equal(out, forecast)
    assert report.iloc[0]["how"] == "own forecast (like forecasts none)" and np.isnan(report.iloc[0]["scale"])


def test_an_item_without_sales_since_its_launch_inside_the_history_is_levelled_at_zero():
    """No rows since its launch (all-zero months are not a series of their own): it sold
    nothing in its first months, so its level is 0, not an error that stops the run."""
    history = _history({"like": np.full(36, 100.0)})  # 2023-01 .. 2025-12
    forecast = _forecast({"like": np.full(6, 120.0)})
    out, report = launch_forecast(forecast, _launch(launch_month="2025-10"), history)
    assert report.iloc[0]["scale"] == 0.0 and report.iloc[0]["how"] == "first 3 months"
    assert out.loc[out["unique_id"] == "new", "forecast"].eq(0.0).all()


def test_an_intermittent_like_item_without_sales_in_the_first_months_lends_its_mean_month():
    like = np.tile([60.0, 0.0, 0.0, 0.0], 9)  # 2023-01 .. 2025-12: nothing in Oct-Dec 2025
    history = pd.concat([_history({"like": like}), _history({"new": [30.0, 0.0, 0.0]}, start="2025-10-01")])
    out, report = launch_forecast(
        _forecast({"like": np.full(6, 15.0)}), _launch(launch_month="2025-10"), history
    )
    assert report.iloc[0]["scale"] == pytest.approx(30.0 / 45.0)  # 3 months of its mean month, 15
    assert out.loc[out["unique_id"] == "new", "forecast"].tolist() == pytest.approx([10.0] * 6)


def test_the_like_items_launch_curve_at_the_new_items_age():
    # the like item was launched inside the history: 20%, 50%, then full (100) from its third month
    ramp = np.r_[np.zeros(6), 20.0, 50.0, np.full(40, 100.0)]
    history = _history({"like": ramp})
    curve = launch_curve(history, "like", history["ds"].min())
    assert curve[:3].tolist() == [0.2, 0.5, 1.0] and len(curve) == CURVE_MONTHS
    forecast = _forecast({"like": np.full(6, 100.0)})
    out, _ = launch_forecast(forecast, _launch(launch_month="2026-02", scale=1.0), history)
    assert out.loc[out["unique_id"] == "new", "forecast"].tolist() == [0.0, 20.0, 50.0, 100.0, 100.0, 100.0]
    # an item selling from the first month has no curve
    assert (
        launch_curve(_history({"old": np.full(30, 5.0)}), "old", pd.Timestamp("2023-01-01")).tolist()
        == [1.0] * CURVE_MONTHS
    )


def test_aggregates_above_a_new_item_move_with_it():
    keys = pd.DataFrame(
        {"unique_id": ["A/x", "A/y", "B/z"], "group": ["A", "A", "B"], "item": ["x", "y", "z"]}
    )
    hierarchy = Hierarchy.from_bottom(keys, ["group/item"])
    values = {"A/x": np.full(6, 10.0), "A/y": np.full(6, 20.0), "B/z": np.full(6, 5.0)}
    values.update({"A": values["A/x"] + values["A/y"], "B": values["B/z"], "Total": np.full(6, 35.0)})
    forecast = _forecast(values).assign(level=lambda f: f["unique_id"].map(hierarchy.level_of()))
    history = _history({k: np.full(24, v[0]) for k, v in values.items() if "/" in k})
    launches = read_launches(
        pd.DataFrame(
            {
                "group": ["C", "A"],
                "item": ["w", "v"],
                "like_item": ["A/x", "B/z"],
                "launch_month": "2026-01",
                "scale": [2.0, 1.0],
            }
        ),
        keys=["group", "item"],
    )
    out, _ = launch_forecast(forecast, launches, history, hierarchy=hierarchy, hierarchy_spec=["group/item"])
    got = out.groupby("unique_id")["forecast"].first()
    assert got["C/w"] == 20.0 and got["A/v"] == 5.0
    assert got["C"] == 20.0 and got["A"] == 35.0 and got["B"] == 5.0 and got["Total"] == 60.0
    assert out.loc[out["unique_id"] == "C", "level"].eq("group").all()
    assert out.loc[out["unique_id"] == "C/w", "level"].eq("group/item").all()
    # coherent: every month's Total is the sum of the bottom
    bottom = out[out["unique_id"].str.contains("/")].groupby("ds")["forecast"].sum()
    assert np.allclose(out[out["unique_id"] == "Total"].set_index("ds")["forecast"], bottom)


def test_a_bad_launch_file_says_what_to_fix():
    with pytest.raises(DataError, match=r"missing .*like_item"):
        read_launches(pd.DataFrame({"new_item": ["n"], "launch_month": ["2026-01"]}))
    with pytest.raises(DataError, match="is not a month"):
        read_launches(pd.DataFrame({"new_item": ["n"], "like_item": ["l"], "launch_month": ["soon"]}))
    with pytest.raises(DataError, match="not a positive number"):
        read_launches(
            pd.DataFrame({"new_item": ["n"], "like_item": ["l"], "launch_month": ["2026-01"], "scale": [-1]})
        )
    with pytest.raises(DataError, match="its own like item"):
        read_launches(pd.DataFrame({"new_item": ["n"], "like_item": ["n"], "launch_month": ["2026-01"]}))
    forecast = _forecast({"like": np.full(6, 1.0)})
    with pytest.raises(DataError, match="'ghost'.*not forecast"):
        launch_forecast(
            forecast,
            read_launches(
                pd.DataFrame({"new_item": ["n"], "like_item": ["ghost"], "launch_month": ["2026-01"]})
            ),
            _history({"like": np.ones(24)}),
        )
    with pytest.raises(DataError, match="has no scale, and no months since 2026-01"):
        launch_forecast(forecast, _launch(launch_month="2026-01"), _history({"like": np.ones(24)}))


def test_the_forecaster_launches_new_items_coherently():
    """End to end on demo data: one new SKU named by its keys (no history) and one short
    series re-levelled from its first months; every level still adds up."""
    import sopforecast as sf
    from sopforecast.bench.launches import KEYS, pick_launches
    from sopforecast.data.datasets import generate_demand

    raw = generate_demand(n_series=24, periods=40, seed=2)
    picked = pick_launches(raw, 0.1, 2)
    assert len(picked) == 2 and (picked["unique_id"] != picked["like_item"]).all()
    ids = raw[KEYS].astype(str).agg("/".join, axis=1)
    # the typical sibling sold at most what the best seller sold in the year before the launch
    year = raw[(raw["ds"] >= "2023-01-01") & (raw["ds"] < "2024-01-01")]
    sold = year.groupby(ids.loc[year.index])["y"].sum()
    typical, best = sold.reindex(picked["like_item"]), sold.reindex(picked["best_seller"])
    assert (typical.to_numpy() <= best.to_numpy()).all()
    gone, short = picked["unique_id"].iloc[0], picked["unique_id"].iloc[1]
    raw = raw[(ids != gone) & ((ids != short) | (raw["ds"] >= "2023-12-01"))]
    hierarchy = ["category/family/sku", "region/channel"]
    history = sf.validate(raw, sf.DataConfig(hierarchy=hierarchy, short_series="report")).frame
    config = sf.ForecastConfig(horizon=6, windows=2, models=["snaive", "ets"], hierarchy=hierarchy, n_jobs=1)
    fitted = sf.Forecaster(config).fit(history)
    plain = fitted.predict().forecast
    file = picked.rename(columns={"unique_id": "new_item"}).assign(launch_month="2023-12", scale=[0.5, None])
    # both named by their key columns: the first has no history, the second 4 months
    run = fitted.predict(launches=file.drop(columns="new_item"))
    out = run.forecast
    assert gone in set(out["unique_id"]) and gone not in set(plain["unique_id"])
    like = out[out["unique_id"] == picked["like_item"].iloc[0]].set_index("ds")["forecast"]
    assert np.allclose(out[out["unique_id"] == gone].set_index("ds")["forecast"], 0.5 * like)
    bottom = out[out["level"] == "category/family/sku/region/channel"].groupby("ds")["forecast"].sum()
    total = out[out["unique_id"] == "Total"].set_index("ds")["forecast"]
    assert np.allclose(total, bottom)
    assert np.allclose(
        total - plain[plain["unique_id"] == "Total"].set_index("ds")["forecast"],
        out[out["unique_id"].isin([gone, short])].groupby("ds")["forecast"].sum()
        - plain[plain["unique_id"] == short].set_index("ds")["forecast"],
    )
    assert set(fitted.launched_["how"]) == {"scale", "first 3 months"}


def test_a_delisted_item_sells_nothing_after_its_last_month_and_its_aggregates_lose_it():
    bottom = pd.DataFrame(
        {"category": ["A", "A", "B"], "sku": ["a1", "a2", "b1"], "unique_id": ["A/a1", "A/a2", "B/b1"]}
    )
    hierarchy = Hierarchy.from_bottom(bottom, ["category/sku"])
    values = {"A/a1": np.full(6, 10.0), "A/a2": np.full(6, 20.0), "B/b1": np.full(6, 5.0)}
    values.update({"A": values["A/a1"] + values["A/a2"], "B": values["B/b1"]})
    values["Total"] = values["A"] + values["B"]
    forecast = _forecast(values)
    out = delist_forecast(
        forecast,
        read_delistings(pd.DataFrame({"item": ["A/a2"], "last_month": ["2026-03"]})),
        hierarchy=hierarchy,
    )
    series = out.set_index(["unique_id", "ds"])
    assert series.loc["A/a2", "forecast"].tolist() == [20.0, 20.0, 20.0, 0.0, 0.0, 0.0]
    assert series.loc["A/a2", "forecast-hi-80"].tolist()[3:] == [0.0, 0.0, 0.0]
    assert series.loc["A", "forecast"].tolist() == [30.0, 30.0, 30.0, 10.0, 10.0, 10.0]
    assert series.loc["Total", "forecast"].tolist() == [35.0, 35.0, 35.0, 15.0, 15.0, 15.0]
    # an aggregate's interval moves with its point, never below zero, and still holds it
    hi, lo = series.loc["Total", "forecast-hi-80"], series.loc["Total", "forecast-lo-80"]
    assert hi.tolist() == pytest.approx([45.5, 45.5, 45.5, 25.5, 25.5, 25.5])
    assert (lo <= series.loc["Total", "forecast"]).all() and (lo >= 0).all()
    assert series.loc["B/b1", "forecast"].tolist() == [5.0] * 6  # the others keep theirs
    # by key columns, and a typo is an error rather than a dead item kept in the plan
    by_keys = read_delistings(
        pd.DataFrame({"category": ["A"], "sku": ["a2"], "last_month": ["2026-03"]}), keys=["category", "sku"]
    )
    pd.testing.assert_frame_equal(delist_forecast(forecast, by_keys, hierarchy=hierarchy), out)
    with pytest.raises(DataError, match="A/a9"):
        delist_forecast(
            forecast,
            read_delistings(pd.DataFrame({"item": ["A/a9"], "last_month": ["2026-03"]})),
            hierarchy=hierarchy,
        )
    with pytest.raises(DataError, match="last_month"):
        read_delistings(pd.DataFrame({"item": ["A/a2"], "last_month": ["March"]}))
