"""Promotion-cleansed baselines: which drivers are flags (aggregates hold shares), the month
after a promotion as a LightGBM feature, the regular history, LightGBM's in-sample estimate
of the promotions' effect (uplift and dip), and statistical models fitted on the cleansed
history in the backtest (no window cleansed with what came after its origin) and the final
forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.config import ForecastConfig
from sopforecast.forecasting import engine
from sopforecast.forecasting.drivers import flag_drivers, previous_flags, regular_history
from sopforecast.forecasting.forecaster import Forecaster
from sopforecast.forecasting.ml import MLSettings, ml_fit, ml_fit_effect, ml_predict

UPLIFT, DIP, PERIODS, N = 0.6, 0.75, 60, 30


@pytest.fixture(scope="module")
def promoted() -> pd.DataFrame:
    """Flat demand, promotions in about 12% of months lifting it 60%, the month after a
    promotion 25% down; price discounted 20% on promotion. ``base`` is the demand without."""
    rng = np.random.default_rng(5)
    ds = pd.date_range("2020-01-01", periods=PERIODS, freq="MS")
    frames = []
    for i in range(N):
        promo = (rng.random(PERIODS) < 0.12).astype(float)
        after = np.r_[0.0, promo[:-1]] * (1 - promo)
        base = rng.uniform(80, 300)
        y = base * (1 + UPLIFT * promo) * np.where(after > 0, DIP, 1.0) * rng.normal(1, 0.02, PERIODS)
        price = np.where(promo > 0, 8.0, 10.0)
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": f"s{i:02d}",
                    "ds": ds,
                    "y": y.round(1),
                    "price": price,
                    "promo": promo,
                    "base": base,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_flags_are_0_1_drivers_and_aggregate_shares():
    frame = pd.DataFrame(
        {
            "promo": [0.0, 1.0, 0.0],
            "share": [0.0, 0.35, 1.0],  # an aggregate's demand-weighted share on promotion
            "summed": [0.0, 0.35, 1.0 + 1e-12],  # the same, 1 summed from fractions (the demo's Total)
            "discount": [0.1, 0.2, 0.3],  # within [0, 1] but never off or fully on
            "price": [2.0, 1.0, 0.0],
            "never": [0.0, 0.0, 0.0],
        }
    )
    assert flag_drivers(frame, list(frame.columns)) == ["promo", "share", "summed", "never"]


def test_previous_flags_shift_within_a_series_and_start_from_the_last_known():
    frame = pd.DataFrame(
        {
            "unique_id": ["b", "a", "a", "b", "a"],
            "ds": pd.to_datetime(["2024-02", "2024-03", "2024-01", "2024-01", "2024-02"]),
        }
    ).assign(promo=[0.0, 0.0, 1.0, 1.0, 0.0])
    out = previous_flags(frame, ["promo"]).set_index(["unique_id", "ds"]).sort_index()
    assert out["promo_prev"].tolist() == [0.0, 1.0, 0.0, 0.0, 1.0]
    last = pd.DataFrame({"promo": [1.0]}, index=pd.Index(["a"], name="unique_id"))
    out = previous_flags(frame, ["promo"], last).set_index(["unique_id", "ds"]).sort_index()
    assert out["promo_prev"].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_the_regular_history_has_no_promotion_and_the_regular_price():
    frame = pd.DataFrame(
        {
            "unique_id": ["a"] * 5,
            "ds": pd.date_range("2024-01-01", periods=5, freq="MS"),
            "price": [2.2, 1.8, 2.5, 2.0, 2.5],
            "promo": [1.0, 0.0, 0.0, 1.0, 0.0],
            "promo_prev": [0.0, 1.0, 0.0, 0.0, 1.0],
        }
    )
    out = regular_history(frame, ["price", "promo"], ["promo"])
    assert out["promo"].eq(0).all() and out["promo_prev"].eq(0).all()
    # promoted months take the last regular price (the first, before any, the next one)
    assert out["price"].tolist() == [1.8, 1.8, 2.5, 2.5, 2.5]


def test_cleanse_takes_each_period_from_the_earliest_window_that_trained_on_it():
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=4, freq="MS"), "y": 12.0})
    effects = pd.DataFrame(
        {
            "unique_id": "a",
            "ds": pd.to_datetime(["2024-02-01", "2024-02-01", "2024-03-01"]),
            "effect": [1.5, 1.2, 0.8],
            "cutoff": pd.to_datetime(["2024-03-01", "2024-02-01", "2024-03-01"]),
        }
    )
    out = engine.cleanse(df, effects)
    assert out["y"].tolist() == [12.0, 10.0, 15.0, 12.0]
    assert df["y"].eq(12.0).all()  # the input is left alone


def _settings(drivers=("price", "promo")) -> MLSettings:
    return MLSettings(freq="MS", drivers=list(drivers), lagged=["promo"], n_jobs=1)


def test_an_aggregates_promotion_share_evens_out_its_months_and_keeps_its_level(promoted):
    """A share of demand on promotion is above 0 in most months: its effects average 1, so
    the aggregate's cleansed history keeps its level; the bottom series' do not."""
    history = promoted.drop(columns="base")
    ids = sorted(history["unique_id"].unique())[:6]
    part = history[history["unique_id"].isin(ids)]
    total = part.groupby("ds").agg(y=("y", "sum"), price=("price", "mean"), promo=("promo", "mean"))
    aggregate = total.reset_index().assign(unique_id="agg")
    frame = pd.concat([history, aggregate], ignore_index=True)
    _, effect = ml_fit_effect(frame, _settings(), ["promo"])
    months = frame[frame["unique_id"] == "agg"][["ds"]]
    agg = months.merge(effect[effect["unique_id"] == "agg"], on="ds", how="left")["effect"].fillna(1.0)
    assert agg.mean() == pytest.approx(1.0, abs=0.02)
    assert agg.min() < 0.99 and agg.max() > 1.01  # its months are still evened out
    own = history[["unique_id", "ds"]].merge(effect, on=["unique_id", "ds"], how="left")["effect"].fillna(1.0)
    assert own.mean() > 1.02  # bottom series: the whole uplift comes out


def test_lightgbm_estimates_the_uplift_and_the_dip_and_nothing_else(promoted):
    history = promoted.drop(columns="base")
    fitted, effect = ml_fit_effect(history, _settings(), ["promo"])
    merged = history.merge(effect, on=["unique_id", "ds"], how="left").fillna({"effect": 1.0})
    after = merged.groupby("unique_id")["promo"].shift(1).fillna(0.0).gt(0) & merged["promo"].eq(0)
    on = merged["promo"].gt(0)
    assert merged.loc[on, "effect"].median() > 1.3  # true 1.6
    assert merged.loc[after, "effect"].median() < 0.92  # true 0.75
    assert merged.loc[~on & ~after, "effect"].eq(1.0).all()
    # fitted in two steps, LightGBM forecasts as ml_fit's does
    future = pd.DataFrame(
        {
            "unique_id": np.repeat(history["unique_id"].unique(), 3),
            "ds": np.tile(pd.date_range("2025-01-01", periods=3, freq="MS"), N),
            "price": 10.0,
            "promo": 0.0,
        }
    )
    pd.testing.assert_frame_equal(
        ml_predict(fitted, 3, _settings(), future),
        ml_predict(ml_fit(history, _settings()), 3, _settings(), future),
    )


def test_the_month_after_a_planned_promotion_dips(promoted):
    history = promoted.drop(columns="base")
    fitted = ml_fit(history, _settings())
    months = pd.date_range("2025-01-01", periods=4, freq="MS")
    ids = history["unique_id"].unique()
    plain = pd.DataFrame(
        {"unique_id": np.repeat(ids, 4), "ds": np.tile(months, N), "price": 10.0, "promo": 0.0}
    )
    second = plain.assign(
        promo=np.where(plain["ds"] == months[1], 1.0, 0.0),
        price=np.where(plain["ds"] == months[1], 8.0, 10.0),
    )
    none = ml_predict(fitted, 4, _settings(), plain).groupby("ds")["LightGBM"].sum()
    promo = ml_predict(fitted, 4, _settings(), second).groupby("ds")["LightGBM"].sum()
    lift = (promo / none).to_numpy()
    assert lift[1] > 1.3 and lift[2] < 0.92, lift


def _error_to_base(history: pd.DataFrame, cleanse: bool, model: str, alias: str, monkeypatch) -> float:
    real = engine.select_models

    def one_model(*args, **kwargs):  # every series served by the statistical model alone
        selection = real(*args, **kwargs)
        selection.per_series["members"] = [(alias,)] * len(selection.per_series)
        selection.per_series["how"] = "mean"
        return selection

    monkeypatch.setattr(engine, "select_models", one_model)
    config = ForecastConfig(
        horizon=6,
        models=["lgbm", model],
        windows=2,
        drivers=["price", "promo"],
        n_jobs=1,
        cleanse_promotions=cleanse,
        future_fill="zero",
    )
    fc = Forecaster(config).fit(history.drop(columns="base"))
    run = fc.predict()  # no promotion planned: the baseline
    base = history.groupby("unique_id")["base"].first()
    cand = run.candidates
    # the first month may dip after a promotion in the last month of history: months 2 on
    cand = cand[cand["ds"] > cand["ds"].min()]
    return float((cand[alias] / cand["unique_id"].map(base) - 1).abs().mean())


@pytest.mark.parametrize(("model", "alias"), [("snaive", "SeasonalNaive"), ("ets", "AutoETS")])
def test_statistical_models_forecast_the_baseline_once_cleansed(promoted, model, alias, monkeypatch):
    raw = _error_to_base(promoted, False, model, alias, monkeypatch)
    clean = _error_to_base(promoted, True, model, alias, monkeypatch)
    assert clean < 0.6 * raw, (raw, clean)
    assert clean < 0.06


def test_the_backtest_scores_against_what_was_sold(promoted):
    history = promoted.drop(columns="base")
    config = ForecastConfig(
        horizon=6, models=["lgbm", "snaive"], windows=2, drivers=["price", "promo"], n_jobs=1
    )
    result = engine.run_backtest(history, config)
    sold = history.set_index(["unique_id", "ds"])["y"]
    keys = pd.MultiIndex.from_frame(result.cv[["unique_id", "ds"]])
    assert np.array_equal(result.cv["y"].to_numpy(), sold.reindex(keys).to_numpy())
    # a seasonal naive on cleansed history misses promotions less than on raw history
    off = engine.run_backtest(history, config.model_copy(update={"cleanse_promotions": False}))
    wape = lambda r: (r.cv["SeasonalNaive"] - r.cv["y"]).abs().sum() / r.cv["y"].sum()  # noqa: E731
    assert wape(result) < wape(off)
