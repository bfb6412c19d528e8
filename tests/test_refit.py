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
