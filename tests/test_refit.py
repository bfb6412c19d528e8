"""Each series estimates only the models its forecast is made of, and ``refit`` re-estimates
them on more months, keeping the model choice, the interval calibration and the bias factors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import smooth_and_sporadic

from sopforecast.config import ForecastConfig
from sopforecast.errors import NotFittedError
from sopforecast.forecasting.forecaster import Forecaster
from sopforecast.forecasting.models import CATALOGUE

CONFIG = ForecastConfig(horizon=6, models=["ets", "theta", "snaive", "naive"], windows=2, level=[80])


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return smooth_and_sporadic(n_smooth=6, periods=48, seed=2)


@pytest.fixture(scope="module")
def fitted(history) -> Forecaster:
    return Forecaster(CONFIG).fit(history[history["ds"] < history["ds"].max() - pd.DateOffset(months=5)])


def test_a_series_estimates_only_its_selected_models(fitted):
    wide = fitted.stats_wide_
    aliases = [CATALOGUE[m].alias for m in CONFIG.models]
    for row in fitted.selection_.itertuples():
        own = wide[wide["unique_id"] == row.unique_id]
        for alias in aliases:
            has = own[alias].notna().all() if alias in own else False
            assert has == (alias in row.members), (row.unique_id, alias, row.members)
    # and some series did not need every model: the point of the split
    assert any(len(m) < len(aliases) for m in fitted.selection_["members"])


def test_refit_keeps_the_choice_and_calibration_and_forecasts_from_the_new_end(fitted, history):
    choice = fitted.selection_.set_index("unique_id")["members"].to_dict()
    errors, backtest = fitted.errors_, fitted.backtest_
    before = fitted.predict().forecast
    fitted.refit(history)
    after = fitted.predict().forecast
    assert fitted.selection_.set_index("unique_id")["members"].to_dict() == choice
    assert fitted.errors_ is errors and fitted.backtest_ is backtest
    assert after["ds"].min() == history["ds"].max() + pd.offsets.MonthBegin(1)
    assert before["ds"].min() < after["ds"].min()
    # the intervals are still there, and around the point forecast
    assert after["forecast-lo-80"].notna().all()
    assert (after["forecast-lo-80"] <= after["forecast"] + 1e-9).all()
    assert np.isfinite(after["forecast"]).all()


def test_refit_needs_a_fit(history):
    with pytest.raises(NotFittedError, match="call fit first"):
        Forecaster(CONFIG).refit(history)


def test_quantile_forecasts_are_the_calibrated_bounds_and_the_point(history):
    config = CONFIG.model_copy(update={"level": [95], "quantiles": [0.1, 0.5, 0.9]})
    assert config.interval_levels == [80, 95]
    out = Forecaster(config).fit(history).predict().forecast
    assert {"q10", "q50", "q90", "forecast-lo-95", "forecast-hi-95"} <= set(out.columns)
    assert "forecast-lo-80" not in out.columns  # computed for the quantiles, not asked for
    assert (out["q50"] == out["forecast"]).all()
    assert (out["q10"] <= out["q50"] + 1e-9).all() and (out["q50"] <= out["q90"] + 1e-9).all()
    # the 80% bounds sit inside the 95% interval
    assert (out["q10"] >= out["forecast-lo-95"] - 1e-9).all()
    assert (out["q90"] <= out["forecast-hi-95"] + 1e-9).all()
    assert (out["q90"] > out["q10"]).any()
    # the same numbers as the 80% interval of a forecaster asked for it
    plain = Forecaster(CONFIG.model_copy(update={"level": [80, 95]})).fit(history).predict().forecast
    assert out["q10"].to_numpy() == pytest.approx(plain["forecast-lo-80"].to_numpy())


def test_quantiles_outside_0_1_are_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="quantiles must lie between 0 and 1"):
        ForecastConfig(quantiles=[10, 50, 90])
