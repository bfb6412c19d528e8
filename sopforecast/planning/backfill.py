"""Back-fill past planning cycles, so monitoring has a track record from the first day.

For each past cycle the plan is made from the history known then, stored and published.
The actuals of the months after each cycle are in the history already, so the monitor can
judge every back-filled plan at once. The demo uses it; so can a team that starts using
sopforecast with years of sales history.

With the live forecast settings (``config``) the back-filled plans are made as the live one
is: the earliest cycle is backtested (model choice, interval calibration, bias correction),
and each later cycle re-estimates the chosen models on the months it knew
(:meth:`~sopforecast.forecasting.forecaster.Forecaster.refit`), the way a team revisits its
model choice quarterly and re-estimates monthly; the promotion calendar of each cycle is the
drivers' values of the months it planned. So their intervals are calibrated, and the monitor
judges the forecaster the team runs. Without it, a fast set (``theta``) and the models' own
intervals.
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
    config: ForecastConfig | None = None,
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
        Without ``config``: the statistical models (default ``["theta"]``).
    price_col : str, optional
        The price driver that prices the plans (revenue at stake); ``None``: no prices.
    config : ForecastConfig, optional
        The live cycle's forecast settings (``forecast:`` of the pipeline); its hierarchy is
        ``hierarchy`` and its horizon at least ``months``.
    """
    from ..forecasting.forecaster import Forecaster

    ends = sorted(history["ds"].unique())[-cycles:]
    done = []
    forecaster = None
    for start in ends:
        start = pd.Timestamp(start)
        known = history[history["ds"] < start]
        if config is not None:
            forecaster, forecast = _live_cycle(forecaster, config, history, known, start, hierarchy, months)
        else:
            fast = ForecastConfig(
                horizon=months,
                models=models or ["theta"],
                hierarchy=hierarchy,
                reconcile="wls_struct" if hierarchy else "none",
                discontinued_after=6,
            )
            columns = ["unique_id", "ds", "y", *_keys(hierarchy)]
            forecast = Forecaster(fast).fit(known[columns], backtest=False).predict().forecast
        lines, bottom = draft_lines(forecast, known, hierarchy, months=months)
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


def _live_cycle(
    forecaster,
    config: ForecastConfig,
    history: pd.DataFrame,
    known: pd.DataFrame,
    start,
    hierarchy,
    months: int,
):
    """The cycle starting at ``start`` with the live settings, ``known`` the history before
    it: the first cycle fits (with its backtest), the later ones re-estimate; returns the
    forecaster and its forecast."""
    from ..forecasting.forecaster import Forecaster

    if forecaster is None:
        settings = config.model_copy(
            update={"hierarchy": list(hierarchy), "horizon": max(config.horizon, months)}
        )
        forecaster = Forecaster(settings).fit(known)
    else:
        forecaster.refit(known)
    drivers = list(config.drivers)
    # the promotion calendar of the months the cycle planned: their drivers as they happened
    # (months past the history: no promotion, the last price)
    future = history.loc[history["ds"] >= start, ["unique_id", "ds", *drivers]] if drivers else None
    return forecaster, forecaster.predict(h=months, future=future, fill="zero").forecast


def _keys(hierarchy: list[str]) -> list[str]:
    return key_columns(hierarchy)
