"""Back-fill past planning cycles, so monitoring has a track record from the first day.

For each past cycle the plan is made from the history known then (a fast model set, no
backtest: the statistical forecast a team would have had), stored and published. The
actuals of the months after each cycle are in the history already, so the monitor can
judge every back-filled plan at once. The demo uses it; so can a team that starts using
sopforecast with years of sales history.
"""

from __future__ import annotations

import logging

import pandas as pd

from ..config import ForecastConfig
from ..data.hierarchy import key_columns
from ..store.plans import PlanStore, PlanVersion
from . import service
from .finance import attach_prices, prices_from_history
from .plan import draft_lines

__all__ = ["backfill"]

logger = logging.getLogger(__name__)


def backfill(
    plans: PlanStore,
    plan: str,
    history: pd.DataFrame,
    hierarchy: list[str],
    *,
    cycles: int = 6,
    months: int = 6,
    models: list[str] | None = None,
    price_col: str | None = "price",
    by: str = "back-fill",
) -> list[PlanVersion]:
    """Publish a plan for each of the last ``cycles`` months of ``history``, each made from
    the months before it.

    Parameters
    ----------
    history : pandas.DataFrame
        Validated bottom history (``unique_id, ds, y``, the key columns, drivers).
    cycles : int, default 6
        Past cycles: the plan of cycle ``c`` starts at month ``c`` and knows the history
        before it.
    months : int, default 6
        Months each plan covers (the lags the monitor can score).
    models : list of str, optional
        The statistical models (default ``["theta"]``: fast and sound for monthly demand).
    price_col : str, optional
        The price driver that prices the plans (revenue at stake); ``None``: no prices.
    """
    from ..forecasting.forecaster import Forecaster

    ends = sorted(history["ds"].unique())[-cycles:]
    done = []
    for start in ends:
        start = pd.Timestamp(start)
        known = history[history["ds"] < start]
        config = ForecastConfig(
            horizon=months,
            models=models or ["theta"],
            hierarchy=hierarchy,
            reconcile="wls_struct" if hierarchy else "none",
            discontinued_after=6,
        )
        forecast = Forecaster(config).fit(known[["unique_id", "ds", "y", *_keys(hierarchy)]], backtest=False)
        lines, bottom = draft_lines(forecast.predict().forecast, known, hierarchy, months=months)
        if price_col and price_col in known:
            lines = attach_prices(lines, prices_from_history(known, price_col=price_col))
        version = service.create_version(
            plans,
            plan,
            lines,
            bottom,
            hierarchy,
            cycle=start.strftime("%Y-%m"),
            created_by=by,
            history_end=known["ds"].max(),
        )
        done.append(plans.publish(version.id, by=by))
        logger.info("Back-filled and published %s", done[-1].label)
    return done


def _keys(hierarchy: list[str]) -> list[str]:
    return key_columns(hierarchy)
