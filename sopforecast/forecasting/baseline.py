"""Seasonal naive baseline: the first forecast of every run and the bar others must beat.

Series with less than one season of history cannot repeat last year's pattern; they get a
naive forecast (last value) instead, and the switch is reported in the ``model`` column.
"""

from __future__ import annotations

import logging

import pandas as pd

from ..errors import ConfigError

__all__ = ["seasonal_naive_forecast", "to_forecast_frame"]

logger = logging.getLogger(__name__)


def to_forecast_frame(fcst: pd.DataFrame, model: str, *, clip: bool = True) -> pd.DataFrame:
    """Rename a statsforecast output frame's ``MODEL``, ``MODEL-lo-80``... columns to the
    product's ``forecast``, ``forecast-lo-80``... and add the ``model`` column."""
    cols = {c: c.replace(model, "forecast", 1) for c in fcst.columns if c.startswith(model)}
    out = fcst.rename(columns=cols)[["unique_id", "ds", *cols.values()]].copy()
    if clip:
        num = list(cols.values())
        out[num] = out[num].clip(lower=0.0)
    out["model"] = model
    return out


def seasonal_naive_forecast(
    df: pd.DataFrame,
    h: int,
    *,
    freq: str = "MS",
    season_length: int = 12,
    level: tuple[int, ...] = (80, 95),
    clip: bool = True,
) -> pd.DataFrame:
    """Forecast every series with last season's values (naive for short series).

    Parameters
    ----------
    df : pandas.DataFrame
        Long-format history with ``unique_id``, ``ds``, ``y`` (validated, no gaps).
    h : int
        Horizon in periods.
    freq : str, default "MS"
        pandas frequency of the data.
    season_length : int, default 12
        Periods in a season.
    level : tuple of int, default (80, 95)
        Prediction interval levels in percent.
    clip : bool, default True
        Clip forecasts and lower bounds at zero (demand is never negative).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, forecast, forecast-lo-80, forecast-hi-80, ..., model`` where model
        is ``SeasonalNaive`` or ``Naive`` (fallback for series shorter than a season).
    """
    from statsforecast import StatsForecast
    from statsforecast.models import Naive, SeasonalNaive

    if h <= 0:
        raise ConfigError(f"horizon must be a positive number of periods, got {h}.")
    if season_length < 1:
        raise ConfigError(f"season length must be 1 or more, got {season_length}.")
    history = df[["unique_id", "ds", "y"]]
    sizes = history.groupby("unique_id", sort=False).size()
    # intervals need residuals: at least two periods beyond one season
    short = sizes.index[sizes < season_length + 2]
    parts = []
    for ids, model in (
        (sizes.index.difference(short), SeasonalNaive(season_length)),
        (short, Naive()),
    ):
        if len(ids) == 0:
            continue
        part = history[history["unique_id"].isin(ids)]
        sf = StatsForecast(models=[model], freq=freq, n_jobs=1)
        fcst = sf.forecast(df=part, h=h, level=list(level))
        parts.append(to_forecast_frame(fcst, repr(model), clip=clip))
    if len(short):
        logger.info("%d series shorter than a season plus two periods got the naive fallback", len(short))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
