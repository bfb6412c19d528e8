"""Drivers end to end: future plans checked and filled, aggregated up a hierarchy, the
baseline, the driver effect carried to statistical models, and a promotion planned for one
future month lifting that month only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.config import ForecastConfig
from sopforecast.data.hierarchy import Hierarchy
from sopforecast.errors import DataError
from sopforecast.forecasting import engine
from sopforecast.forecasting.drivers import (
    aggregate_drivers,
    baseline_future,
    driver_weights,
    flag_drivers,
    future_frame,
)
from sopforecast.forecasting.forecaster import Forecaster
from sopforecast.forecasting.models import CLASS_CANDIDATES, class_candidates

DRIVERS = ["price", "promo"]
MONTHS = pd.date_range("2024-01-01", periods=3, freq="MS")


def _history() -> pd.DataFrame:
    """Two series to 2023-12: a's last price 2.5 and promo 1, b's last price 4 and promo 0."""
    ds = pd.date_range("2023-10-01", periods=3, freq="MS")
    return pd.DataFrame(
        {
            "unique_id": ["a"] * 3 + ["b"] * 3,
            "ds": list(ds) * 2,
            "y": [10.0, 12, 11, 5, 6, 7],
            "price": [2.0, 2.0, 2.5, 4.0, 4.0, 4.0],
            "promo": [0.0, 0.0, 1.0, 0.0, 1.0, 0.0],
        }
    )


def _plan(ids=("a", "b"), months=MONTHS, **values) -> pd.DataFrame:
    frame = pd.DataFrame({"unique_id": np.repeat(ids, len(months)), "ds": np.tile(months, len(ids))})
    return frame.assign(**{"price": 3.0, "promo": 0.0, **values})


# -- future_frame --------------------------------------------------------------------------
def test_complete_plan_is_returned_sorted():
    plan = _plan().sample(frac=1.0, random_state=0)
    out = future_frame(plan, _history(), DRIVERS, 3, "MS")
    assert list(out.columns) == ["unique_id", "ds", *DRIVERS]
    assert out["unique_id"].tolist() == ["a"] * 3 + ["b"] * 3
    assert out["ds"].tolist() == list(MONTHS) * 2
    assert out["price"].eq(3.0).all() and out["promo"].eq(0.0).all()


def test_missing_driver_column_is_named():
    with pytest.raises(DataError, match=r"column\(s\) \['promo'\] missing"):
        future_frame(_plan().drop(columns="promo"), _history(), DRIVERS, 3, "MS")


def test_missing_months_name_series_and_periods():
    plan = _plan()
    plan = plan[~((plan["unique_id"] == "b") & (plan["ds"] >= "2024-02-01"))]
    with pytest.raises(DataError) as err:
        future_frame(plan, _history(), DRIVERS, 3, "MS")
    message = str(err.value)
    assert "2 series-period(s)" in message
    assert "'b'" in message and "'a'" not in message
    assert "2024-02-01" in message and "2024-03-01" in message and "2024-01-01" not in message
    assert "future_fill" in message


def test_no_plan_without_fill_is_an_error():
    with pytest.raises(DataError, match=r"the drivers \['price', 'promo'\] need their future values"):
        future_frame(None, _history(), DRIVERS, 3, "MS")


def test_carry_repeats_the_last_value():
    out = future_frame(None, _history(), DRIVERS, 3, "MS", fill="carry").set_index("unique_id")
    assert out.loc["a", "price"].tolist() == [2.5] * 3 and out.loc["a", "promo"].tolist() == [1.0] * 3
    assert out.loc["b", "price"].tolist() == [4.0] * 3 and out.loc["b", "promo"].tolist() == [0.0] * 3
    # a planned value is carried into the months the plan leaves out
    partial = _plan(ids=("a",), months=MONTHS[:1], price=1.5, promo=0.0)
    out = future_frame(partial, _history(), DRIVERS, 3, "MS", fill="carry").set_index("unique_id")
    assert out.loc["a", "price"].tolist() == [1.5] * 3 and out.loc["a", "promo"].tolist() == [0.0] * 3
    assert out.loc["b", "price"].tolist() == [4.0] * 3  # b absent from the plan: history's last


def test_zero_sets_flags_off_and_carries_price():
    assert flag_drivers(_history(), DRIVERS) == ["promo"]
    out = future_frame(None, _history(), DRIVERS, 2, "MS", fill="zero").set_index("unique_id")
    assert out["promo"].eq(0.0).all()
    assert out.loc["a", "price"].tolist() == [2.5, 2.5] and out.loc["b", "price"].tolist() == [4.0, 4.0]
    # planned values are kept; only the holes are filled
    partial = _plan(ids=("a",), months=MONTHS[:1], price=1.5, promo=1.0)
    out = future_frame(partial, _history(), DRIVERS, 2, "MS", fill="zero").set_index("unique_id")
    assert out.loc["a", "promo"].tolist() == [1.0, 0.0] and out.loc["a", "price"].tolist() == [1.5, 1.5]


def test_key_columns_name_the_series():
    history = _history().assign(unique_id=lambda d: d["unique_id"].map({"a": "Food/a", "b": "Food/b"}))
    plan = _plan(promo=1.0).assign(category="Food", sku=lambda d: d["unique_id"]).drop(columns="unique_id")
    out = future_frame(plan, history, DRIVERS, 3, "MS", keys=["category", "sku"])
    assert sorted(out["unique_id"].unique()) == ["Food/a", "Food/b"]
    assert out["promo"].eq(1.0).all()
    with pytest.raises(
        DataError, match=r"needs unique_id or the key columns \['category', 'sku'\]; missing \['sku'\]"
    ):
        future_frame(plan.drop(columns="sku"), history, DRIVERS, 3, "MS", keys=["category", "sku"])


# -- aggregation ---------------------------------------------------------------------------
def _bottom_history() -> pd.DataFrame:
    """Five bottom series over 14 months: only the last 12 count for the weights."""
    ds = pd.date_range("2023-01-01", periods=14, freq="MS")
    recent = {"a": 10.0, "b": 30.0, "c": 20.0, "d": 0.0, "e": 0.0}
    frames = [
        pd.DataFrame({"unique_id": uid, "ds": ds, "y": [1000.0, 1000.0] + [level] * 12})
        for uid, level in recent.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _summing() -> Hierarchy:
    """X = a + b; Y = d + e (sold nothing lately); Z = c; Total = every series."""
    bottom = pd.DataFrame({"unique_id": list("abcde"), "g": list("XXZYY"), "item": list("abcde")})
    return Hierarchy.from_bottom(bottom, ["g/item"])


def test_driver_weights_are_mean_demand_of_the_last_12_periods():
    weights = driver_weights(_bottom_history())
    assert weights.to_dict() == {"a": 10.0, "b": 30.0, "c": 20.0, "d": 0.0, "e": 0.0}


def test_aggregate_promo_is_the_demand_weighted_share_on_promotion():
    weights = driver_weights(_bottom_history())
    plan = pd.DataFrame(
        {
            "unique_id": list("abcde"),
            "ds": pd.Timestamp("2024-03-01"),
            "promo": [1.0, 0.0, 0.0, 1.0, 0.0],
            "price": [2.0, 4.0, 3.0, 5.0, 7.0],
        }
    )
    out = aggregate_drivers(plan, _summing(), DRIVERS, weights).set_index("unique_id")
    assert out.loc["X", "promo"] == pytest.approx(10 / 40)  # a (10) of a + b (40) on promotion
    assert out.loc["Total", "promo"] == pytest.approx(10 / 60)  # d weighs 0
    assert out.loc["X", "price"] == pytest.approx((10 * 2 + 30 * 4) / 40)  # volume-weighted 3.5
    assert out.loc["Total", "price"] == pytest.approx((10 * 2 + 30 * 4 + 20 * 3) / 60)
    # a branch that sold nothing lately: its children count equally
    assert out.loc["Y", "promo"] == pytest.approx(0.5) and out.loc["Y", "price"] == pytest.approx(6.0)
    # bottom series keep their own values
    assert out.loc[list("abcde"), "promo"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert out.loc[list("abcde"), "price"].tolist() == [2.0, 4.0, 3.0, 5.0, 7.0]


def test_baseline_turns_flags_off_and_holds_price_at_its_last_value():
    plan = _plan(price=1.5, promo=1.0)
    base = baseline_future(plan, _history(), DRIVERS).set_index("unique_id")
    assert base["promo"].eq(0.0).all()
    assert base.loc["a", "price"].tolist() == [2.5] * 3 and base.loc["b", "price"].tolist() == [4.0] * 3
    assert plan["promo"].eq(1.0).all() and plan["price"].eq(1.5).all()  # input untouched


# -- driver effect -------------------------------------------------------------------------
def test_driver_effect_scales_statistical_models_and_their_bounds():
    wide = pd.DataFrame(
        {
            "unique_id": ["s"] * 5,
            "ds": pd.date_range("2024-01-01", periods=5, freq="MS"),
            "AutoETS": [100.0] * 5,
            "AutoETS-lo-80": [80.0] * 5,
            "AutoETS-hi-80": [120.0] * 5,
            "SeasonalNaive": [50.0] * 5,
            "LightGBM": [150.0, 1000.0, 10.0, 100.0, np.nan],
            "LightGBM|baseline": [100.0, 100.0, 100.0, 0.0, np.nan],
        }
    )
    before = wide.copy()
    out = engine.apply_driver_effect(wide, ["AutoETS", "SeasonalNaive"])
    # 1.5; 10 clipped to 5; 0.1 clipped to 0.2; no baseline demand and no LightGBM: 1
    ratio = np.array([1.5, 5.0, 0.2, 1.0, 1.0])
    assert engine.EFFECT_RANGE == (0.2, 5.0)
    assert np.allclose(out["AutoETS"], 100 * ratio)
    assert np.allclose(out["AutoETS-lo-80"], 80 * ratio)
    assert np.allclose(out["AutoETS-hi-80"], 120 * ratio)
    assert np.allclose(out["SeasonalNaive"], 50 * ratio)
    assert np.allclose(out["LightGBM"], wide["LightGBM"], equal_nan=True)  # its own forecast
    assert "LightGBM|baseline" not in out.columns
    pd.testing.assert_frame_equal(wide, before)
    # without a baseline (no drivers) nothing changes
    plain = wide.drop(columns="LightGBM|baseline")
    pd.testing.assert_frame_equal(engine.apply_driver_effect(plain, ["AutoETS"]), plain)


# -- one promotion month, end to end -------------------------------------------------------
N_SERIES, PERIODS, H = 30, 48, 6


@pytest.fixture(scope="module")
def promo_history() -> pd.DataFrame:
    """Flat demand lifted 60% in promotion months (about 15% of months)."""
    rng = np.random.default_rng(3)
    ds = pd.date_range("2020-01-01", periods=PERIODS, freq="MS")
    frames = []
    for i in range(N_SERIES):
        promo = (rng.random(PERIODS) < 0.15).astype(float)
        base = rng.uniform(50, 300)
        y = base * (1 + 0.6 * promo) + rng.normal(0, 0.03 * base, PERIODS)
        frames.append(pd.DataFrame({"unique_id": f"s{i:02d}", "ds": ds, "y": y.round(1), "promo": promo}))
    return pd.concat(frames, ignore_index=True)


def _futures(history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = history["unique_id"].unique()
    months = pd.date_range("2024-01-01", periods=H, freq="MS")
    none = pd.DataFrame({"unique_id": np.repeat(ids, H), "ds": np.tile(months, len(ids)), "promo": 0.0})
    sixth = none.assign(promo=np.where(none["ds"] == months[-1], 1.0, 0.0))
    return none, sixth


def _lift(plain: pd.DataFrame, promo: pd.DataFrame, column: str) -> pd.Series:
    """Total forecast under the promotion over the total without it, per month."""
    return promo.groupby("ds")[column].sum() / plain.groupby("ds")[column].sum()


@pytest.mark.parametrize("models", ["lgbm,ets", "auto"])
def test_a_promotion_in_month_6_lifts_month_6_only(promo_history, models):
    """The mlforecast #705 pitfall: a direct multi-step model reads only the first step's
    drivers; ours must see each step's. LightGBM and the delivered forecast both move."""
    config = ForecastConfig(horizon=H, models=models, windows=2, drivers=["promo"], n_jobs=1)
    fc = Forecaster(config).fit(promo_history)
    none, sixth = _futures(promo_history)
    plain, lifted = fc.predict(future=none), fc.predict(future=sixth)
    for frame_of, column in ((lambda r: r.candidates, "LightGBM"), (lambda r: r.forecast, "forecast")):
        lift = _lift(frame_of(plain), frame_of(lifted), column)
        assert lift.iloc[-1] > 1.15, (column, lift.tolist())  # demand was 60% higher on promotion
        assert np.allclose(lift.iloc[:-1], 1.0, atol=0.02), (column, lift.tolist())


def test_a_promotion_lifts_a_statistical_model_by_lightgbms_ratio(promo_history, monkeypatch):
    """A series served by ETS alone still feels the promotion: ETS times LightGBM's
    planned / baseline ratio, its interval around the lifted point."""
    real = engine.select_models

    def ets_for_all(*args, **kwargs):
        selection = real(*args, **kwargs)
        selection.per_series["members"] = [("AutoETS",)] * len(selection.per_series)
        selection.per_series["how"] = "mean"
        return selection

    monkeypatch.setattr(engine, "select_models", ets_for_all)
    config = ForecastConfig(horizon=H, models="lgbm,ets", windows=2, drivers=["promo"], n_jobs=1)
    fc = Forecaster(config).fit(promo_history)
    none, sixth = _futures(promo_history)
    plain, lifted = fc.predict(future=none), fc.predict(future=sixth)
    assert lifted.forecast["model"].eq("AutoETS").all()
    ratio = np.clip(lifted.candidates["LightGBM"] / plain.candidates["LightGBM"], *engine.EFFECT_RANGE)
    assert np.allclose(lifted.candidates["AutoETS"], plain.candidates["AutoETS"] * ratio)
    delivered = lifted.forecast["forecast"] / plain.forecast["forecast"]
    assert np.allclose(delivered, ratio)
    # the interval moves with the point; its width is the series' calibrated backtest error
    width = lifted.forecast["forecast-hi-95"] - lifted.forecast["forecast"]
    assert np.allclose(width, plain.forecast["forecast-hi-95"] - plain.forecast["forecast"])
    assert (width > 0).all()
    sixth_month = lifted.forecast["ds"] == "2024-06-01"
    assert delivered[sixth_month].mean() > 1.15 and np.allclose(delivered[~sixth_month], 1.0, atol=0.02)


# -- candidates ----------------------------------------------------------------------------
def test_arima_left_out_of_auto_from_season_12():
    for season in (12, 52):
        by_class = class_candidates(season)
        assert not any("arima" in models for models in by_class.values())
        assert by_class["smooth"] == ("ets", "theta", "ces", "snaive")
    for season in (4, 1):
        by_class = class_candidates(season)
        assert "arima" in by_class["smooth"] and "arima" in by_class["erratic"]
        assert by_class == CLASS_CANDIDATES
