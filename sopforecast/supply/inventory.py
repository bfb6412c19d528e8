"""Projected inventory month by month, and its exceptions (stock-outs, stock below safety).

:func:`project_inventory` rolls each key's stock forward from its on hand at the plan's
start, with planned receipts in and the final demand plan out, by cumulative sums per key:

``closing[t] = on_hand + sum(supply[..t]) - sum(demand[..t])``, ``opening[t] = closing[t-1]``.

Unmet demand is carried as a backlog (negative closing stock), as a projected available
balance shows it: the negative closing is the cumulative shortfall still to be made up, and
the months after a stock-out keep showing it until supply catches up.

Without a supply plan the plan is made to forecast (supply = demand). With a ``batch_size``
the *cumulative* supply is rounded up to whole batches, ``ceil(cum demand / batch) * batch``,
and each month receives the difference: every receipt is a whole number of batches, and the
supply never runs more than one batch ahead of demand (rounding each month up on its own
would pile a batch of excess on every month).

:func:`inventory_exceptions` gives one row per key and *episode* (a run of consecutive
months of the same kind): a planner acts once per episode (one expedite, one extra batch),
so what they need is when it starts, how long it lasts and the largest gap, not eighteen
rows for one SKU that bury the next one.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import DataError, format_examples

__all__ = ["project_inventory", "inventory_exceptions", "STOCKOUT", "BELOW_SAFETY"]

logger = logging.getLogger(__name__)

STOCKOUT = "stockout"
BELOW_SAFETY = "below safety stock"
_TOL = 1e-9

_COLUMNS = [
    "key",
    "ds",
    "opening",
    "supply",
    "demand",
    "closing",
    "safety_stock",
    "below_safety",
    "stockout",
    "gap",
]


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks the columns {missing}; found {list(frame.columns)}. Expected {columns}."
        )


def _demand(lines: pd.DataFrame, keys: pd.Series) -> pd.DataFrame:
    """``key, ds, demand``: the ``final`` plan of each key's line."""
    _require(lines, ["unique_id", "ds", "final"], "The plan lines")
    part = lines.loc[lines["unique_id"].astype(str).isin(set(keys)), ["unique_id", "ds", "final"]]
    demand = pd.DataFrame(
        {
            "key": part["unique_id"].astype(str),
            "ds": pd.to_datetime(part["ds"]),
            "demand": part["final"].astype(float).fillna(0.0),
        }
    )
    missing = sorted(set(keys) - set(demand["key"]))
    if missing:
        logger.warning(
            "%d inventory keys have no line in the plan and are not projected: %s",
            len(missing),
            format_examples(missing),
        )
    return demand.sort_values(["key", "ds"], kind="stable").reset_index(drop=True)


def _batched(demand: pd.DataFrame, batch: pd.Series) -> np.ndarray:
    """Make-to-forecast receipts, cumulative supply rounded up to whole batches."""
    cum = demand.groupby("key", sort=False)["demand"].cumsum().to_numpy()
    size = demand["key"].map(batch).to_numpy(dtype=float)
    use = np.isfinite(size) & (size > 0)
    rounded = np.where(use, np.ceil(cum / np.where(use, size, 1.0) - _TOL) * np.where(use, size, 1.0), cum)
    before = pd.Series(rounded).groupby(demand["key"].to_numpy(), sort=False).shift(fill_value=0.0)
    return rounded - before.to_numpy()


def _supply(demand: pd.DataFrame, inventory: pd.DataFrame, supply: pd.DataFrame | None) -> np.ndarray:
    if supply is None:
        if "batch_size" in inventory.columns:
            batch = pd.to_numeric(inventory["batch_size"], errors="coerce")
            return _batched(demand, pd.Series(batch.to_numpy(), index=inventory["key"].astype(str)))
        return demand["demand"].to_numpy()
    _require(supply, ["key", "ds", "supply"], "The planned supply")
    receipts = (
        supply.assign(key=supply["key"].astype(str), ds=pd.to_datetime(supply["ds"]))
        .groupby(["key", "ds"])["supply"]
        .sum()
    )
    joined = pd.MultiIndex.from_arrays([demand["key"], demand["ds"]])
    outside = receipts.index.difference(joined)
    if len(outside):
        logger.info(
            "%d planned receipts fall outside the plan's keys or months and are ignored", len(outside)
        )
    return receipts.reindex(joined).fillna(0.0).to_numpy(dtype=float)


def project_inventory(
    lines: pd.DataFrame,
    inventory: pd.DataFrame,
    safety: pd.DataFrame | None = None,
    *,
    supply: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Projected stock of every inventory key, month by month over the plan horizon.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines ``unique_id, ds, final`` (any levels; a key's demand is its own line's
        ``final``).
    inventory : pandas.DataFrame
        ``key, on_hand`` and optionally ``batch_size`` (used only when ``supply`` is None).
    safety : pandas.DataFrame, optional
        ``key, safety_stock`` (e.g. :func:`~sopforecast.supply.safety.safety_stock`); none:
        zero safety stock. A NaN safety stock (no backtest) flags stock-outs only.
    supply : pandas.DataFrame, optional
        Planned receipts ``key, ds, supply``; months absent receive nothing. Default: the
        unconstrained plan, made to forecast (supply = demand, rounded to batches).

    Returns
    -------
    pandas.DataFrame
        ``key, ds, opening, supply, demand, closing, safety_stock, below_safety, stockout,
        gap``, sorted by key and month. ``closing`` below zero is the backlog of unmet demand;
        ``stockout``: closing below zero; ``below_safety``: closing below the safety stock
        (stock-outs included); ``gap``: units that would bring the closing stock up to the
        safety stock (0 when it is there).
    """
    _require(inventory, ["key", "on_hand"], "The inventory")
    keys = inventory["key"].astype(str)
    demand = _demand(lines, keys)
    if demand.empty:
        return pd.DataFrame(columns=_COLUMNS)
    receipts = _supply(demand, inventory, supply)
    on_hand = demand["key"].map(pd.Series(inventory["on_hand"].to_numpy(dtype=float), index=keys)).fillna(0.0)
    net = pd.Series(receipts - demand["demand"].to_numpy(), index=demand.index)
    closing = on_hand + net.groupby(demand["key"], sort=False).cumsum()
    opening = closing - net
    if safety is not None:
        _require(safety, ["key", "safety_stock"], "The safety stock")
        level = pd.Series(safety["safety_stock"].to_numpy(dtype=float), index=safety["key"].astype(str))
        stock = demand["key"].map(level)
    else:
        stock = pd.Series(0.0, index=demand.index)
    return pd.DataFrame(
        {
            "key": demand["key"],
            "ds": demand["ds"],
            "opening": opening,
            "supply": receipts,
            "demand": demand["demand"],
            "closing": closing,
            "safety_stock": stock,
            "below_safety": (closing < stock.fillna(0.0) - _TOL),
            "stockout": closing < -_TOL,
            "gap": (stock.fillna(0.0) - closing).clip(lower=0.0),
        }
    )


def _prices(prices, frame: pd.DataFrame) -> pd.Series | None:
    """Price of each row: a Series by key, or a frame ``unique_id|key, [ds,] price``."""
    if prices is None:
        return None
    if isinstance(prices, pd.Series):
        return frame["key"].map(prices.set_axis(prices.index.astype(str)))
    key = "key" if "key" in prices.columns else "unique_id"
    _require(prices, [key, "price"], "The prices")
    table = prices.assign(key=prices[key].astype(str))
    if "ds" in table.columns:
        table = table.assign(ds=pd.to_datetime(table["ds"])).drop_duplicates(["key", "ds"])
        by_month = frame.merge(table[["key", "ds", "price"]], on=["key", "ds"], how="left")["price"]
        return pd.Series(by_month.to_numpy(), index=frame.index)
    return frame["key"].map(table.drop_duplicates("key").set_index("key")["price"])


def inventory_exceptions(projection: pd.DataFrame, *, prices=None) -> pd.DataFrame:
    """One row per key and episode of stock-out or of stock below safety stock.

    Parameters
    ----------
    projection : pandas.DataFrame
        Output of :func:`project_inventory`.
    prices : pandas.Series or pandas.DataFrame, optional
        Unit price per key (a Series), or the plan lines ``unique_id, ds, price`` (price of
        each month). With prices the rows are ranked by the money at stake.

    Returns
    -------
    pandas.DataFrame
        ``key, ds, kind, closing, safety_stock, gap, last, months`` (+ ``price, value``):
        ``ds`` is the episode's first month, ``last`` its last, ``kind`` ``stockout`` (closing
        below zero) or ``below safety stock``; ``closing``, ``safety_stock`` and ``gap`` are
        those of its worst month (largest gap); ``value`` is ``gap * price``. Sorted by
        ``value`` (or ``gap``) descending, then first month.
    """
    _require(
        projection,
        ["key", "ds", "closing", "safety_stock", "below_safety", "stockout", "gap"],
        "The projection",
    )
    columns = ["key", "ds", "kind", "closing", "safety_stock", "gap", "last", "months"]
    if prices is not None:
        columns += ["price", "value"]
    flagged = projection[projection["below_safety"] | projection["stockout"]]
    if flagged.empty:
        return pd.DataFrame(columns=columns)
    frame = flagged.sort_values(["key", "ds"], kind="stable").reset_index(drop=True)
    frame["key"] = frame["key"].astype(str)
    frame["kind"] = np.where(frame["stockout"], STOCKOUT, BELOW_SAFETY)
    month = frame["ds"].dt.year * 12 + frame["ds"].dt.month
    new = (
        (frame["key"] != frame["key"].shift())
        | (frame["kind"] != frame["kind"].shift())
        | (month - month.shift() != 1)
    )
    frame["episode"] = new.cumsum()
    price = _prices(prices, frame)
    if price is not None:
        frame["price"] = price.to_numpy()
    grouped = frame.groupby("episode", sort=False)
    worst = frame.loc[grouped["gap"].idxmax()].set_index("episode")
    out = worst[["key", "kind", "closing", "safety_stock", "gap", *(["price"] if price is not None else [])]]
    out = out.assign(
        ds=grouped["ds"].min(),
        last=grouped["ds"].max(),
        months=grouped["ds"].size(),
    )
    if price is not None:
        out = out.assign(value=out["gap"] * out["price"])
        order = ["value", "ds", "key"]
    else:
        order = ["gap", "ds", "key"]
    out = out.sort_values(order, ascending=[False, True, True], kind="stable", na_position="last")
    return out[columns].reset_index(drop=True)
