"""From candidate forecasts to the delivered forecast: each series' chosen combination,
reconciliation across the hierarchy, no negative demand, discontinued items at zero, and
intervals calibrated per level.

Pure: frames in, a frame out. The delivered frame has ``unique_id, ds, forecast,
forecast-lo-80, forecast-hi-80, ..., model`` and, for a hierarchy, ``level``. Every level
is coherent, no value is below zero and every interval contains its point forecast.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..config import ForecastConfig, quantile_column, quantile_level
from .bias import BiasFactors, apply_factors
from .engine import attach_intervals
from .hierarchical import Panel
from .intervals import ErrorProfile, interval_bounds
from .reconcile import coherence_gap, nonnegative_coherent, reconcile
from .selection import combine_forecasts

__all__ = ["deliver", "recent_demand"]

logger = logging.getLogger(__name__)


def recent_demand(history: pd.DataFrame, periods: int = 12) -> pd.Series:
    """Mean absolute demand of each series over its last ``periods`` periods."""
    recent = history.sort_values("ds").groupby("unique_id").tail(periods)
    return recent["y"].abs().groupby(recent["unique_id"]).mean()


def deliver(
    wide: pd.DataFrame,
    selection: pd.DataFrame,
    panel: Panel,
    config: ForecastConfig,
    errors: ErrorProfile | None,
    residuals: pd.DataFrame | None = None,
    bias: BiasFactors | None = None,
) -> pd.DataFrame:
    """The forecast a planner receives, from every candidate's forecast (``wide``).

    Parameters
    ----------
    errors : ErrorProfile, optional
        Calibrated from the backtest of the delivered forecast; without it (no backtest)
        the chosen models' own intervals are used, moved with the reconciled point.
    residuals : pandas.DataFrame, optional
        Backtest of the chosen forecasts, for the MinTrace methods that need error variances.
    bias : BiasFactors, optional
        Each level's lean from the backtest (:mod:`.bias`), taken out before reconciliation.
    """
    point = combine_forecasts(wide, selection)
    if bias is not None:
        point = apply_factors(point, bias, panel.levels, ["forecast"])
    base = point["forecast"].to_numpy(dtype=float)
    gone = panel.discontinued
    if gone:
        point.loc[point["unique_id"].isin(gone), "forecast"] = 0.0
    reconciled = panel.hierarchy is not None and config.reconcile != "none"
    if reconciled:
        rec = reconcile(
            point,
            panel.hierarchy,
            panel.tags,
            methods=[config.reconcile],
            residuals=residuals,
            history=panel.Y[["unique_id", "ds", "y"]],
            middle_level=config.middle_level,
            nonnegative=config.nonnegative,
            sparse_above=config.reconcile_sparse_above,
        )
        column = f"forecast/{config.reconcile}"
        point = point.drop(columns="forecast").merge(rec[["unique_id", "ds", column]], on=["unique_id", "ds"])
        point = point.rename(columns={column: "forecast"})
    if config.clip and reconciled:
        negative = int((point["forecast"] < 0).sum())
        point = nonnegative_coherent(point, panel.hierarchy, ["forecast"], zero=gone)
        if negative:
            logger.info(
                "%d forecast value(s) below zero after reconciliation: bottom series clipped at zero, "
                "aggregates re-summed",
                negative,
            )
    elif config.clip:  # unreconciled: each series clipped on its own
        point["forecast"] = point["forecast"].clip(lower=0.0)
    point = point[["unique_id", "ds", "forecast", "model"]]
    if reconciled:
        logger.info(
            "Reconciled with %s; largest coherence gap %.2e",
            config.reconcile,
            coherence_gap(point, panel.hierarchy, "forecast"),
        )
    out = _with_intervals(point, base, wide, selection, panel, config, errors)
    if panel.hierarchy is not None:
        out = out.assign(level=out["unique_id"].map(panel.levels))
    return _finite(out).reset_index(drop=True)


def _with_intervals(point, base, wide, selection, panel: Panel, config: ForecastConfig, errors):
    levels = list(config.interval_levels)
    if not levels:
        return point
    if errors is not None:
        demand = recent_demand(panel.Y)
        floor = 0.0 if config.clip else None
        bounds = interval_bounds(point, errors, panel.levels, levels, demand, floor)
        out = pd.concat([point, bounds], axis=1)
    else:
        # no backtest: the single chosen models' own intervals, moved with the point
        native = attach_intervals(point.assign(forecast=base), wide, selection, config)
        out = point.copy()
        shift = point["forecast"].to_numpy() - base
        for col in [c for c in native.columns if c.startswith("forecast-")]:
            out[col] = native[col].to_numpy() + shift
    bounds = [c for c in out.columns if c.startswith("forecast-")]
    lo = [c for c in bounds if "-lo-" in c]
    hi = [c for c in bounds if "-hi-" in c]
    out[lo] = np.minimum(out[lo].to_numpy(), out[["forecast"]].to_numpy())
    out[hi] = np.maximum(out[hi].to_numpy(), out[["forecast"]].to_numpy())
    if config.clip:
        out[lo] = out[lo].clip(lower=0.0)
    if panel.discontinued:
        out.loc[out["unique_id"].isin(panel.discontinued), bounds] = 0.0
    return out[["unique_id", "ds", "forecast", *bounds, "model"]]


def _finite(out: pd.DataFrame) -> pd.DataFrame:
    bounds = [c for c in out.columns if c.startswith("forecast")]
    values = out[bounds].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        bad = out.loc[~np.isfinite(values).all(axis=1), "unique_id"].unique()
        # a model's arithmetic broke down (e.g. overflow): keep the point, drop the interval
        logger.warning(
            "%d series got non-finite forecast values; they are set from the point forecast", len(bad)
        )
        point_col = out["forecast"].where(np.isfinite(out["forecast"]), 0.0)
        out["forecast"] = point_col
        for col in bounds[1:]:
            out[col] = out[col].where(np.isfinite(out[col]), point_col)
    return out


def with_quantiles(forecast: pd.DataFrame, config: ForecastConfig) -> pd.DataFrame:
    """``forecast`` with a column per ``quantiles`` (:func:`~sopforecast.config.quantile_column`):
    the bound of the central interval it closes (0.1: the 80% interval's lower bound), the
    point forecast for 0.5. The intervals computed only for them are dropped, so the frame
    has the configured ``level`` columns and the quantiles."""
    if not config.quantiles:
        return forecast
    out = forecast.copy()
    for q in config.quantiles:
        level = quantile_level(q)
        source = "forecast" if q == 0.5 else f"forecast-{'lo' if q < 0.5 else 'hi'}-{level}"
        out[quantile_column(q)] = out[source] if source in out.columns else np.nan
    extra = [
        c
        for lv in set(config.interval_levels) - set(config.level)
        for c in (f"forecast-lo-{lv}", f"forecast-hi-{lv}")
        if c in out.columns
    ]
    return out.drop(columns=extra)
