"""LightGBM through mlforecast: one global model over all series.

Features are chosen from the frequency (lags, rolling means of the last value, calendar),
each series is scaled locally so large and small SKUs share one model, hierarchy keys enter
as categorical static features, and drivers (price, promo) as dynamic features whose future
values the caller supplies. Forecasts are recursive, so a driver's value in every future
period reaches the forecast of that period (mlforecast's direct strategy has used only the
first step's values: Nixtla/mlforecast #705). Intervals are conformal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from ..errors import DataError
from .models import CATALOGUE

__all__ = ["MLSettings", "ml_forecast", "ml_backtest", "default_features"]

logger = logging.getLogger(__name__)
ALIAS = CATALOGUE["lgbm"].alias

_FEATURES = {
    # base freq: (lags, rolling windows over lag 1, calendar features)
    "MS": ([1, 2, 3, 6, 12], [3, 6, 12], ["month"]),
    "QS": ([1, 2, 4], [2, 4], ["quarter"]),
    "YS": ([1, 2, 3], [2, 3], []),
    "W": ([1, 2, 4, 52], [4, 13], ["month", "week"]),
    "D": ([1, 7, 14, 28], [7, 28], ["dayofweek", "month"]),
}


def default_features(freq: str) -> tuple[list[int], list[int], list[str]]:
    """Lags, rolling-mean windows and calendar features suited to a frequency."""
    base = pd.tseries.frequencies.to_offset(freq).name.split("-")[0]
    base = {"ME": "MS", "M": "MS", "QE": "QS", "Q": "QS", "YE": "YS", "Y": "YS", "B": "D"}.get(base, base)
    lags, windows, dates = _FEATURES.get(base, ([1, 2, 3], [3], []))
    return list(lags), list(windows), list(dates)


@dataclass
class MLSettings:
    """LightGBM features and parameters (every one overridable from ``params['lgbm']``)."""

    freq: str
    statics: list[str] = field(default_factory=list)
    drivers: list[str] = field(default_factory=list)
    level: tuple[int, ...] = (80, 95)
    params: dict = field(default_factory=dict)
    n_jobs: int = 1
    seed: int = 0

    def build(self):
        import lightgbm as lgb
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean
        from mlforecast.target_transforms import LocalStandardScaler

        params = dict(self.params)
        lags, windows, dates = default_features(self.freq)
        lags = params.pop("lags", lags)
        windows = params.pop("windows", windows)
        dates = params.pop("date_features", dates)
        model = lgb.LGBMRegressor(
            **{
                "n_estimators": 300,
                "learning_rate": 0.05,
                "num_leaves": 31,
                "min_child_samples": 10,
                "verbosity": -1,
                "random_state": self.seed,
                "n_jobs": max(self.n_jobs, 1),
                **params,
            }
        )
        return MLForecast(
            models={ALIAS: model},
            freq=self.freq,
            lags=lags,
            lag_transforms={1: [RollingMean(window_size=w) for w in windows]},
            date_features=dates,
            target_transforms=[LocalStandardScaler()],
            num_threads=max(self.n_jobs, 1),
        )


def _frame(df: pd.DataFrame, settings: MLSettings) -> pd.DataFrame:
    cols = ["unique_id", "ds", "y", *settings.statics, *settings.drivers]
    frame = df[cols].copy()
    for col in settings.statics:
        frame[col] = frame[col].astype("category")
    return frame


def _intervals(h: int, settings: MLSettings, n_windows: int = 2):
    from mlforecast.utils import PredictionIntervals

    return PredictionIntervals(n_windows=n_windows, h=h) if settings.level else None


def _future(future: pd.DataFrame | None, df: pd.DataFrame, h: int, settings: MLSettings):
    if not settings.drivers:
        return None
    if future is None:
        raise DataError(
            f"LightGBM uses the drivers {settings.drivers}; give their future values for the "
            f"{h} forecast periods (a file with unique_id, ds, {', '.join(settings.drivers)}), "
            "or drop the drivers from the config."
        )
    missing = [c for c in ["unique_id", "ds", *settings.drivers] if c not in future.columns]
    if missing:
        raise DataError(f"future drivers: missing column(s) {missing}.")
    return future[["unique_id", "ds", *settings.drivers]]


def ml_forecast(
    df: pd.DataFrame, h: int, settings: MLSettings, future: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Fit LightGBM on all series and forecast ``h`` periods: ``unique_id, ds, LightGBM, ...``."""
    frame = _frame(df, settings)
    fcst = settings.build()
    # conformal intervals need history beyond the calibration windows
    sizes = frame.groupby("unique_id").size()
    need = 2 * h + max(default_features(settings.freq)[0]) + 1
    intervals = _intervals(h, settings) if sizes.min() >= need else None
    fcst.fit(frame, static_features=settings.statics, prediction_intervals=intervals)
    level = list(settings.level) if intervals is not None else None
    out = fcst.predict(h, X_df=_future(future, df, h, settings), level=level)
    return out


def ml_backtest(
    df: pd.DataFrame, h: int, settings: MLSettings, *, n_windows: int, step_size: int | None = None
) -> pd.DataFrame:
    """Rolling-origin backtest of LightGBM (refit at every origin)."""
    frame = _frame(df, settings)
    fcst = settings.build()
    return fcst.cross_validation(
        frame,
        n_windows=n_windows,
        h=h,
        step_size=step_size or h,
        static_features=settings.statics,
    )
