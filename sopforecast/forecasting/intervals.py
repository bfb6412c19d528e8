"""Conformal prediction intervals from backtest residuals.

Used where a model has no native intervals (combinations, LightGBM). Residuals of each
horizon step are scaled by the series' mean absolute demand so series of any size pool
together, which gives enough residuals per step even with few backtest windows; a step's
interval is the forecast plus or minus the residual quantile times the series' scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["conformal_bounds"]


def _step(frame: pd.DataFrame, by: list[str]) -> pd.Series:
    return frame.groupby(by, sort=False).cumcount() + 1


def conformal_bounds(point: pd.DataFrame, cv: pd.DataFrame, levels: list[int]) -> pd.DataFrame:
    """Symmetric conformal bounds for ``point`` from backtest residuals in ``cv``.

    Parameters
    ----------
    point : pandas.DataFrame
        ``unique_id, ds, forecast`` sorted by id and date.
    cv : pandas.DataFrame
        Backtest of the same forecaster: ``unique_id, cutoff, ds, y, forecast``.
    levels : list of int
        Interval levels in percent.

    Returns
    -------
    pandas.DataFrame
        ``forecast-lo-L, forecast-hi-L`` per level, aligned with ``point``'s rows.
    """
    cv = cv.sort_values(["unique_id", "cutoff", "ds"])
    scale = cv.groupby("unique_id")["y"].apply(lambda s: s.abs().mean())
    scale = scale.where(scale > 0, 1.0)
    resid = (cv["y"] - cv["forecast"]).abs() / cv["unique_id"].map(scale).to_numpy()
    steps = _step(cv, ["unique_id", "cutoff"]).to_numpy()
    by_step = pd.Series(resid.to_numpy()).groupby(steps)
    point_scale = point["unique_id"].map(scale).fillna(point["forecast"].abs().clip(lower=1.0))
    point_steps = _step(point, ["unique_id"]).clip(upper=int(steps.max()))
    out = pd.DataFrame(index=point.index)
    for lv in levels:
        q = by_step.quantile(lv / 100.0)
        q = q.reindex(range(1, int(steps.max()) + 1)).ffill()
        width = point_steps.map(q).to_numpy() * point_scale.to_numpy()
        out[f"forecast-lo-{lv}"] = point["forecast"].to_numpy() - width
        out[f"forecast-hi-{lv}"] = point["forecast"].to_numpy() + width
    return out.astype(float).replace([np.inf, -np.inf], np.nan)
