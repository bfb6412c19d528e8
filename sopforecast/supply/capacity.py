"""The capacity check: load per resource and month from the final plan, against capacity.

Three steps, each a pure function over frames:

1. :func:`capacity_load` multiplies each routed series' ``final`` plan by its rate: the load
   per resource and month (every routed resource in every month of the plan, zero where
   nothing loads it), or with ``detail=True`` per contributing key; :func:`resource_load`
   sums such a detail frame, so a caller computes the detail once;
2. :func:`utilisation` holds the load against capacity: ``load / capacity``, ``inf`` for
   load in a month of zero capacity, NaN where the capacity table has no row for the
   resource and month (missing capacity is reported, never read as 0);
3. :func:`capacity_exceptions` lists the overloaded, badly under-used and capacity-less
   resource-months, most severe first, with the series that drive each load.

Everything is merges and group-bys: 10,000 series x 36 months x 50 resources in seconds.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = [
    "LOAD_COLUMNS",
    "DETAIL_COLUMNS",
    "UTILISATION_COLUMNS",
    "EXCEPTION_COLUMNS",
    "KINDS",
    "capacity_load",
    "resource_load",
    "utilisation",
    "capacity_exceptions",
]

logger = logging.getLogger(__name__)

LOAD_COLUMNS = ["resource", "ds", "load"]
DETAIL_COLUMNS = ["resource", "ds", "key", "load"]
UTILISATION_COLUMNS = ["resource", "ds", "load", "capacity", "utilisation"]
EXCEPTION_COLUMNS = ["resource", "ds", "kind", "utilisation", "load", "capacity", "gap", "drivers"]
#: Exception kinds, most severe first.
KINDS = ("overload", "no capacity", "underused")


def capacity_load(
    lines: pd.DataFrame, routing: pd.DataFrame, *, detail: bool = False, value_col: str = "final"
) -> pd.DataFrame:
    """Load per resource and month: each routed series' plan times its rate.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines (``unique_id, ds`` and ``value_col``), any levels; not modified. Lines
        no routing names are ignored; an empty plan value loads nothing.
    routing : pandas.DataFrame
        Validated routing (:func:`~sopforecast.supply.inputs.validate_routing`):
        ``key, resource, rate``; a key is a ``unique_id`` of the plan.
    detail : bool, default False
        Return the load of each contributing key (:data:`DETAIL_COLUMNS`) instead of the
        total per resource and month.
    value_col : str, default "final"
        The plan column that loads the resources.

    Returns
    -------
    pandas.DataFrame
        :data:`LOAD_COLUMNS`: every resource of ``routing`` in every month of ``lines``
        (zero where nothing loads it), sorted; or with ``detail``, :data:`DETAIL_COLUMNS`
        for the routed keys the plan holds, sorted by resource, month and key.
    """
    plan = lines[["unique_id", "ds", value_col]]
    routed = routing[["key", "resource", "rate"]]
    missing = ~routed["key"].isin(plan["unique_id"])
    if missing.any():
        logger.info(
            "%d routed key(s) are not in the plan and load nothing", routed.loc[missing, "key"].nunique()
        )
    rows = plan.merge(routed, left_on="unique_id", right_on="key", how="inner", sort=False)
    rows = rows.assign(
        load=rows[value_col].fillna(0.0).to_numpy(dtype=float) * rows["rate"].to_numpy(dtype=float)
    )
    per_key = (
        rows[DETAIL_COLUMNS].sort_values(["resource", "ds", "key"], kind="stable").reset_index(drop=True)
    )
    if detail:
        return per_key
    months = pd.DatetimeIndex(np.sort(plan["ds"].unique()))
    return resource_load(per_key, resources=routed["resource"].unique(), months=months)


def resource_load(
    detail: pd.DataFrame, *, resources=None, months: pd.DatetimeIndex | None = None
) -> pd.DataFrame:
    """Sum a per-key load (:data:`DETAIL_COLUMNS`) to the load per resource and month.

    Parameters
    ----------
    detail : pandas.DataFrame
        As ``capacity_load(..., detail=True)`` returns it.
    resources : array-like, optional
        Resources to report in every month, loaded or not; default those of ``detail``.
    months : pandas.DatetimeIndex, optional
        Months to report; default those of ``detail``.

    Returns
    -------
    pandas.DataFrame
        :data:`LOAD_COLUMNS`, one row per resource and month, zero where nothing loads it.
    """
    totals = detail.groupby(["resource", "ds"], sort=False)["load"].sum()
    resources = np.sort(pd.unique(np.asarray(detail["resource"] if resources is None else resources)))
    months = pd.DatetimeIndex(np.sort(detail["ds"].unique()) if months is None else months)
    grid = pd.MultiIndex.from_product([resources, months], names=["resource", "ds"])
    return totals.reindex(grid, fill_value=0.0).reset_index()[LOAD_COLUMNS]


def utilisation(load: pd.DataFrame, capacity: pd.DataFrame) -> pd.DataFrame:
    """Hold the load against capacity, resource by resource and month by month.

    Parameters
    ----------
    load : pandas.DataFrame
        :data:`LOAD_COLUMNS` (from :func:`capacity_load`); its months are the plan's.
    capacity : pandas.DataFrame
        Validated capacity (:func:`~sopforecast.supply.inputs.validate_capacity`):
        ``resource, ds, capacity``; rows outside the load's months are left out.

    Returns
    -------
    pandas.DataFrame
        :data:`UTILISATION_COLUMNS` for every resource-month of either frame within the
        plan's months, sorted. ``utilisation`` is ``load / capacity``; ``inf`` for load in a
        month of zero capacity (a shutdown), 0 for no load in such a month, and NaN (with
        ``capacity`` NaN) where the capacity table has no row: missing, not zero.
    """
    months = load["ds"].unique()
    cap = capacity.loc[capacity["ds"].isin(months), ["resource", "ds", "capacity"]]
    out = load[LOAD_COLUMNS].merge(cap, on=["resource", "ds"], how="outer", sort=True)
    out["load"] = out["load"].fillna(0.0)
    value, room = out["load"].to_numpy(dtype=float), out["capacity"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(room > 0, value / room, np.where(value > 0, np.inf, 0.0))
    out["utilisation"] = np.where(np.isnan(room), np.nan, ratio)
    n_missing = int(np.isnan(room).sum())
    if n_missing:
        logger.info("%d resource-month(s) of the plan have no capacity row", n_missing)
    return out[UTILISATION_COLUMNS].reset_index(drop=True)


def capacity_exceptions(
    util: pd.DataFrame,
    detail: pd.DataFrame,
    *,
    over: float = 1.0,
    under: float = 0.5,
    top_drivers: int = 3,
) -> pd.DataFrame:
    """The resource-months a planner must look at, most severe first, with their drivers.

    Parameters
    ----------
    util : pandas.DataFrame
        :data:`UTILISATION_COLUMNS` (from :func:`utilisation`).
    detail : pandas.DataFrame
        :data:`DETAIL_COLUMNS` (from ``capacity_load(..., detail=True)``).
    over : float, default 1.0
        Utilisation above which a resource-month is overloaded.
    under : float, default 0.5
        Utilisation below which a resource-month with capacity is under-used; 0 reports none.
        A month of zero capacity and no load (a shutdown nobody needs) is neither.
    top_drivers : int, default 3
        How many keys to name as drivers, by load.

    Returns
    -------
    pandas.DataFrame
        :data:`EXCEPTION_COLUMNS`. ``kind`` is ``overload``, ``no capacity`` (no capacity
        row for the month) or ``underused``; ``gap`` is ``load - capacity``: the shortfall
        of an overload (positive), the spare capacity of an under-used month (negative),
        the whole load where capacity is missing. ``drivers`` names the top keys with their
        share of the month's load: ``SKU-1 (42%), SKU-2 (30%)``. Sorted by kind (as in
        :data:`KINDS`), then overloads by utilisation (highest first), missing capacity by
        load (highest first), under-use by utilisation (lowest first).

    Raises
    ------
    ConfigError
        When the thresholds are not ``0 <= under < over`` or ``top_drivers`` is negative.
    """
    _check_thresholds(over, under, top_drivers)
    room = util["capacity"]
    kind = pd.Series(
        np.select(
            [room.isna(), util["utilisation"] > over, (util["utilisation"] < under) & (room > 0)],
            ["no capacity", "overload", "underused"],
            default="",
        ),
        index=util.index,
    )
    hit = util.loc[kind != ""].assign(kind=kind[kind != ""])
    hit["gap"] = hit["load"] - hit["capacity"].fillna(0.0)
    rank = hit["kind"].map({k: i for i, k in enumerate(KINDS)})
    severity = np.select(
        [hit["kind"] == "overload", hit["kind"] == "no capacity"],
        [-hit["utilisation"], -hit["load"]],
        default=hit["utilisation"],
    )
    hit = hit.assign(_rank=rank, _severity=severity).sort_values(
        ["_rank", "_severity", "resource", "ds"], kind="stable"
    )
    hit = hit.merge(_drivers(detail, hit[["resource", "ds"]], top_drivers), on=["resource", "ds"], how="left")
    hit["drivers"] = hit["drivers"].fillna("")
    return hit[EXCEPTION_COLUMNS].reset_index(drop=True)


def _check_thresholds(over: float, under: float, top_drivers: int) -> None:
    if not (0 <= under < over):
        raise ConfigError(
            f"capacity thresholds under={under} and over={over}: under-use must lie below "
            "overload, both as fractions of capacity (e.g. under 0.5, over 1.0).",
            setting="under" if under < 0 else "over",
        )
    if top_drivers < 0 or int(top_drivers) != top_drivers:
        raise ConfigError(
            f"top_drivers={top_drivers}: give how many keys to name per exception, 0 or more.",
            setting="top_drivers",
        )


def _drivers(detail: pd.DataFrame, months: pd.DataFrame, top: int) -> pd.DataFrame:
    """``resource, ds, drivers``: the ``top`` keys by load of each given resource-month as
    text, each with its share of the month's load (``A (60%), B (40%)``)."""
    rows = detail.merge(months, on=["resource", "ds"], how="inner")
    rows = rows[rows["load"] > 0]
    if rows.empty or top == 0:
        return pd.DataFrame(columns=["resource", "ds", "drivers"]).astype({"ds": "datetime64[ns]"})
    total = rows.groupby(["resource", "ds"], sort=False)["load"].transform("sum")
    rows = rows.assign(share=rows["load"] / total, _order=-rows["load"])
    rows = rows.sort_values(["resource", "ds", "_order", "key"], kind="stable")
    rows = rows[rows.groupby(["resource", "ds"], sort=False).cumcount() < top]
    pct = (rows["share"] * 100).round().astype(int).astype(str)
    text = rows["key"].astype(str) + " (" + pct + "%)"
    return (
        text.groupby([rows["resource"], rows["ds"]], sort=False)
        .agg(", ".join)
        .rename("drivers")
        .reset_index()
    )
