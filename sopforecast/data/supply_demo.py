"""Seeded supply inputs for the demo data: resources with monthly capacity, the routing of
each SKU to its production line, and the inventory position of each SKU-location.

Made from the demo history itself so the numbers fit the demand: each category is made on
its own line (hours), sized to the history's average monthly load with some headroom, so
the seasonal peak of a category and one planned shutdown bind and the balance review has
something to show: capacity exceptions, a constrained plan, unmet demand. The same
arguments always give the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .hierarchy import PATH_SEP

__all__ = ["DemoSupply", "generate_supply", "SUPPLY_KEYS"]

SUPPLY_KEYS = ["category", "family", "sku", "region", "channel"]
_SKU = ["category", "family", "sku"]


@dataclass(frozen=True)
class DemoSupply:
    """The demo's supply inputs, in the columns the supply readers take.

    ``capacity``: ``resource, ds, capacity, unit``; ``routing``: ``key, resource, rate,
    priority`` (keys are SKU-level series, ``category/family/sku``); ``inventory``: ``key,
    on_hand, lead_time, service_level, batch_size`` (keys are bottom SKU-locations).
    """

    capacity: pd.DataFrame
    routing: pd.DataFrame
    inventory: pd.DataFrame


def generate_supply(
    history: pd.DataFrame,
    *,
    start: str | pd.Timestamp,
    months: int = 18,
    headroom: float = 1.0,
    shutdown: tuple[int, float] = (1, 0.2),
    seed: int = 0,
) -> DemoSupply:
    """Supply inputs that fit a demo history (:func:`~.datasets.generate_plan`'s).

    Parameters
    ----------
    history : pandas.DataFrame
        Demo history: ``category, family, sku, region, channel, ds, y`` (and drivers).
    start : str or Timestamp
        The first plan month: capacity is given for ``months`` months from it.
    months : int, default 18
        Months of capacity.
    headroom : float, default 1.0
        Each line's capacity as a multiple of its busiest month's load in the last 12
        months of history: growth beyond that and the planned shutdown bind.
    shutdown : (int, float), default (1, 0.2)
        A planned shutdown: in plan month ``shutdown[0]`` (0 = the first) the busiest line
        runs at ``shutdown[1]`` of its capacity.
    seed : int, default 0
        The random rates, priorities and stock positions.

    Returns
    -------
    DemoSupply
    """
    rng = np.random.default_rng(seed)
    recent = history[history["ds"] > history["ds"].max() - pd.DateOffset(months=12)]
    sku = recent.groupby(_SKU, sort=True)["y"].sum().div(12).rename("monthly").reset_index()
    sku["key"] = sku[_SKU].astype(str).agg(PATH_SEP.join, axis=1)
    sku["resource"] = "Line " + sku["category"].astype(str)
    sku["rate"] = np.round(rng.uniform(0.02, 0.08, len(sku)), 3)  # hours per unit
    # the top fifth of SKUs by volume are served first when a line is short
    sku["priority"] = np.where(sku["monthly"].rank(ascending=False, method="first") <= len(sku) / 5, 1, 2)

    rates = sku.set_index(_SKU)["rate"]
    monthly = recent.groupby([*_SKU, "ds"], sort=True)["y"].sum().reset_index()
    monthly["hours"] = (
        monthly["y"].to_numpy() * rates.reindex(pd.MultiIndex.from_frame(monthly[_SKU])).to_numpy()
    )
    monthly["resource"] = "Line " + monthly["category"].astype(str)
    hours = monthly.groupby(["resource", "ds"])["hours"].sum().groupby(level="resource").max()
    ds = pd.date_range(pd.Timestamp(start), periods=months, freq="MS")
    capacity = pd.DataFrame(
        {
            "resource": np.repeat(hours.index.to_numpy(), months),
            "ds": np.tile(ds, len(hours)),
            "capacity": np.repeat(np.round(hours.to_numpy() * headroom, 1), months),
            "unit": "hours",
        }
    )
    month, share = shutdown
    if 0 <= month < months:
        busiest = hours.idxmax()
        hit = (capacity["resource"] == busiest) & (capacity["ds"] == ds[month])
        capacity.loc[hit, "capacity"] = np.round(capacity.loc[hit, "capacity"] * share, 1)

    bottom = recent.groupby(SUPPLY_KEYS, sort=True)["y"].sum().div(12).rename("monthly").reset_index()
    key = bottom[SUPPLY_KEYS].astype(str).agg(PATH_SEP.join, axis=1)
    high = bottom[_SKU].astype(str).agg(PATH_SEP.join, axis=1).isin(sku.loc[sku["priority"] == 1, "key"])
    inventory = pd.DataFrame(
        {
            "key": key,
            "on_hand": np.round(bottom["monthly"] * rng.uniform(0.5, 1.5, len(bottom))),
            "lead_time": rng.integers(1, 3, len(bottom)),
            "service_level": np.where(high, 0.95, 0.90),
            "batch_size": np.where(rng.random(len(bottom)) < 0.3, 50, np.nan),
        }
    )
    routing = sku[["key", "resource", "rate", "priority"]].reset_index(drop=True)
    return DemoSupply(capacity=capacity, routing=routing, inventory=inventory.reset_index(drop=True))
