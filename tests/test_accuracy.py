"""Monitoring accuracy and segments: hand-computed metrics on tiny scored frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.errors import ConfigError, DataError
from sopforecast.monitoring.accuracy import (
    TABLE_COLUMNS,
    accuracy_table,
    mase_scale,
    tracking_signal_by_series,
)
from sopforecast.monitoring.segments import abc, segment_accuracy, segment_table, with_segments, xyz

COLUMNS = [
    "version_id",
    "cycle",
    "unique_id",
    "level",
    "ds",
    "lag",
    "statistical",
    "final",
    "y",
    "statistical-lo-80",
    "statistical-hi-80",
]
# version 1 plans Jan (lag 1) and Mar (lag 3); version 2 plans Feb (lag 1) and Mar (lag 2)
ROWS = [
    (1, "2026-01", "A", "sku", "2026-01", 1, 10, 12, 8, 7, 11),  # inside
    (1, "2026-01", "B", "sku", "2026-01", 1, 20, 18, 22, 15, 21),  # above
    (1, "2026-01", "Total", "Total", "2026-01", 1, 30, 30, 30, 25, 35),
    (1, "2026-01", "A", "sku", "2026-03", 3, 9, 9, 10, 5, 15),
    (1, "2026-01", "B", "sku", "2026-03", 3, 25, 20, 20, 22, 28),  # below
    (1, "2026-01", "Total", "Total", "2026-03", 3, 34, 29, 30, 30, 40),  # on the bound: inside
    (2, "2026-02", "A", "sku", "2026-02", 1, 10, 10, 12, 7, 11),  # above
    (2, "2026-02", "B", "sku", "2026-02", 1, 20, 24, 20, 15, 25),
    (2, "2026-02", "Total", "Total", "2026-02", 1, 30, 34, 32, 25, 35),
    (2, "2026-02", "A", "sku", "2026-03", 2, 11, 11, 10, 5, 15),
    (2, "2026-02", "B", "sku", "2026-03", 2, 21, 21, 20, 15, 25),
    (2, "2026-02", "Total", "Total", "2026-03", 2, 32, 32, 30, 25, 35),
]
SCALE = pd.Series({"A": 2.0, "B": 4.0, "Total": 5.0})


@pytest.fixture
def scored() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=COLUMNS).assign(ds=lambda f: pd.to_datetime(f["ds"]))


def _row(table: pd.DataFrame, **keys) -> pd.Series:
    mask = pd.Series(True, index=table.index)
    for col, value in keys.items():
        mask &= table[col] == value
    assert mask.sum() == 1, keys
    return table[mask].iloc[0]


def test_metrics_per_level_lag_and_forecast(scored):
    table = accuracy_table(scored, scale=SCALE)
    assert list(table.columns) == ["level", *TABLE_COLUMNS]
    assert list(zip(table["level"], table["lag"], table["forecast"], strict=True)) == [
        ("sku", 1, "statistical"),
        ("sku", 1, "final"),
        ("sku", 3, "statistical"),
        ("sku", 3, "final"),
        ("Total", 1, "statistical"),
        ("Total", 1, "final"),
        ("Total", 3, "statistical"),
        ("Total", 3, "final"),
    ]
    # sku lag 1, statistical: errors 2, -2, -2, 0 on actuals 8, 22, 12, 20 (sum 62)
    row = _row(table, level="sku", lag=1, forecast="statistical")
    assert (row["n"], row["actual"]) == (4, 62)
    assert row["wape"] == pytest.approx(6 / 62)
    assert row["accuracy"] == pytest.approx(1 - 6 / 62)
    assert row["bias"] == pytest.approx(-2 / 62)
    assert row["mase"] == pytest.approx((2 / 2 + 2 / 4 + 2 / 2 + 0 / 4) / 4)
    assert row["tracking_signal"] == pytest.approx(-2 / 1.5)
    assert row["coverage"] == pytest.approx(0.5)
    assert row["coverage_gap"] == pytest.approx(-0.3)
    # final: errors 4, -4, -2, 4; no interval of its own
    row = _row(table, level="sku", lag=1, forecast="final")
    assert row["wape"] == pytest.approx(14 / 62)
    assert row["bias"] == pytest.approx(2 / 62)
    assert row["mase"] == pytest.approx((2 + 1 + 1 + 1) / 4)
    assert row["tracking_signal"] == pytest.approx(2 / 3.5)
    assert np.isnan(row["coverage"]) and np.isnan(row["coverage_gap"])
    # sku lag 3: statistical errors -1, 5 (one of two inside); final -1, 0
    row = _row(table, level="sku", lag=3, forecast="statistical")
    assert (row["wape"], row["bias"]) == (pytest.approx(0.2), pytest.approx(4 / 30))
    assert row["tracking_signal"] == pytest.approx(4 / 3)
    assert row["coverage"] == pytest.approx(0.5)
    row = _row(table, level="sku", lag=3, forecast="final")
    assert (row["wape"], row["bias"], row["tracking_signal"]) == (
        pytest.approx(1 / 30),
        pytest.approx(-1 / 30),
        pytest.approx(-2.0),
    )
    # Total lag 1: statistical 0, -2 and final 0, +2; lag 3 on the interval's bound counts inside
    row = _row(table, level="Total", lag=1, forecast="statistical")
    assert (row["wape"], row["tracking_signal"], row["coverage"]) == (pytest.approx(2 / 62), -2.0, 1.0)
    assert _row(table, level="Total", lag=1, forecast="final")["tracking_signal"] == pytest.approx(2.0)
    assert _row(table, level="Total", lag=3, forecast="statistical")["coverage"] == 1.0


def test_by_cycle_gives_a_trend_and_a_zero_error_has_no_tracking_signal(scored):
    table = accuracy_table(scored, by=("cycle", "level"), lags=[1])
    assert list(table.columns[:4]) == ["cycle", "level", "lag", "forecast"]
    assert table["cycle"].tolist() == ["2026-01"] * 4 + ["2026-02"] * 4
    row = _row(table, cycle="2026-01", level="Total", forecast="statistical")
    assert (row["wape"], row["accuracy"]) == (0.0, 1.0)
    assert np.isnan(row["tracking_signal"])  # every error 0: no MAD to divide by
    row = _row(table, cycle="2026-02", level="sku", forecast="final")  # errors -2 and 4
    assert row["wape"] == pytest.approx(6 / 32)
    assert row["tracking_signal"] == pytest.approx(2 / 3)
    assert np.isnan(row["mase"])  # no scale given


def test_lags_none_keeps_every_lag_and_default_lags_filter(scored):
    assert sorted(accuracy_table(scored, lags=None)["lag"].unique()) == [1, 2, 3]
    assert sorted(accuracy_table(scored)["lag"].unique()) == [1, 3]
    row = _row(accuracy_table(scored, lags=None), level="sku", lag=2, forecast="final")
    assert row["wape"] == pytest.approx(2 / 30)


def test_zero_actuals_give_nan_wape_and_accuracy_may_go_negative():
    frame = pd.DataFrame(
        {
            "level": ["a", "a", "b"],
            "lag": [1, 1, 1],
            "statistical": [1.0, 2.0, 30.0],
            "final": [1.0, np.nan, 30.0],
            "y": [0.0, 0.0, 10.0],
        }
    )
    table = accuracy_table(frame)
    row = _row(table, level="a", forecast="statistical")
    assert row["n"] == 2 and np.isnan(row["wape"]) and np.isnan(row["bias"])
    assert _row(table, level="a", forecast="final")["n"] == 1  # scored where the forecast is known
    row = _row(table, level="b", forecast="final")
    assert (row["wape"], row["accuracy"], row["bias"]) == (2.0, -1.0, 2.0)
    assert np.isnan(row["coverage"])  # no interval columns at all


def test_rows_without_actual_are_ignored_and_missing_columns_are_named(scored):
    pending = scored.assign(y=np.where(scored["cycle"] == "2026-02", np.nan, scored["y"]))
    assert set(accuracy_table(pending, lags=None)["lag"]) == {1, 3}
    empty = accuracy_table(scored.iloc[:0])
    assert list(empty.columns) == ["level", *TABLE_COLUMNS] and empty.empty
    with pytest.raises(DataError, match=r"\['final'\]"):
        accuracy_table(scored.drop(columns="final"))
    with pytest.raises(DataError, match="abc"):
        accuracy_table(scored, by=("abc",))


def test_interval_level_picks_its_bounds(scored):
    wide = scored.assign(**{"statistical-lo-95": 0.0, "statistical-hi-95": 100.0})
    row = _row(accuracy_table(wide, interval=95), level="sku", lag=1, forecast="statistical")
    assert row["coverage"] == 1.0 and row["coverage_gap"] == pytest.approx(0.05)


def test_mase_scale_seasonal_naive_short_and_flat_series():
    history = pd.concat(
        [
            pd.DataFrame({"unique_id": "long", "ds": range(14), "y": np.arange(1.0, 15.0)}),
            pd.DataFrame({"unique_id": "short", "ds": range(3), "y": [5.0, 7.0, 4.0]}),
            pd.DataFrame({"unique_id": "flat", "ds": range(14), "y": 3.0}),
            pd.DataFrame({"unique_id": "one", "ds": [0], "y": [2.0]}),
        ]
    ).sample(frac=1, random_state=0)  # order must not matter
    scale = mase_scale(history)
    assert scale["long"] == 12.0  # y[t] - y[t-12] is 12 for both seasonal pairs
    assert scale["short"] == 2.5  # shorter than a season: naive |7-5|, |4-7|
    assert scale["flat"] == 3.0  # no change at all: its mean demand
    assert scale["one"] == 2.0
    zero = mase_scale(pd.DataFrame({"unique_id": "z", "ds": range(3), "y": 0.0}))
    assert zero["z"] == 1.0  # no demand: errors in units
    assert mase_scale(history, season=1)["long"] == 1.0
    with pytest.raises(ConfigError, match="season"):
        mase_scale(history, season=0)


def test_tracking_signal_by_series_rolls_over_the_window():
    months = pd.to_datetime(["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"])
    frame = pd.DataFrame(
        {
            "version_id": [1, 2, 3, 4, 1, 2],
            "unique_id": ["A"] * 4 + ["Z"] * 2,
            "level": "sku",
            "ds": list(months) + list(months[:2]),
            "lag": 1,
            "final": [12.0, 12.0, 9.0, 13.0, 5.0, 5.0],
            "y": [10.0, 10.0, 10.0, 10.0, 5.0, 5.0],
        }
    )
    # an older version planned April at lag 1 too: the latest version counts
    stale = frame.iloc[[3]].assign(version_id=0, final=100.0)
    lag3 = frame.iloc[[0]].assign(lag=3, final=100.0)
    out = tracking_signal_by_series(pd.concat([stale, frame, lag3]), window=3)
    assert list(out.columns) == ["unique_id", "level", "ds", "error", "tracking_signal"]
    a = out[out["unique_id"] == "A"]
    assert a["error"].tolist() == [2.0, 2.0, -1.0, 3.0]
    # running sums 2, 4, 3, 4 over MADs 2, 2, 5/3, 2 (window of 3)
    assert a["tracking_signal"].tolist() == pytest.approx([1.0, 2.0, 1.8, 2.0])
    assert out.loc[out["unique_id"] == "Z", "tracking_signal"].isna().all()
    with pytest.raises(ConfigError, match="window"):
        tracking_signal_by_series(frame, window=0)


def test_abc_by_cumulative_revenue_share():
    revenue = pd.Series({"d": 6.0, "a": 50.0, "c": 10.0, "b": 30.0, "e": 4.0, "f": 0.0, "g": np.nan})
    # shares before each: a 0, b .5, c .8, d .9, e .96
    assert abc(revenue).to_dict() == {"d": "B", "a": "A", "c": "B", "b": "A", "e": "C", "f": "C", "g": "C"}
    assert abc(pd.Series({"x": 90.0, "y": 10.0})).tolist() == ["A", "B"]  # the dominant item is A
    assert abc(pd.Series({"x": 0.0})).tolist() == ["C"]
    with pytest.raises(ConfigError, match="increasing"):
        abc(revenue, cuts=(0.95, 0.8))


def test_xyz_uses_the_last_months_coefficient_of_variation():
    def series(uid: str, values: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {"unique_id": uid, "ds": pd.date_range("2025-01-01", periods=len(values), freq="MS"), "y": values}
        )

    history = pd.concat(
        [
            series("P", [100.0, 0.0] + [10.0] * 12),  # the wild start is older than 12 months
            series("Q", [5.0, 15.0] * 6),  # cv 0.5: Y
            series("R", [0.0, 20.0] * 6),  # cv 1.0: Z
            series("S", [0.0] * 12),  # no demand: Z
            series("T", [9.0, 11.0] * 6),  # cv 0.1: X
        ]
    )
    assert xyz(history).to_dict() == {"P": "X", "Q": "Y", "R": "Z", "S": "Z", "T": "X"}
    assert xyz(history, months=14)["P"] == "Z"


def test_segment_table_and_with_segments(scored):
    history = pd.DataFrame(
        {
            "unique_id": ["A"] * 4 + ["B"] * 4,
            "ds": list(pd.date_range("2025-01-01", periods=4, freq="MS")) * 2,
            "y": [10.0, 10.0, 10.0, 10.0, 0.0, 30.0, 0.0, 2.0],
        }
    )
    table = segment_table(history, pd.Series({"A": 10.0, "B": 90.0}))
    assert list(table.columns) == ["unique_id", "demand_class", "abc", "xyz"]
    assert table.set_index("unique_id")[["demand_class", "abc", "xyz"]].astype(str).to_dict("index") == {
        "A": {"demand_class": "smooth", "abc": "B", "xyz": "X"},
        "B": {"demand_class": "lumpy", "abc": "A", "xyz": "Z"},
    }
    before = scored.copy()
    merged = with_segments(scored.assign(abc="stale"), table)
    pd.testing.assert_frame_equal(scored, before)
    assert merged.loc[merged["unique_id"] == "A", "abc"].eq("B").all()
    assert merged.loc[merged["level"] == "Total", ["demand_class", "abc", "xyz"]].isna().all().all()
    # segment rows score the bottom series only
    by_abc = accuracy_table(merged, by=("abc",))
    assert set(by_abc["abc"]) == {"A", "B"}
    assert _row(by_abc, abc="A", lag=1, forecast="final")["wape"] == pytest.approx(8 / 42)


def test_segment_accuracy_stacks_columns_and_all(scored):
    segments = pd.DataFrame({"unique_id": ["A", "B"], "abc": ["B", "A"], "xyz": ["X", "Z"]})
    table = segment_accuracy(with_segments(scored, segments), lags=[1])
    assert list(table.columns[:4]) == ["abc", "xyz", "lag", "forecast"]
    assert len(table) == 2 * (2 + 2 + 1)
    every = table[table["abc"].isna() & table["xyz"].isna()]
    expected = accuracy_table(scored[scored["level"] == "sku"], lags=[1])
    assert every["wape"].tolist() == pytest.approx(expected["wape"].tolist())
    trend = segment_accuracy(with_segments(scored, segments), columns=("abc",), by=("cycle",), lags=[1])
    assert set(trend["cycle"]) == {"2026-01", "2026-02"}


def test_one_mase_scale_for_selection_backtest_and_monitor():
    from utilsforecast import losses

    from sopforecast.forecasting.metrics import mase_scale as forecast_scale
    from sopforecast.forecasting.selection import series_scale

    rng = np.random.default_rng(1)
    history = pd.DataFrame(
        {
            "unique_id": np.repeat(["a", "b", "c"], 30),
            "ds": np.tile(np.arange(30), 3),
            "y": rng.poisson(20, 90),
        }
    ).astype({"y": float})
    ours = forecast_scale(history, 12)
    pd.testing.assert_series_equal(series_scale(history, 12), ours)
    pd.testing.assert_series_equal(mase_scale(history, 12), ours)
    # utilsforecast's MASE of a forecast of 0 is MAE / its scale: the same scale
    test = history.groupby("unique_id").tail(3).assign(model=0.0)
    got = losses.mase(test, ["model"], seasonality=12, train_df=history).set_index("unique_id")["model"]
    mae = test.groupby("unique_id")["y"].mean()
    np.testing.assert_allclose(got.sort_index(), (mae / ours).sort_index())
