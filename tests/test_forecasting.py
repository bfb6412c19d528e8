"""Forecasting engine: catalogue contract, backtest, selection, intervals, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import smooth_and_sporadic

import sopforecast as sf
from sopforecast.config import ForecastConfig
from sopforecast.errors import ConfigError, DataError
from sopforecast.forecasting import engine
from sopforecast.forecasting.forecaster import Forecaster
from sopforecast.forecasting.models import CATALOGUE, resolve_models

STAT_MODELS = [name for name, spec in CATALOGUE.items() if spec.kind == "stats" and name != "mstl"]


@pytest.mark.parametrize("model", STAT_MODELS)
def test_every_model_meets_the_forecast_contract(model):
    df = smooth_and_sporadic(n_smooth=2)
    out = sf.forecast(df, h=6, models=model, level=(80, 95), n_jobs=1)
    assert len(out) == 3 * 6
    assert list(out.columns) == [
        "unique_id",
        "ds",
        "forecast",
        "forecast-lo-80",
        "forecast-hi-80",
        "forecast-lo-95",
        "forecast-hi-95",
        "model",
    ]
    assert (out["forecast"] >= 0).all() and out["forecast"].notna().all()
    assert (out["forecast-lo-95"] <= out["forecast-lo-80"] + 1e-9).all()
    assert (out["forecast-lo-80"] <= out["forecast"] + 1e-9).all()
    assert (out["forecast"] <= out["forecast-hi-80"] + 1e-9).all()
    assert (out["forecast-hi-80"] <= out["forecast-hi-95"] + 1e-9).all()
    assert out["ds"].min() == pd.Timestamp("2024-01-01")
    assert out["model"].eq(CATALOGUE[model].alias).all()


def test_mstl_with_two_seasonalities_on_daily_data():
    ds = pd.date_range("2024-01-01", periods=140, freq="D")
    t = np.arange(140)
    y = 50 + 10 * np.sin(2 * np.pi * t / 7) + 5 * np.sin(2 * np.pi * t / 30.5)
    df = pd.DataFrame({"unique_id": "d", "ds": ds, "y": y})
    out = sf.forecast(df, h=14, freq="D", models="mstl", season_length=[7, 30], n_jobs=1)
    assert len(out) == 14 and out["model"].eq("MSTL").all()
    weekly = out["forecast"].to_numpy()
    assert abs(weekly[0] - weekly[7]) < abs(weekly.max() - weekly.min())  # weekly pattern kept


def test_auto_selects_per_class_and_reports_model():
    df = smooth_and_sporadic(n_smooth=4)
    result = Forecaster(ForecastConfig(horizon=6, windows=2, n_jobs=1)).fit(df).predict()
    models = result.forecast.groupby("unique_id")["model"].first()
    intermittent = {"CrostonOptimized", "CrostonSBA", "ADIDA", "IMAPA", "TSB", "HistoricAverage"}
    sporadic_members = set(
        models["sporadic"].replace("mean(", "").replace("median(", "").rstrip(")").split(",")
    )
    assert sporadic_members <= intermittent
    assert not any(m in intermittent for m in models.drop("sporadic"))
    scores = result.backtest.selection.scores
    assert {"best", "top2", "mean", "median", "AutoETS"} <= set(scores["strategy"])
    # the chosen strategy is the median of the candidates, or one with a lower error
    per_series = result.backtest.selection.per_series
    for cls, block in scores.groupby("demand_class"):
        chosen = per_series.loc[per_series["demand_class"] == cls, "strategy"].iloc[0]
        errors = block.set_index("strategy")["error"]
        assert chosen == "median" or errors[chosen] < errors["median"]


def test_one_window_offers_only_honest_strategies():
    """With one backtest window a per-series pick would be scored on the window it was
    picked from, so only class-wide strategies compete; the backtest holds every candidate,
    the final fit only the chosen members."""
    df = smooth_and_sporadic(n_smooth=6)
    config = ForecastConfig(horizon=6, windows=1, models="ets,theta,snaive", n_jobs=1)
    result = Forecaster(config).fit(df).predict()
    strategies = set(result.backtest.selection.scores["strategy"])
    assert {"class_top2", "mean", "median", "AutoETS"} <= strategies
    assert not strategies & {"best", "top2"}
    assert {"AutoETS", "DynamicOptimizedTheta", "SeasonalNaive"} <= set(result.backtest.cv.columns)
    chosen = result.backtest.selection.per_series
    used = {m for members in result.selection["members"] for m in members}
    fitted = {c for c in result.candidates.columns if c in {s.alias for s in CATALOGUE.values()}}
    assert fitted == used  # models no series uses are not fitted
    if chosen["strategy"].iloc[0] == "class_top2":
        class_err = result.backtest.selection.scores.set_index("strategy")["error"]
        best_two = class_err[["AutoETS", "DynamicOptimizedTheta", "SeasonalNaive"]].nsmallest(2)
        assert set(chosen["members"].iloc[0]) == set(best_two.index)


def test_backtest_metrics_per_model_and_auto():
    summary = sf.backtest(smooth_and_sporadic(n_smooth=4), h=6, models="ets,snaive", windows=2, n_jobs=1)
    assert set(summary["model"]) == {"AutoETS", "SeasonalNaive", "auto"}
    # the backtest scores point forecasts (intervals are built from its residuals afterwards)
    for col in ("mase", "rmsse", "smape", "wape", "bias"):
        assert col in summary.columns
    assert summary[["mase", "rmsse", "smape", "wape"]].notna().all().all()
    ets = summary.set_index("model").loc["AutoETS"]
    assert 0 < ets["mase"] < 5 and abs(ets["bias"]) < 0.2


def test_backtest_windows_and_step():
    df = smooth_and_sporadic(n_smooth=1)
    config = ForecastConfig(horizon=3, windows=2, step=2, models="naive", n_jobs=1)
    run = Forecaster(config).cross_validation(df, windows=4)
    assert run.forecast.empty  # the backtest alone: no final fit
    cutoffs = sorted(run.backtest.cv["cutoff"].unique())
    assert len(cutoffs) == 4
    assert cutoffs[-1] == pd.Timestamp("2023-09-01")  # the last origin leaves h=3 periods
    assert run.backtest.cv.groupby(["unique_id", "cutoff"]).size().eq(3).all()
    assert all((b - a).days in (59, 61, 62) for a, b in zip(cutoffs, cutoffs[1:], strict=False))


def test_short_history_gets_non_seasonal_path():
    df = smooth_and_sporadic(n_smooth=2)
    new = pd.DataFrame(
        {
            "unique_id": "launch",
            "ds": pd.date_range("2023-07-01", periods=6, freq="MS"),
            "y": [5.0, 7, 9, 8, 10, 11],
        }
    )
    result = Forecaster(ForecastConfig(horizon=4, models="ets", n_jobs=1)).fit(pd.concat([df, new])).predict()
    assert "launch" in result.short_history
    launch = result.forecast[result.forecast.unique_id == "launch"]
    assert len(launch) == 4 and launch["forecast"].between(4, 20).all()


def test_no_clip_allows_negative_lower_bounds():
    df = smooth_and_sporadic(n_smooth=1)
    df.loc[df.unique_id == "sporadic", "y"] = 0.0
    df.loc[df.unique_id == "sporadic", "y"] = np.r_[np.zeros(40), [5, 0, 0, 4, 0, 0, 6, 0]]
    clipped = sf.forecast(df, h=3, models="naive", n_jobs=1)
    raw = sf.forecast(df, h=3, models="naive", n_jobs=1, clip=False)
    assert (clipped["forecast-lo-95"] >= 0).all()
    assert (raw["forecast-lo-95"] < 0).any()


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match=r"unknown model\(s\) \['prophet'\]; valid names: auto, ets"):
        resolve_models("ets,prophet")


def test_bad_horizon_and_season_length():
    with pytest.raises(ConfigError, match="horizon must be a positive number of periods, got 0"):
        sf.forecast(smooth_and_sporadic(n_smooth=4), h=0)
    with pytest.raises(ConfigError, match="season length 120 does not fit the data"):
        sf.forecast(smooth_and_sporadic(n_smooth=4), h=3, models="snaive", season_length=120)


def test_too_little_history_for_backtest_windows():
    with pytest.raises(DataError, match="too little history for 10 backtest window"):
        sf.backtest(smooth_and_sporadic(n_smooth=4, periods=30), h=6, models="ets", windows=10)


def _promo_panel(n=24, periods=60, seed=1):
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2019-01-01", periods=periods, freq="MS")
    parts = []
    for i in range(n):
        promo = (rng.random(periods) < 0.15).astype(float)
        base = 100 * (1 + i / 10) * (1 + 0.3 * np.sin(np.arange(periods) * 2 * np.pi / 12))
        parts.append(
            pd.DataFrame(
                {
                    "unique_id": f"s{i}",
                    "ds": ds,
                    "y": base * (1 + 0.8 * promo) + rng.normal(0, 5, periods),
                    "promo": promo,
                    "family": "F1" if i % 2 else "F2",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_lgbm_uses_every_future_driver_step():
    """Fit once, forecast two promotion calendars: a promotion planned for month 6 lifts
    month 6 only (the recursive forecast reads every step's drivers)."""
    df = _promo_panel()
    future = pd.DataFrame(
        {
            "unique_id": np.repeat(df["unique_id"].unique(), 6),
            "ds": np.tile(pd.date_range("2024-01-01", periods=6, freq="MS"), 24),
            "promo": 0.0,
        }
    )
    config = ForecastConfig(horizon=6, models="lgbm", drivers=["promo"], n_jobs=1)
    fitted = Forecaster(config).fit(df)
    plain = fitted.predict(future=future).forecast
    promo = future.assign(promo=np.where(future["ds"] == "2024-06-01", 1.0, 0.0))
    lifted = fitted.predict(future=promo).forecast
    ratio = (lifted["forecast"] / plain["forecast"]).groupby(plain["ds"]).mean()
    assert ratio.loc["2024-06-01"] > 1.3  # the month-6 promotion reaches month 6
    assert ratio.drop(pd.Timestamp("2024-06-01")).between(0.95, 1.05).all()
    assert plain["model"].eq("LightGBM").all()
    assert (plain["forecast-lo-80"] <= plain["forecast"]).all()


def test_lgbm_without_future_drivers_is_a_clear_error():
    with pytest.raises(DataError, match=r"the drivers \['promo'\] need their future values for the 3"):
        sf.forecast(_promo_panel(n=4), h=3, models="lgbm", drivers=["promo"], n_jobs=1)


def _classes(n: int) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": [f"s{i}" for i in range(n)], "demand_class": "smooth"})


def test_auto_offers_lgbm_from_ml_min_series_on_short_seasons():
    """The rule: under auto LightGBM joins smooth and erratic classes from ml_min_series
    series when the season is shorter than 12 (quarterly, yearly); a model list decides by
    itself."""
    config = ForecastConfig(models="auto", freq="QS", ml_min_series=20)
    _, use_ml, per_class = engine.candidates(config, _classes(19))
    assert not use_ml and "LightGBM" not in per_class["smooth"]
    stats, use_ml, per_class = engine.candidates(config, _classes(20))
    assert use_ml
    assert per_class["smooth"][-1] == per_class["erratic"][-1] == "LightGBM"
    assert "LightGBM" not in per_class["intermittent"] and "LightGBM" not in per_class["lumpy"]
    assert "lgbm" not in stats and stats == ["arima", "ces", "ets", "snaive", "theta"]  # smooth only
    stats, use_ml, per_class = engine.candidates(ForecastConfig(models="ets,lgbm"), _classes(2))
    assert stats == ["ets"] and use_ml and per_class["lumpy"] == ["AutoETS", "LightGBM"]


def test_auto_on_monthly_data_runs_lgbm_only_for_drivers():
    """Monthly (season 12): neither ARIMA nor LightGBM is a candidate; LightGBM still runs
    when drivers are given, to carry their effect to the statistical models."""
    stats, use_ml, per_class = engine.candidates(ForecastConfig(models="auto"), _classes(20))
    assert not use_ml and "arima" not in stats and "LightGBM" not in per_class["smooth"]
    with_drivers = ForecastConfig(models="auto", drivers=["promo"])
    _, use_ml, per_class = engine.candidates(with_drivers, _classes(20))
    assert use_ml and "LightGBM" not in per_class["smooth"]


def test_auto_includes_lgbm_for_large_panels():
    df = _promo_panel(n=24).drop(columns=["promo"])
    config = ForecastConfig(horizon=6, windows=2, n_jobs=1, ml_min_series=20, season_length=4)
    result = Forecaster(config).fit(df).predict()
    assert "LightGBM" in result.backtest.cv.columns
    assert "LightGBM" in set(result.backtest.selection.scores["strategy"])


def test_lgbm_alone_gets_calibrated_intervals_from_the_backtest():
    df = _promo_panel(n=6).drop(columns=["promo"])
    fitted = Forecaster(ForecastConfig(horizon=6, windows=2, models="lgbm", n_jobs=1)).fit(df)
    assert fitted.backtest_ is not None  # backtested for its intervals though it is alone
    out = fitted.predict().forecast
    assert out["model"].eq("LightGBM").all()
    assert out[["forecast-lo-80", "forecast-hi-95"]].notna().all().all()
    assert (out["forecast-lo-80"] <= out["forecast"]).all() and (
        out["forecast"] <= out["forecast-hi-80"]
    ).all()
    # the half-width is the series' own mean absolute backtest error times the level's
    # quantile and growth at that step
    cv = fitted.backtest_.chosen_cv
    own = (cv["y"] - cv["forecast"].clip(lower=0)).abs().groupby(cv["unique_id"]).mean()
    errors = fitted.errors_
    assert np.allclose(errors.scale.reindex(own.index), own)
    first = out.groupby("unique_id").head(1).set_index("unique_id")
    half = first["forecast-hi-80"] - first["forecast"]
    expected = errors.quantile.loc["all", 80] * own[half.index] * errors.growth.loc["all", 1]
    assert np.allclose(half, expected)
    assert half.nunique() == len(half)  # each series its own width


def test_statistical_backtests_carry_parameters_forward(monkeypatch):
    """refit=False unless a model cannot carry its parameters (the Croston family) or the
    config asks for re-estimation at every origin."""
    from statsforecast import StatsForecast

    seen = []
    real = StatsForecast.cross_validation

    def spy(self, *args, **kwargs):
        seen.append(kwargs["refit"])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StatsForecast, "cross_validation", spy)
    df = smooth_and_sporadic(n_smooth=2)
    for models, refit, expected in (
        ("ets,theta", False, False),
        ("croston", False, True),
        ("ets", True, True),
    ):
        seen.clear()
        config = ForecastConfig(horizon=3, windows=2, models=models, refit=refit, n_jobs=1)
        Forecaster(config).cross_validation(df)
        assert seen and all(r is expected for r in seen), (models, seen)


def test_ces_is_re_estimated_at_every_backtest_origin_because_its_filter_can_diverge():
    """statsforecast's CES ``forward`` re-runs its filter with the first origin's parameters
    over the longer history; on the demo's Beverages total that filter diverges (2.6e12 at
    the second origin). CES is backtested with a re-fit at every origin; ETS still carries
    its parameters forward."""
    from sopforecast.data.datasets import generate_plan
    from sopforecast.forecasting.stats import StatsRun, stats_backtest

    history = generate_plan(n_series=500, periods=60, horizon=18, seed=0).history
    beverages = history[history["category"] == "Beverages"].groupby("ds", as_index=False)["y"].sum()
    beverages["unique_id"] = "Beverages"
    run = StatsRun(models=("ets", "ces"), freq="MS", season_length=12, n_jobs=1, refit=False)
    cv = stats_backtest(beverages[["unique_id", "ds", "y"]], 18, run, n_windows=2)
    refitted = stats_backtest(
        beverages[["unique_id", "ds", "y"]], 18, StatsRun(**{**run.__dict__, "refit": True}), n_windows=2
    )
    assert cv["CES"].abs().max() < 2 * beverages["y"].max()
    assert np.allclose(cv["CES"], refitted["CES"])
    last = cv["cutoff"] == cv["cutoff"].max()
    assert not np.allclose(cv.loc[last, "AutoETS"], refitted.loc[last, "AutoETS"])  # carried forward


def test_combination_intervals_are_conformal_and_cover(monkeypatch):
    """Combinations have no native intervals: conformal ones from backtest residuals, ordered,
    and on held-out data they cover near their nominal level."""
    rng = np.random.default_rng(11)
    periods, h = 60, 6
    ds = pd.date_range("2019-01-01", periods=periods, freq="MS")
    t = np.arange(periods)
    frames = []
    for i in range(40):
        base = rng.uniform(50, 200) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": base + rng.normal(0, 8, periods)}))
    df = pd.concat(frames, ignore_index=True)
    train, test = df[df["ds"] < ds[-h]], df[df["ds"] >= ds[-h]]
    # every series gets the median of the three (whatever the backtest preferred)
    members = ("AutoETS", "DynamicOptimizedTheta", "SeasonalNaive")
    real = engine.select_models

    def median_of_all(*args, **kwargs):
        selection = real(*args, **kwargs)
        n = len(selection.per_series)
        selection.per_series["members"] = [members] * n
        selection.per_series["how"] = "median"
        selection.per_series["strategy"] = "median"
        return selection

    monkeypatch.setattr(engine, "select_models", median_of_all)
    config = ForecastConfig(horizon=h, models="ets,theta,snaive", windows=3, n_jobs=1)
    out = Forecaster(config).fit(train).predict().forecast
    assert out["model"].eq("median(AutoETS,DynamicOptimizedTheta,SeasonalNaive)").all()
    assert (out["forecast-lo-95"] <= out["forecast-lo-80"]).all()
    assert (out["forecast-lo-80"] <= out["forecast"]).all() and (
        out["forecast"] <= out["forecast-hi-80"]
    ).all()
    joined = test.merge(out, on=["unique_id", "ds"])
    for level, low, high in ((80, 0.65, 0.95), (95, 0.85, 1.0)):
        inside = joined["y"].between(joined[f"forecast-lo-{level}"], joined[f"forecast-hi-{level}"]).mean()
        assert low <= inside <= high, (level, inside)
