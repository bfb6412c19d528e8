"""From candidate forecasts to the delivered forecast: each series' chosen combination,
intervals, clipping, and reconciliation across the hierarchy.

Pure: frames in, a frame out. The delivered frame has ``unique_id, ds, forecast,
forecast-lo-80, forecast-hi-80, ..., model`` and, for a hierarchy, ``level``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..config import ForecastConfig
from .engine import BacktestResult, attach_intervals
from .hierarchical import Panel, recentre
from .reconcile import coherence_gap, reconcile
from .selection import combine_forecasts

__all__ = ["deliver"]

logger = logging.getLogger(__name__)


def deliver(
    wide: pd.DataFrame,
    selection: pd.DataFrame,
    backtest: BacktestResult | None,
    panel: Panel,
    config: ForecastConfig,
) -> pd.DataFrame:
    """The forecast a planner receives, from every candidate's forecast (``wide``)."""
    point = combine_forecasts(wide, selection)
    out = attach_intervals(point, wide, selection, backtest, config)
    if config.clip:
        num = [c for c in out.columns if c.startswith("forecast")]
        out[num] = out[num].clip(lower=0.0)
    if panel.S is not None:
        if config.reconcile != "none":
            residuals = backtest.chosen_cv if backtest is not None else None
            rec = reconcile(
                out,
                panel.S,
                panel.tags,
                methods=[config.reconcile],
                residuals=residuals,
                history=panel.Y[["unique_id", "ds", "y"]],
                middle_level=config.middle_level,
                nonnegative=config.nonnegative,
            )
            out = recentre(out, rec, f"forecast/{config.reconcile}", config.clip)
            logger.info(
                "Reconciled with %s; largest coherence gap %.2e",
                config.reconcile,
                coherence_gap(out, panel.S, "forecast"),
            )
        out = out.assign(level=out["unique_id"].map(panel.levels))
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
    return out.reset_index(drop=True)
