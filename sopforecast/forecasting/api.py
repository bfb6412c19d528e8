"""Public verbs ``forecast`` and ``backtest``: one call each over the :class:`Forecaster`."""

from __future__ import annotations

import pandas as pd
from pydantic import ValidationError

from ..config import ForecastConfig
from ..errors import ConfigError
from .forecaster import Forecaster

__all__ = ["forecast", "backtest", "make_config"]


def make_config(
    h: int = 18,
    freq: str = "MS",
    models: str | list[str] = "auto",
    level: tuple[int, ...] = (80, 95),
    hierarchy: list[str] | None = None,
    drivers: list[str] | None = None,
    **kwargs,
) -> ForecastConfig:
    """A :class:`ForecastConfig` from keyword settings; a bad setting is a ``ConfigError``."""
    try:
        return ForecastConfig(
            horizon=h,
            freq=freq,
            models=models,
            level=list(level),
            hierarchy=list(hierarchy or []),
            drivers=list(drivers or []),
            **kwargs,
        )
    except ValidationError as exc:
        raise ConfigError.from_validation(exc) from exc


def forecast(
    df: pd.DataFrame,
    h: int = 18,
    freq: str = "MS",
    models: str | list[str] = "auto",
    level: tuple[int, ...] = (80, 95),
    hierarchy: list[str] | None = None,
    drivers: list[str] | None = None,
    future: pd.DataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Forecast every series (and every aggregate of ``hierarchy``, reconciled).

    Parameters
    ----------
    df : pandas.DataFrame
        Validated long history: ``unique_id, ds, y``, the hierarchy's key columns, drivers.
    h : int, default 18
        Horizon in periods.
    freq : str, default "MS"
        pandas frequency.
    models : str or list of str, default "auto"
        ``auto`` selects per series by backtest; or catalogue names.
    level : tuple of int, default (80, 95)
        Interval levels.
    hierarchy : list of str, optional
        Key chains such as ``["category/family/sku", "region/channel"]``.
    drivers : list of str, optional
        Driver columns of ``df`` (price, promo).
    future : pandas.DataFrame, optional
        Their future values: ``unique_id`` (or the key columns), ``ds``, the drivers.
    **kwargs
        Any other :class:`~sopforecast.config.ForecastConfig` field (windows, reconcile,
        season_length, params, n_jobs, clip, future_fill, ...).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, forecast, forecast-lo-80, forecast-hi-80, ..., model`` (and
        ``level`` for hierarchies).
    """
    config = make_config(h, freq, models, level, hierarchy, drivers, **kwargs)
    return Forecaster(config).fit(df).predict(future=future).forecast


def backtest(
    df: pd.DataFrame,
    h: int = 18,
    freq: str = "MS",
    models: str | list[str] = "auto",
    level: tuple[int, ...] = (80, 95),
    hierarchy: list[str] | None = None,
    drivers: list[str] | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Rolling-origin backtest; one row per model (per level and reconciliation method for
    hierarchies) with MASE, RMSSE, sMAPE, WAPE and bias of the point forecasts."""
    config = make_config(h, freq, models, level, hierarchy, drivers, **kwargs)
    return Forecaster(config).cross_validation(df).metrics
