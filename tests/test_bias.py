"""The bias correction's rules (sopforecast.forecasting.bias) and the scoring of aggregates on
the items known at each origin (hierarchical.known_demand): a lean seen in every window is
taken out, one that changes sign is left alone, small levels borrow from the pool, factors
stay in range; the final forecast takes the factors and a reloaded model keeps them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sopforecast as sf
from sopforecast.forecasting.bias import FACTOR_RANGE, apply_factors, cross_fitted, fit_factors
from sopforecast.forecasting.hierarchical import build_panel, known_demand
from sopforecast.forecasting.state import load_state, save_state


def _backtest(leans: dict[str, tuple[float, ...]], series: dict[str, int], h: int = 6) -> pd.DataFrame:
    """A backtest where, per level, window ``w``'s forecast is ``y * (1 + lean_w * step / h)``."""
    rows = []
    for level, window_leans in leans.items():
        for s in range(series[level]):
            for w, lean in enumerate(window_leans):
                cutoff = pd.Timestamp("2024-01-01") + pd.DateOffset(months=6 * w)
                for step in range(1, h + 1):
                    y = 100.0 + 10 * s
                    rows.append(
                        {
                            "unique_id": f"{level}-{s}",
                            "cutoff": cutoff,
                            "ds": cutoff + pd.DateOffset(months=step),
                            "y": y,
                            "forecast": y * (1 + lean * step / h),
                        }
                    )
    frame = pd.DataFrame(rows)
    ids = pd.Index(frame["unique_id"].unique())
    levels = pd.Series(ids.str.split("-").str[0], index=ids)
    return frame, levels


def _bias(frame: pd.DataFrame, column: str = "forecast") -> float:
    return float((frame[column] - frame["y"]).sum() / frame["y"].sum())


def test_a_lean_in_every_window_is_taken_out_and_grows_with_the_step():
    frame, levels = _backtest({"top": (-0.10, -0.12, -0.08)}, {"top": 40})
    factors = fit_factors(frame, levels)
    row = factors.summary().iloc[0]
    assert row["applied"] and row["same_sign"]
    assert row["bias"] == pytest.approx(_bias(frame))
    assert 1.0 < row["factor_first"] < row["factor_last"]
    corrected = apply_factors(frame, factors, levels, ["forecast"])
    assert abs(_bias(corrected)) < 0.01 < abs(_bias(frame))
    # cross-fitted: each window corrected by the others' lean, still much less biased
    assert abs(_bias(cross_fitted(frame, levels))) < 0.2 * abs(_bias(frame))


def test_a_lean_that_changes_sign_between_windows_is_left_alone():
    frame, levels = _backtest({"mid": (-0.10, 0.08)}, {"mid": 30})
    factors = fit_factors(frame, levels)
    assert not factors.summary().iloc[0]["applied"]
    pd.testing.assert_frame_equal(apply_factors(frame, factors, levels, ["forecast"]), frame)
    pd.testing.assert_frame_equal(cross_fitted(frame, levels), frame)


def test_a_small_level_borrows_from_the_pool():
    frame, levels = _backtest({"Total": (-0.30, -0.30), "sku": (-0.05, -0.05)}, {"Total": 1, "sku": 200})
    table = fit_factors(frame, levels).summary().set_index("level")
    alone = fit_factors(frame[levels.reindex(frame["unique_id"]).to_numpy() == "Total"], levels)
    own = alone.summary().set_index("level").loc["Total", "factor_last"]
    # the Total's 2 series-windows weigh 2 / 12 against the pool, dominated by the SKUs
    assert table.loc["sku", "factor_last"] < table.loc["Total", "factor_last"] < own


def test_factors_stay_in_range():
    frame, levels = _backtest({"top": (-0.9, -0.9)}, {"top": 20})
    corrected = apply_factors(frame, fit_factors(frame, levels), levels, ["forecast"])
    assert (corrected["forecast"] / frame["forecast"]).max() == pytest.approx(FACTOR_RANGE[1])


def test_one_window_is_not_cross_fitted():
    frame, levels = _backtest({"top": (-0.2,)}, {"top": 5})
    pd.testing.assert_frame_equal(cross_fitted(frame, levels), frame)


def test_aggregates_are_scored_on_the_items_known_at_the_origin():
    """An item launched after the origin is in no forecast made then: its demand leaves every
    aggregate's actuals of that window, and stays in a later window's that knew it."""
    months = pd.date_range("2021-01-01", periods=36, freq="MS")
    old = pd.DataFrame({"g": "A", "item": "old", "ds": months, "y": 10.0})
    new = pd.DataFrame({"g": "A", "item": "new", "ds": months[30:], "y": 5.0})
    history = pd.concat([old, new], ignore_index=True).assign(unique_id=lambda f: f["g"] + "/" + f["item"])
    config = sf.ForecastConfig(horizon=3, hierarchy=["g/item"])
    panel = build_panel(history, config)
    rows = []
    for cutoff in (months[29], months[32]):
        for uid in panel.hierarchy.ids:
            for step in (1, 2, 3):
                ds = cutoff + pd.DateOffset(months=step)
                actual = panel.Y.loc[(panel.Y["unique_id"] == uid) & (panel.Y["ds"] == ds), "y"]
                rows.append(
                    {"unique_id": uid, "cutoff": cutoff, "ds": ds, "y": float(actual.sum()), "forecast": 1.0}
                )
    backtest = pd.DataFrame(rows)
    scored = known_demand(backtest, panel)
    first, later = scored["cutoff"] == months[29], scored["cutoff"] == months[32]
    for uid in ("Total", "A"):
        assert (scored.loc[first & (scored["unique_id"] == uid), "y"] == 10.0).all()
        assert (scored.loc[later & (scored["unique_id"] == uid), "y"] == 15.0).all()
    assert (scored.loc[scored["unique_id"] == "A/old", "y"] == 10.0).all()
    # forecasts untouched
    pd.testing.assert_series_equal(scored["forecast"], backtest["forecast"])


def _growing(n: int = 12, periods: int = 54, seed: int = 0) -> pd.DataFrame:
    """Series on a steady 2% a month growth: damped and seasonal-naive candidates lag it."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2020-01-01", periods=periods, freq="MS")
    frames = []
    for i in range(n):
        level = rng.uniform(50, 200)
        season = 1 + 0.2 * np.sin(2 * np.pi * (np.arange(periods) + i) / 12)
        y = level * season * np.exp(0.02 * np.arange(periods)) * rng.normal(1, 0.03, periods)
        frames.append(pd.DataFrame({"g": f"G{i % 3}", "item": f"I{i}", "ds": months, "y": y.round(1)}))
    history = pd.concat(frames, ignore_index=True)
    return history.assign(unique_id=history["g"] + "/" + history["item"])


@pytest.fixture(scope="module")
def growing_fits(tmp_path_factory):
    history = _growing()
    base = {"horizon": 6, "windows": 3, "models": ["snaive", "ets"], "hierarchy": ["g/item"], "n_jobs": 1}
    on = sf.Forecaster(sf.ForecastConfig(**base, bias_correction=True)).fit(history)
    off = sf.Forecaster(sf.ForecastConfig(**base, bias_correction=False)).fit(history)
    folder = save_state(on, tmp_path_factory.mktemp("bias") / "state")
    return history, on, off, load_state(folder)


def test_the_final_forecast_takes_the_factors_and_a_reloaded_model_keeps_them(growing_fits):
    _, on, off, loaded = growing_fits
    table = on.bias_.summary().set_index("level")
    assert table.loc["Total", "applied"] and table.loc["Total", "bias"] < 0
    assert off.bias_ is None
    up, flat = on.predict().forecast, off.predict().forecast
    total = lambda f: f.loc[f["unique_id"] == "Total", "forecast"].sum()  # noqa: E731
    assert total(up) > total(flat)
    # the backtest the accuracy comes from is cross-fitted and leans less
    bias = lambda fc: fc.accuracy_.query("level == 'Total'")["bias"].iloc[-1]  # noqa: E731
    assert abs(bias(on)) < abs(bias(off))
    pd.testing.assert_frame_equal(loaded.predict().forecast, up, check_exact=True)
