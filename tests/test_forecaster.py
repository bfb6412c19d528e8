"""The one entry point: Forecaster.fit / predict / cross_validation on flat and hierarchical
data, fit once and predict many times without re-fitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import smooth_and_sporadic

from sopforecast.config import DataConfig, ForecastConfig
from sopforecast.data.datasets import generate_demand
from sopforecast.data.schema import validate
from sopforecast.errors import ConfigError, NotFittedError
from sopforecast.forecasting.forecaster import Forecaster, ForecastRun, stored_horizon
from sopforecast.forecasting.reconcile import coherence_gap

BOUNDS = ["forecast-lo-80", "forecast-hi-80", "forecast-lo-95", "forecast-hi-95"]


def _config(**kw) -> ForecastConfig:
    return ForecastConfig(**{"horizon": 4, "windows": 2, "n_jobs": 1, **kw})


@pytest.mark.parametrize("models", ["ets", "croston", "lgbm", "ets,theta,snaive", "auto"])
def test_forecast_contract(models):
    df = smooth_and_sporadic()
    run = Forecaster(_config(models=models)).fit(df).predict()
    out = run.forecast
    assert isinstance(run, ForecastRun)
    assert list(out.columns) == ["unique_id", "ds", "forecast", *BOUNDS, "model"]
    assert out.groupby("unique_id").size().to_dict() == {uid: 4 for uid in df["unique_id"].unique()}
    assert (out.groupby("unique_id")["ds"].min() == pd.Timestamp("2024-01-01")).all()
    values = out[["forecast", *BOUNDS]].to_numpy(dtype=float)
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    assert (out["forecast-lo-95"] <= out["forecast-lo-80"] + 1e-9).all()
    assert (out["forecast-lo-80"] <= out["forecast"] + 1e-9).all()
    assert (out["forecast"] <= out["forecast-hi-80"] + 1e-9).all()
    assert (out["forecast-hi-80"] <= out["forecast-hi-95"] + 1e-9).all()
    # the model column names what each series got, as the selection says
    label = out.groupby("unique_id")["model"].first()
    members = run.selection.set_index("unique_id")["members"]
    for uid, chosen in members.items():
        assert all(m in label[uid] for m in chosen)


@pytest.fixture(scope="module")
def fitted() -> Forecaster:
    """ETS, Croston and LightGBM on the small panel: statistical and machine-learning paths."""
    return Forecaster(_config(models="ets,croston,lgbm")).fit(smooth_and_sporadic())


def test_fit_returns_self_with_fitted_attributes(fitted):
    assert isinstance(fitted, Forecaster)
    assert fitted.panel_.hierarchy is None and fitted.panel_.tags is None  # flat data: one level
    assert set(fitted.selection_["unique_id"]) == {"smooth0", "smooth1", "smooth2", "sporadic"}
    assert fitted.backtest_ is not None and fitted.backtest_.cv["cutoff"].nunique() == 2
    # statistical forecasts are stored for the longest horizon predict may ask for
    assert stored_horizon(fitted.config) == 36
    if fitted.stats_wide_ is not None:
        assert fitted.stats_wide_.groupby("unique_id").size().eq(36).all()


def test_stored_horizon_is_36_months_or_the_horizon():
    assert stored_horizon(ForecastConfig(horizon=4)) == 36
    assert stored_horizon(ForecastConfig(horizon=36)) == 36
    assert stored_horizon(ForecastConfig(horizon=10, freq="W-MON")) == 10
    assert stored_horizon(ForecastConfig(horizon=8, freq="QS")) == 8


def test_predict_does_not_refit(fitted, monkeypatch):
    from mlforecast import MLForecast
    from statsforecast import StatsForecast

    def refuse(*args, **kwargs):
        raise AssertionError("predict fitted a model")

    for method in ("forecast", "fit", "cross_validation"):
        monkeypatch.setattr(StatsForecast, method, refuse)
    monkeypatch.setattr(MLForecast, "fit", refuse)
    short = fitted.predict().forecast
    longer = fitted.predict(h=6).forecast
    assert short.groupby("unique_id").size().eq(4).all()
    assert longer.groupby("unique_id").size().eq(6).all()
    # the first four periods of a longer forecast are the short forecast, bounds included
    head = longer.groupby("unique_id").head(4).reset_index(drop=True)
    pd.testing.assert_frame_equal(head, short)
    again = fitted.predict().forecast
    pd.testing.assert_frame_equal(again, short)


def test_predict_outside_the_stored_horizon_is_a_config_error(fitted):
    with pytest.raises(ConfigError, match=r"horizon 37 is outside 1\.\.36") as err:
        fitted.predict(h=37)
    assert err.value.setting == "horizon"
    with pytest.raises(ConfigError, match="horizon 0 is outside"):
        fitted.predict(h=0)


def test_predict_before_fit_is_not_fitted_error():
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(history\) first"):
        Forecaster(_config()).predict()


def test_timings_per_stage(fitted):
    run = fitted.predict()
    assert {"prepare", "backtest", "fit", "predict", "reconcile"} <= set(run.timings)
    assert all(isinstance(v, float) and v >= 0 for v in run.timings.values())
    # fit's stages are recorded once; predict adds its own
    assert run.timings["fit"] == fitted.timings_["fit"]


def test_single_model_with_native_intervals_skips_the_backtest():
    fc = Forecaster(_config(models="ets")).fit(smooth_and_sporadic(n_smooth=2))
    run = fc.predict()
    assert fc.backtest_ is None and "backtest" not in run.timings
    assert run.forecast["model"].eq("AutoETS").all()
    assert run.forecast[BOUNDS].notna().all().all()  # ETS's own intervals
    with pytest.raises(ConfigError, match="no backtest was run"):
        _ = run.metrics


def test_cross_validation_scores_every_model_without_fitting():
    run = Forecaster(_config(models="ets,snaive")).cross_validation(smooth_and_sporadic(), windows=3)
    assert run.forecast.empty
    assert run.backtest.cv["cutoff"].nunique() == 3
    assert set(run.metrics["model"]) == {"AutoETS", "SeasonalNaive", "auto"}
    assert run.metrics[["mase", "smape", "wape"]].notna().all().all()
    assert {"prepare", "backtest"} <= set(run.timings)


HIERARCHY = ["category/family/sku", "region/channel"]


@pytest.fixture(scope="module")
def hierarchy_history() -> pd.DataFrame:
    raw = generate_demand(n_series=8, periods=48, seed=0)
    return validate(raw, DataConfig(hierarchy=HIERARCHY, drivers=["price", "promo"])).frame


def test_hierarchy_is_a_setting(hierarchy_history):
    """The same calls with a hierarchy in the config: every level forecast, reconciled
    (coherent), scored per level in the backtest."""
    history = hierarchy_history
    config = _config(models="ets,naive", hierarchy=HIERARCHY, reconcile="mint_shrink")
    fc = Forecaster(config).fit(history)
    run = fc.predict()
    out = run.forecast
    S, tags = fc.panel_.hierarchy, fc.panel_.tags
    assert S.S.shape[1] == history["unique_id"].nunique() == 8
    assert out["unique_id"].nunique() == len(S)
    assert out.groupby("unique_id").size().eq(4).all()
    assert coherence_gap(out, S, "forecast") < 1e-6
    assert set(out["level"]) == set(tags)
    assert run.bottom_level == "category/family/sku/region/channel"
    # one row per level (and method) of the backtest accuracy, top level first
    acc = run.accuracy
    assert set(acc["level"]) == set(tags)
    assert not acc.duplicated(["level", "method"]).any()
    assert acc["level"].iloc[0] == "Total"
    assert acc.loc[acc["method"] == "base", "level"].nunique() == len(tags)
    # the total is the sum of the bottom series, period by period
    total = out[out["unique_id"] == "Total"].set_index("ds")["forecast"]
    bottom = out[out["level"] == run.bottom_level].groupby("ds")["forecast"].sum()
    assert np.allclose(total, bottom)


def test_hierarchy_with_drivers_from_key_columns(hierarchy_history):
    """Drivers in a hierarchy: the plan names bottom series by their key columns, aggregates
    get aggregated drivers, the forecast stays coherent."""
    history = hierarchy_history
    keys = ["category", "family", "sku", "region", "channel"]
    last = history.sort_values("ds").groupby("unique_id").tail(1)
    months = pd.date_range(history["ds"].max() + pd.offsets.MonthBegin(), periods=4, freq="MS")
    future = last[keys + ["price"]].merge(pd.DataFrame({"ds": months}), how="cross").assign(promo=0.0)
    config = _config(
        models="ets,lgbm", hierarchy=HIERARCHY, drivers=["price", "promo"], reconcile="bottom_up"
    )
    fc = Forecaster(config).fit(history)
    out = fc.predict(future=future).forecast
    assert coherence_gap(out, fc.panel_.hierarchy, "forecast") < 1e-6
    assert out.groupby("unique_id").size().eq(4).all()
    assert np.isfinite(out[["forecast", *BOUNDS]].to_numpy(dtype=float)).all()


def test_every_series_gets_a_forecast_when_too_short_for_lightgbm():
    rng = np.random.default_rng(0)
    long_ = pd.DataFrame(
        {
            "unique_id": "long",
            "ds": pd.date_range("2020-01-01", periods=48, freq="MS"),
            "y": rng.normal(50, 3, 48),
        }
    )
    new = pd.DataFrame(
        {
            "unique_id": "new",
            "ds": pd.date_range("2023-03-01", periods=10, freq="MS"),
            "y": rng.normal(20, 3, 10),
        }
    )
    out = Forecaster(_config(models="lgbm", horizon=3)).fit(pd.concat([long_, new])).predict().forecast
    assert out.groupby("unique_id").size().to_dict() == {"long": 3, "new": 3}


def test_cross_validation_refuses_zero_windows():
    with pytest.raises(ConfigError, match="windows"):
        Forecaster(_config(models="naive")).cross_validation(smooth_and_sporadic(n_smooth=1), windows=0)
