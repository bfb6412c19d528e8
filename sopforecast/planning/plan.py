"""A draft demand plan from a delivered forecast: monthly (or 4-4-5) buckets, every level.

Pure: frames in, plan lines out (:mod:`.lines`). The plan store keeps them as a version.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..data.hierarchy import key_columns
from ..errors import ConfigError, DataError, format_examples
from .buckets import to_buckets
from .lines import rollup, summing

__all__ = ["draft_lines", "history_lines", "cycle_of", "MAX_MONTHS"]

logger = logging.getLogger(__name__)

MAX_MONTHS = 36


def cycle_of(lines: pd.DataFrame) -> str:
    """The planning cycle a plan belongs to: its first month, ``YYYY-MM``."""
    return pd.Timestamp(lines["ds"].min()).strftime("%Y-%m")


def history_lines(history: pd.DataFrame, S: pd.DataFrame, freq: str, bucket: str = "month") -> pd.DataFrame:
    """Demand of every series at every level in planning buckets: ``unique_id, ds, y``.

    ``history`` holds the bottom series (``unique_id, ds, y``) in the data's frequency.
    """
    monthly = to_buckets(history[["unique_id", "ds", "y"]], ["y"], freq, bucket)
    monthly = monthly.groupby(["unique_id", "ds"], as_index=False)["y"].sum()
    return rollup(monthly, S, "y").reset_index()


def draft_lines(
    forecast: pd.DataFrame,
    history: pd.DataFrame,
    hierarchy: list[str],
    *,
    freq: str = "MS",
    months: int = 18,
    bucket: str = "month",
    new_items: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plan lines for a new draft version.

    Parameters
    ----------
    forecast : pandas.DataFrame
        The delivered forecast of every series at every level: ``unique_id, ds, forecast``
        and ``forecast-lo-L`` / ``forecast-hi-L``.
    history : pandas.DataFrame
        Bottom series with their key columns: ``unique_id, ds, y`` and the keys.
    hierarchy : list of str
        Key chains (empty for flat data).
    freq : str, default "MS"
        The data's frequency; weekly or daily forecasts are summed into the buckets.
    months : int, default 18
        Buckets to plan (at most 36).
    bucket : {"month", "445"}, default "month"
    new_items : pandas.DataFrame, optional
        Launched items not in the history (``unique_id`` and the keys): planned beside the
        others, in the aggregates above them.

    Returns
    -------
    (lines, bottom)
        The plan lines (:mod:`.lines`) and the bottom series' key columns.
    """
    if not 1 <= months <= MAX_MONTHS:
        raise ConfigError(
            f"plan.months is {months}; plan between 1 and {MAX_MONTHS} months", setting="plan.months"
        )
    keys = key_columns(hierarchy)
    bottom = history[["unique_id", *keys]].drop_duplicates("unique_id")
    if new_items is not None and len(new_items):
        bottom = pd.concat([bottom, new_items[["unique_id", *keys]]], ignore_index=True).drop_duplicates(
            "unique_id"
        )
    S, levels = summing(bottom, hierarchy)
    missing = sorted(set(S.index) - set(forecast["unique_id"]))
    if missing:
        raise DataError(
            f"the forecast has no values for {len(missing)} series of the hierarchy: "
            f"{format_examples(missing)}; a plan needs every level (forecast.hierarchy)."
        )
    bounds = [c for c in forecast.columns if c.startswith("forecast-")]
    values = forecast[forecast["unique_id"].isin(S.index)][["unique_id", "ds", "forecast", *bounds]]
    planned = to_buckets(values, ["forecast", *bounds], freq, bucket)
    buckets = np.sort(planned["ds"].unique())
    if len(buckets) < months:
        raise ConfigError(
            f"plan.months is {months} but the forecast covers {len(buckets)} whole "
            f"{'months' if bucket == 'month' else 'fiscal periods'}; "
            "raise forecast.horizon or lower plan.months",
            setting="plan.months",
        )
    planned = planned[planned["ds"].isin(buckets[:months])]
    past = history_lines(history, S, freq, bucket)
    past = past[past["ds"] < planned["ds"].min()]
    naive = past.sort_values("ds").groupby("unique_id")["y"].last()
    lines = planned.rename(columns={"forecast": "statistical", **{b: "statistical" + b[8:] for b in bounds}})
    order = pd.Series(np.arange(len(S.index)), index=S.index)
    lines = lines.assign(
        level=lines["unique_id"].map(levels),
        naive=lines["unique_id"].map(naive),
        consensus=np.nan,
        final=lines["statistical"],
        author=None,
        price=np.nan,
        unit_cost=np.nan,
        _order=lines["unique_id"].map(order),
    )
    lines = lines.sort_values(["_order", "ds"]).drop(columns="_order").reset_index(drop=True)
    front = ["unique_id", "level", "ds", "statistical"]
    rest = [c for c in lines.columns if c.startswith("statistical-")]
    lines = lines[[*front, *rest, "naive", "consensus", "final", "author", "price", "unit_cost"]]
    logger.info(
        "Draft plan: %d series, %d %s from %s",
        len(S.index),
        months,
        "months" if bucket == "month" else "fiscal periods",
        pd.Timestamp(lines["ds"].min()).strftime("%Y-%m"),
    )
    return lines, bottom.reset_index(drop=True)
