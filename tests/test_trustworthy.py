"""Outputs a planner can trust: no negative demand, coherent levels, discontinued items at
zero, and intervals calibrated per level (the rules, then the delivered forecast)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.config import ForecastConfig
from sopforecast.forecasting.forecaster import Forecaster
from sopforecast.forecasting.hierarchical import discontinued
from sopforecast.forecasting.intervals import error_profile, interval_bounds
from sopforecast.forecasting.reconcile import aggregate_hierarchy, coherence_gap, nonnegative_coherent

# -- non-negative and coherent -------------------------------------------------------------


def _tiny_hierarchy():
    ds = pd.date_range("2024-01-01", periods=3, freq="MS")
    bottom = pd.DataFrame(
        [(c, s, d, 1.0) for c, skus in {"A": ["a1", "a2"], "B": ["b1"]}.items() for s in skus for d in ds],
        columns=["cat", "sku", "ds", "y"],
    )
    bottom["unique_id"] = bottom["cat"] + "/" + bottom["sku"]
    return aggregate_hierarchy(bottom, ["cat/sku"])


def test_nonnegative_coherent_clips_the_bottom_and_resums_every_aggregate():
    Y, S, tags = _tiny_hierarchy()
    values = {"A/a1": [5.0, -2.0, 1.0], "A/a2": [-3.0, 4.0, 2.0], "B/b1": [1.0, 1.0, -1.0]}
    ds = sorted(Y["ds"].unique())
    frame = pd.DataFrame(
        [(uid, d, v) for uid, vs in values.items() for d, v in zip(ds, vs, strict=True)],
        columns=["unique_id", "ds", "forecast"],
    )
    # aggregates reconciled to something negative and incoherent on purpose
    for uid in ("A", "B", "Total"):
        frame = pd.concat([frame, pd.DataFrame({"unique_id": uid, "ds": ds, "forecast": -7.0})])
    out = nonnegative_coherent(frame.reset_index(drop=True), S, ["forecast"], zero=["B/b1"])
    got = out.set_index(["unique_id", "ds"])["forecast"].unstack("ds")
    assert got.loc["A/a1"].tolist() == [5.0, 0.0, 1.0]
    assert got.loc["A/a2"].tolist() == [0.0, 4.0, 2.0]
    assert got.loc["B/b1"].tolist() == [0.0, 0.0, 0.0]  # discontinued
    assert got.loc["A"].tolist() == [5.0, 4.0, 3.0]
    assert got.loc["Total"].tolist() == [5.0, 4.0, 3.0]
    assert coherence_gap(out, S, "forecast") == 0.0
    assert len(out) == len(frame)  # row order and count kept


# -- discontinued --------------------------------------------------------------------------


def _series(uid: str, values) -> pd.DataFrame:
    return pd.DataFrame(
        {"unique_id": uid, "ds": pd.date_range("2022-01-01", periods=len(values), freq="MS"), "y": values}
    )


def test_discontinued_is_a_stop_longer_than_any_gap_before():
    history = pd.concat(
        [
            _series("stopped", [5] * 30 + [0] * 6),
            _series("recent_gap", [5] * 32 + [0] * 4),  # 4 quiet months: not yet
            _series("seasonal", ([0] * 6 + [9] * 6) * 2 + [0] * 6 + [9] * 2 + [0] * 4),  # off season
            _series("intermittent", [3, 0, 0, 0, 0, 0, 0, 0, 0, 4] * 3 + [0] * 6),  # gaps of 8 before
            _series("never_sold", [0] * 36),
            _series("selling", [5] * 36),
        ]
    )
    assert discontinued(history, 6) == ["stopped"]
    assert discontinued(history, 3) == ["recent_gap", "stopped"]
    assert discontinued(history, None) == []
    assert "intermittent" in discontinued(
        pd.concat([history, _series("intermittent", [0] * 3)]).assign(
            ds=lambda f: (
                f.groupby("unique_id")
                .cumcount()
                .map(lambda i: pd.Timestamp("2022-01-01") + pd.DateOffset(months=i))
            )
        ),
        6,
    )


# -- intervals calibrated per level ---------------------------------------------------------


def _backtest(sigmas: dict[str, float], levels: dict[str, str], windows=3, steps=12, seed=0) -> pd.DataFrame:
    """Gaussian backtest errors of known size per series, growing with the horizon."""
    rng = np.random.default_rng(seed)
    rows = []
    for uid, sigma in sigmas.items():
        for w in range(windows):
            cutoff = pd.Timestamp("2020-01-01") + pd.DateOffset(months=12 * w)
            ds = pd.date_range(cutoff + pd.DateOffset(months=1), periods=steps, freq="MS")
            growth = np.sqrt(np.arange(1, steps + 1))
            e = rng.normal(0, sigma * growth)
            rows.append(
                pd.DataFrame(
                    {"unique_id": uid, "cutoff": cutoff, "ds": ds, "y": 1000 + e, "forecast": 1000.0}
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_each_series_gets_its_own_width_and_the_growth_is_non_decreasing():
    sigmas = {"Total": 10.0, **{f"sku{i}": 40.0 for i in range(30)}}
    levels = pd.Series({uid: ("Total" if uid == "Total" else "sku") for uid in sigmas})
    profile = error_profile(_backtest(sigmas, levels), "forecast", levels, [80, 95])
    for level in ("Total", "sku"):
        assert (np.diff(profile.growth.loc[level].to_numpy()) >= -1e-12).all()
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    point = pd.DataFrame(
        {"unique_id": np.repeat(list(sigmas), 12), "ds": np.tile(months, len(sigmas)), "forecast": 1000.0}
    )
    bounds = interval_bounds(point, profile, levels, [80, 95], demand=pd.Series(1000.0, index=list(sigmas)))
    width = (bounds["forecast-hi-80"] - bounds["forecast-lo-80"]).to_numpy().reshape(len(sigmas), 12)
    total, sku = width[0], width[1:].mean(axis=0)
    # a smooth total is not given the noisy SKUs' width (4 times its error here)
    assert 2.5 < sku.mean() / total.mean() < 6
    assert total[-1] > total[0] and sku[-1] > sku[0]  # wider further out
    assert (bounds["forecast-hi-95"] >= bounds["forecast-hi-80"]).all()


def test_intervals_cover_new_errors_at_their_nominal_rate():
    sigmas = {f"s{i}": float(s) for i, s in enumerate(np.linspace(5, 50, 60))}
    levels = pd.Series("bottom", index=list(sigmas))
    profile = error_profile(_backtest(sigmas, levels, seed=1), "forecast", levels, [80, 95])
    future = _backtest(sigmas, levels, windows=1, seed=2)  # errors not seen in calibration
    point = future[["unique_id", "ds"]].assign(forecast=1000.0)
    bounds = interval_bounds(point, profile, levels, [80, 95], demand=pd.Series(1000.0, index=list(sigmas)))
    y = future["y"].to_numpy()
    for lv in (80, 95):
        covered = ((y >= bounds[f"forecast-lo-{lv}"]) & (y <= bounds[f"forecast-hi-{lv}"])).mean()
        assert abs(covered - lv / 100) < 0.06, (lv, covered)


def test_series_that_end_at_different_dates_are_calibrated_on_their_own_windows():
    """Competition data (M3) and delisted items: every series has backtest windows of its
    own dates. Cross-fitting counts each series' windows, so no score is lost; with one
    window per series the scores are in-sample, not missing (no interval at all before)."""
    sigmas = {f"s{i}": float(s) for i, s in enumerate(np.linspace(5, 50, 60))}
    levels = pd.Series("bottom", index=list(sigmas))
    for windows in (1, 2):
        backtest = _backtest(sigmas, levels, windows=windows, seed=3)
        # shift each series' calendar: no two series share a cutoff
        shift = backtest["unique_id"].str[1:].astype(int).map(lambda i: pd.DateOffset(months=i))
        backtest["cutoff"] = [c + o for c, o in zip(backtest["cutoff"], shift, strict=True)]
        profile = error_profile(backtest, "forecast", levels, [80, 95])
        assert profile.windows == windows
        assert np.isfinite(profile.quantile.to_numpy()).all()
        aligned = error_profile(
            _backtest(sigmas, levels, windows=windows, seed=3), "forecast", levels, [80, 95]
        )
        pd.testing.assert_frame_equal(profile.quantile, aligned.quantile)


def test_a_level_of_few_series_takes_the_interpolated_conformal_quantile_not_its_largest_score():
    # 4 series x 2 windows = 8 series-windows, one step each: the cross-fitted scores are each
    # window's error over the other window's, r and 1/r per series
    ratios = np.array([1.2, 1.5, 2.0, 3.0])
    rows = [
        {
            "unique_id": f"t{i}",
            "cutoff": cutoff,
            "ds": cutoff + pd.DateOffset(months=1),
            "forecast": 1000.0,
            "y": y,
        }
        for i, r in enumerate(ratios)
        for cutoff, y in ((pd.Timestamp("2020-01-01"), 1000 + 10 * r), (pd.Timestamp("2021-01-01"), 990.0))
    ]
    profile = error_profile(pd.DataFrame(rows), "forecast", None, [80])
    scores = np.sort(np.concatenate([ratios, 1 / ratios]))
    # the position (m + 1) * 0.8 / m = 0.9 for m = 8: expected coverage 80%; rounding it up to
    # a whole score would take the largest one (3.0) and cover 8 / 9 of new errors on average
    assert profile.quantile[80].iloc[0] == pytest.approx(np.quantile(scores, 0.9))
    assert profile.quantile[80].iloc[0] < scores.max() - 0.5


def _one_series_windows(errors: list[np.ndarray]) -> pd.DataFrame:
    """A backtest of one series (a Total): one window per array of errors, a step per error."""
    rows = []
    for w, errs in enumerate(errors):
        cutoff = pd.Timestamp("2020-01-01") + pd.DateOffset(months=24 * w)
        for step, e in enumerate(errs, start=1):
            rows.append(
                {
                    "unique_id": "Total",
                    "cutoff": cutoff,
                    "ds": cutoff + pd.DateOffset(months=step),
                    "forecast": 1000.0,
                    "y": 1000.0 + e,
                }
            )
    return pd.DataFrame(rows)


def test_a_level_of_three_series_windows_takes_a_held_out_quantile_not_its_worst_error():
    # one series, 3 windows of 24 months whose errors scatter alike: for 3 series-windows the
    # conformal position (4 * 0.8 / 3) is beyond the largest score; the held-out rule finds
    # that each window's errors are covered by the other two windows' 80% quantile
    rng = np.random.default_rng(1)
    backtest = _one_series_windows([rng.normal(0, 10, 24) for _ in range(3)])
    profile = error_profile(backtest, "forecast", None, [80, 95])
    a = (backtest["y"] - backtest["forecast"]).abs()
    worst = a.max() / a.mean()  # about the largest score (scales differ a little per window)
    assert profile.quantile[80].iloc[0] < 0.7 * worst
    assert 1.1 < profile.quantile[80].iloc[0] < 1.9  # |normal| / its mean: 80% quantile 1.61
    assert profile.quantile[95].iloc[0] > profile.quantile[80].iloc[0]


def test_held_out_quantile_rises_to_the_largest_score_when_one_window_is_unlike_the_others():
    from sopforecast.forecasting.intervals import _held_out_quantile

    calm = np.linspace(0.1, 1.0, 20)
    scores = pd.Series(np.concatenate([calm, calm, calm + 5.0]))  # the third window far worse
    blocks = np.repeat([0, 1, 2], 20)
    # left out, the bad window is never covered by the calm ones' quantile: no position
    # below the top averages 80%, so the level keeps its largest score
    assert _held_out_quantile(scores, blocks, 0.8) == pytest.approx(scores.max())
    alike = pd.Series(np.concatenate([calm, calm, calm]))
    assert _held_out_quantile(alike, blocks, 0.8) == pytest.approx(np.quantile(alike, 0.8))


def test_series_without_backtest_errors_get_their_levels_ratio_to_demand():
    sigmas = {"a": 10.0, "b": 20.0}
    levels = pd.Series({"a": "x", "b": "x", "new": "x"})
    profile = error_profile(_backtest(sigmas, levels), "forecast", levels, [80])
    point = pd.DataFrame(
        {"unique_id": "new", "ds": pd.date_range("2024-01-01", periods=3, freq="MS"), "forecast": 5.0}
    )
    bounds = interval_bounds(point, profile, levels, [80], demand=pd.Series({"new": 500.0}))
    assert (bounds["forecast-hi-80"] > 5.0).all()
    assert (bounds["forecast-lo-80"] == 0.0).all()  # stops at zero, below the point


# -- the delivered forecast ----------------------------------------------------------------


@pytest.fixture(scope="module")
def delivered():
    """A hierarchy where one SKU stopped selling and another is falling fast."""
    rng = np.random.default_rng(3)
    ds = pd.date_range("2020-01-01", periods=48, freq="MS")
    rows = []
    for fam, skus in {"Juice": ["j1", "j2", "j3"], "Water": ["w1", "w2"]}.items():
        for sku in skus:
            y = 50 + 10 * np.sin(np.arange(48) * 2 * np.pi / 12) + rng.normal(0, 3, 48)
            if sku == "j1":
                y[-8:] = 0.0  # discontinued
            if sku == "w2":
                y = np.linspace(80, 2, 48) + rng.normal(0, 2, 48)  # trending to zero
            rows.append(pd.DataFrame({"family": fam, "sku": sku, "ds": ds, "y": np.maximum(y, 0).round()}))
    history = pd.concat(rows, ignore_index=True)
    history["unique_id"] = history["family"] + "/" + history["sku"]
    config = ForecastConfig(
        horizon=18, hierarchy=["family/sku"], models=["ets", "theta", "naive"], level=[80, 95], n_jobs=1
    )
    run = Forecaster(config).fit(history).predict()
    _, S, _ = aggregate_hierarchy(history, ["family/sku"])
    return run, S


def test_delivered_forecast_is_non_negative_coherent_and_inside_its_intervals(delivered):
    run, S = delivered
    fc = run.forecast
    values = fc[[c for c in fc.columns if c.startswith("forecast")]]
    assert (values >= 0).all().all()
    assert coherence_gap(fc, S, "forecast") < 1e-9
    for lv in (80, 95):
        assert (fc[f"forecast-lo-{lv}"] <= fc["forecast"] + 1e-9).all()
        assert (fc[f"forecast-hi-{lv}"] >= fc["forecast"] - 1e-9).all()


def test_a_series_that_stopped_selling_is_forecast_at_zero_and_reported(delivered):
    run, _ = delivered
    assert run.discontinued == ["Juice/j1"]
    j1 = run.forecast[run.forecast["unique_id"] == "Juice/j1"]
    assert (j1[[c for c in j1.columns if c.startswith("forecast")]] == 0).all().all()


def test_the_discontinued_report_says_when_each_item_last_sold(delivered):
    from sopforecast.pipeline.steps import Evaluation, discontinued_table

    run, _ = delivered
    ev = Evaluation(run.forecast, run.backtest, {}, all_series=run.series, discontinued=run.discontinued)
    table = discontinued_table(ev)
    assert table["unique_id"].tolist() == ["Juice/j1"]
    assert table["last_demand"].iloc[0] == pd.Timestamp("2023-04-01")  # 8 quiet months before the end
    assert table["demand_last_12_months_before"].iloc[0] > 0


def test_a_smooth_total_gets_a_narrower_interval_than_its_noisy_skus():
    rng = np.random.default_rng(4)
    ds = pd.date_range("2018-01-01", periods=72, freq="MS")  # seasonal models at every origin
    season = 10 * np.sin(np.arange(72) * 2 * np.pi / 12)
    history = pd.concat(
        [
            pd.DataFrame(
                {
                    "family": "F",
                    "sku": f"s{i}",
                    "ds": ds,
                    "y": np.maximum(50 + season + rng.normal(0, 8, 72), 0),
                }
            )
            for i in range(8)
        ],
        ignore_index=True,
    )
    history["unique_id"] = "F/" + history["sku"]
    config = ForecastConfig(
        horizon=12, hierarchy=["family/sku"], models=["ets", "theta"], level=[80], n_jobs=1
    )
    fc = Forecaster(config).fit(history).predict().forecast
    rel = (fc["forecast-hi-80"] - fc["forecast-lo-80"]) / fc["forecast"]
    by_level = rel.groupby(fc["level"]).median()
    # independent SKU noise averages out in the total: its relative width is well below theirs
    assert by_level["Total"] < 0.6 * by_level["family/sku"]


def test_without_reconciliation_the_aggregates_keep_their_own_forecasts(delivered):
    run, S = delivered
    history = run.series  # every level's history; the bottom rows rebuilt with their keys
    bottom = history[history["unique_id"].str.count("/") == 1].copy()
    bottom[["family", "sku"]] = bottom["unique_id"].str.split("/", expand=True)
    config = ForecastConfig(horizon=6, hierarchy=["family/sku"], models=["ets"], reconcile="none", n_jobs=1)
    fc = Forecaster(config).fit(bottom).predict().forecast
    assert (fc.filter(like="forecast") >= 0).all().all()
    # base forecasts per level, not the bottom's sums: a planner asked for no reconciliation
    assert coherence_gap(fc, S, "forecast") > 1e-6


# -- working days ------------------------------------------------------------------------


def test_working_days_count_monday_to_friday_per_month():
    from sopforecast.forecasting.calendar import from_rate, month_factor, to_rate, working_days

    months = pd.to_datetime(["2008-02-01", "2007-02-01", "2026-11-01", "2026-12-15"])
    assert working_days(months).tolist() == [21.0, 20.0, 21.0, 23.0]  # a leap February gains one
    frame = pd.DataFrame({"ds": months, "y": [100.0, 100.0, 50.0, 0.0]})
    back = from_rate(to_rate(frame, ["y"]), ["y"])
    assert np.allclose(back["y"], frame["y"])
    assert np.isclose(month_factor(pd.date_range("2025-01-01", periods=12, freq="MS")).mean(), 1.0, atol=0.01)


def test_demand_per_working_day_is_forecast_per_working_day():
    """Demand of exactly 10 a working day: with working_days the forecast is 10 times each
    future month's working days; without, months of 20 and 23 days get about the same."""
    from sopforecast.forecasting.calendar import working_days

    ds = pd.date_range("2019-01-01", periods=60, freq="MS")
    noise = np.random.default_rng(5).normal(1.0, 0.002, (2, 60))  # MinTrace needs some error
    history = pd.concat(
        [
            pd.DataFrame({"family": "F", "sku": sku, "ds": ds, "y": rate * working_days(ds) * noise[i]})
            for i, (sku, rate) in enumerate((("a", 10.0), ("b", 4.0)))
        ],
        ignore_index=True,
    )
    history["unique_id"] = "F/" + history["sku"]
    base = {
        "horizon": 12,
        "hierarchy": ["family/sku"],
        "models": ["naive", "snaive"],
        "level": [80],
        "n_jobs": 1,
    }
    with_days = Forecaster(ForecastConfig(**base, working_days=True)).fit(history).predict().forecast
    a = with_days[with_days["unique_id"] == "F/a"]
    assert np.allclose(a["forecast"], 10.0 * working_days(a["ds"]), rtol=0.01)
    total = with_days[with_days["unique_id"] == "Total"]
    assert np.allclose(total["forecast"], 14.0 * working_days(total["ds"]), rtol=0.01)
    assert (
        coherence_gap(with_days, Forecaster(ForecastConfig(**base)).fit(history).panel_.hierarchy, "forecast")
        < 1e-9
    )
    plain = Forecaster(ForecastConfig(**base)).fit(history).predict().forecast
    plain_a = plain[plain["unique_id"] == "F/a"]
    assert np.abs(plain_a["forecast"].to_numpy() - a["forecast"].to_numpy()).max() > 5


def test_working_days_needs_monthly_data():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="working_days scales months"):
        ForecastConfig(freq="W-MON", working_days=True)
