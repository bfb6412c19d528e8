"""What-if scenarios on a plan: the changes a meeting asks about, as pure functions.

A scenario is one named :data:`Change` on top of a plan version. Demand changes (an uplift
or cut on a subtree, a price change with an elasticity, a launch on a like item's profile, a
promotion through the forecaster) give new bottom plan lines; supply changes (more or less
capacity, a supplier delay) give a new capacity table. The planning layer applies them to a
stored version, keeps the changed lines in the plan store and balances each scenario
against supply; :func:`compare` lays the figures side by side.

Nothing here reads files, the store or MLflow; the promotion's re-forecast is done by the
caller (:mod:`sopforecast.planning.scenarios`) and comes in as two forecast frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from ..config import check_cycle
from ..errors import DataError, format_examples

__all__ = [
    "Change",
    "Uplift",
    "Promotion",
    "Launch",
    "PriceChange",
    "CapacityChange",
    "SupplierDelay",
    "DEMAND_KINDS",
    "SUPPLY_KINDS",
    "Elasticity",
    "parse_change",
    "describe",
    "in_window",
    "subtree",
    "uplift_lines",
    "price_lines",
    "launch_lines",
    "promotion_lines",
    "promotion_calendar",
    "capacity_after",
    "estimate_elasticity",
    "compare",
]

logger = logging.getLogger(__name__)


class _Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str | None = Field(None, description="First month changed, YYYY-MM; default the plan's first.")
    end: str | None = Field(None, description="Last month changed, YYYY-MM; default the plan's last.")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _month(cls, value):
        if value is None:
            return None
        if hasattr(value, "strftime"):
            return value.strftime("%Y-%m")
        return check_cycle(str(value))

    @model_validator(mode="after")
    def _window(self):
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Uplift(_Change):
    """A percent uplift (or cut, negative) on a subtree of the hierarchy for some months."""

    kind: Literal["uplift"] = "uplift"
    node: str = Field(..., description="The series whose bottom series change: any level's id, e.g. Paper.")
    pct: float = Field(..., gt=-100, le=1000, description="Percent change: 10 = +10%, -20 = -20%.")


class Promotion(_Change):
    """A promotion on a subtree: the promotion calendar says so, the forecaster reacts."""

    kind: Literal["promotion"] = "promotion"
    node: str = Field(..., description="The promoted series (any level's id).")
    promo: float = Field(1.0, description="Value of the promotion driver in the promoted months.")
    price_pct: float = Field(0.0, gt=-100, le=100, description="Price change during the promotion, percent.")

    @model_validator(mode="after")
    def _months(self):
        if not self.start:
            raise ValueError("a promotion needs its first month: start (YYYY-MM)")
        return self


class Launch(_Change):
    """A new product on a like item's profile, scaled."""

    kind: Literal["launch"] = "launch"
    item: str = Field(..., description="Name of the new item (its SKU), e.g. NEW-1.")
    like: str = Field(..., description="The like item: a bottom series id of the plan.")
    scale: float = Field(
        1.0, gt=0, le=100, description="The new item's volume as a multiple of the like item's."
    )

    @field_validator("item")
    @classmethod
    def _item_name(cls, value: str) -> str:
        from ..config import check_name

        return check_name(value)

    @model_validator(mode="after")
    def _months(self):
        if not self.start:
            raise ValueError("a launch needs its launch month: start (YYYY-MM)")
        return self


class PriceChange(_Change):
    """A price change on a subtree, with a price elasticity of demand."""

    kind: Literal["price"] = "price"
    node: str = Field(..., description="The series whose price changes (any level's id).")
    pct: float = Field(..., gt=-100, le=1000, description="Price change, percent.")
    elasticity: float | None = Field(
        None,
        le=0,
        ge=-10,
        description="Units change per price change (log-log); default estimated from history.",
    )


class CapacityChange(_Change):
    """More or less capacity on a resource for some months."""

    kind: Literal["capacity"] = "capacity"
    resource: str = Field(..., description="The resource, as in the capacity file.")
    pct: float = Field(..., ge=-100, le=1000, description="Percent change of its capacity: -100 = none.")


class SupplierDelay(_Change):
    """A supplier (a resource) delivers nothing for some months from ``start``."""

    kind: Literal["delay"] = "delay"
    resource: str = Field(..., description="The delayed supplier or resource, as in the capacity file.")
    months: int = Field(..., ge=1, le=36, description="Months it delivers nothing.")

    @model_validator(mode="after")
    def _months(self):
        if self.end:
            raise ValueError("a delay lasts its months from start; give months, not end")
        return self


Change = Annotated[
    Uplift | Promotion | Launch | PriceChange | CapacityChange | SupplierDelay, Field(discriminator="kind")
]
DEMAND_KINDS = ("uplift", "promotion", "launch", "price")
SUPPLY_KINDS = ("capacity", "delay")
_ADAPTER = TypeAdapter(Change)


def parse_change(raw: dict) -> Change:
    """A change from its mapping (``kind`` and its settings); pydantic errors on bad input."""
    return _ADAPTER.validate_python(raw)


def describe(change: Change) -> str:
    """One line a planner reads: what the scenario changes."""
    when = _when(change)
    if isinstance(change, Uplift):
        return f"{change.pct:+g}% demand on {change.node}{when}"
    if isinstance(change, Promotion):
        price = f", price {change.price_pct:+g}%" if change.price_pct else ""
        return f"promotion on {change.node}{when}{price}"
    if isinstance(change, Launch):
        return f"launch {change.item} from {change.start} like {change.like} x{change.scale:g}"
    if isinstance(change, PriceChange):
        e = "estimated elasticity" if change.elasticity is None else f"elasticity {change.elasticity:g}"
        return f"price {change.pct:+g}% on {change.node}{when} ({e})"
    if isinstance(change, CapacityChange):
        return f"capacity {change.pct:+g}% on {change.resource}{when}"
    return (
        f"{change.resource} delivers nothing for {change.months} month(s) from {change.start or 'the start'}"
    )


def _when(change) -> str:
    if change.start and change.end:
        return f" {change.start}..{change.end}"
    if change.start:
        return f" from {change.start}"
    if change.end:
        return f" until {change.end}"
    return ""


def in_window(ds: pd.Series, start: str | None, end: str | None) -> np.ndarray:
    """Which months of ``ds`` fall within ``start..end`` (YYYY-MM, either may be open)."""
    month = pd.to_datetime(ds).dt.strftime("%Y-%m")
    hit = np.ones(len(month), dtype=bool)
    if start:
        hit &= (month >= start).to_numpy()
    if end:
        hit &= (month <= end).to_numpy()
    return hit


def subtree(members: pd.DataFrame, node: str) -> list[str]:
    """The bottom series beneath ``node`` (``members``: ``unique_id, bottom`` pairs)."""
    found = members.loc[members["unique_id"] == node, "bottom"]
    if found.empty:
        near = [u for u in members["unique_id"].drop_duplicates() if node.lower() in str(u).lower()]
        hint = f" Close: {format_examples(near)}." if near else ""
        raise DataError(
            f"{node!r} is not a series of the plan.{hint} Name a series id of any level (plan show)."
        )
    return sorted(found.astype(str))


def _scaled(lines: pd.DataFrame, ids: list[str], hit: np.ndarray, factor: float, column: str) -> pd.DataFrame:
    out = lines.astype({column: float})  # whole units scaled are fractions (a copy)
    rows = out["unique_id"].isin(ids).to_numpy() & hit
    out.loc[rows, column] = out.loc[rows, column] * factor
    return out


def uplift_lines(bottom: pd.DataFrame, ids: list[str], change: Uplift) -> pd.DataFrame:
    """Bottom lines with ``final`` of ``ids`` raised (or cut) by ``pct`` in the window."""
    hit = in_window(bottom["ds"], change.start, change.end)
    return _scaled(bottom, ids, hit, 1 + change.pct / 100, "final")


def price_lines(bottom: pd.DataFrame, ids: list[str], change: PriceChange, elasticity: float) -> pd.DataFrame:
    """Bottom lines under a price change: ``price * (1 + pct)`` and units ``* (1 + pct) ** e``."""
    hit = in_window(bottom["ds"], change.start, change.end)
    factor = 1 + change.pct / 100
    out = _scaled(bottom, ids, hit, factor**elasticity, "final")
    if "price" in out:
        out = _scaled(out, ids, hit, factor, "price")
    return out


def launch_lines(bottom: pd.DataFrame, item_id: str, change: Launch) -> pd.DataFrame:
    """Plan lines of a new item: the like item's final from the launch month on, scaled;
    its price and cost are the like item's."""
    like = bottom[bottom["unique_id"] == change.like]
    if like.empty:
        raise DataError(
            f"like item {change.like!r} is not a bottom series of the plan; name one "
            f"(e.g. {format_examples(bottom['unique_id'].drop_duplicates(), 3)})."
        )
    if item_id in set(bottom["unique_id"]):
        raise DataError(f"{item_id!r} is already a series of the plan; give the new item another name.")
    new = like.copy()
    new["unique_id"] = item_id
    live = in_window(new["ds"], change.start, change.end)
    new["final"] = np.where(live, new["final"] * change.scale, 0.0)
    for column in ("statistical", "consensus", "naive"):
        if column in new:
            new[column] = np.nan
    return new.reset_index(drop=True)


def promotion_calendar(
    future: pd.DataFrame,
    ids: list[str],
    change: Promotion,
    driver: str = "promo",
    price: str | None = "price",
) -> pd.DataFrame:
    """The drivers' planned values with the promotion in: ``driver`` set for ``ids`` in the
    window, and the price moved by ``price_pct`` there."""
    if driver not in future:
        raise DataError(
            f"the promotion calendar has no {driver!r} column; a promotion scenario needs the "
            "promotion driver the forecast was fitted with."
        )
    out = future.copy()
    hit = out["unique_id"].astype(str).isin(ids).to_numpy() & in_window(out["ds"], change.start, change.end)
    out.loc[hit, driver] = change.promo
    if change.price_pct and price and price in out:
        out.loc[hit, price] = out.loc[hit, price] * (1 + change.price_pct / 100)
    return out


def promotion_lines(
    bottom: pd.DataFrame, ids: list[str], base: pd.DataFrame, promoted: pd.DataFrame, change: Promotion
) -> pd.DataFrame:
    """Bottom lines with the forecaster's reaction to a promotion added to ``final``.

    ``base`` and ``promoted`` are the champion's forecasts (``unique_id, ds, forecast``)
    under today's calendar and the promoted one: the difference (uplift in the promoted
    months, any dip after) moves the promoted series' final plan, never below zero. A price
    change during the promotion moves their price in those months.
    """
    delta = (
        promoted.set_index(["unique_id", "ds"])["forecast"] - base.set_index(["unique_id", "ds"])["forecast"]
    )
    out = bottom.copy()
    key = pd.MultiIndex.from_arrays([out["unique_id"].astype(str), pd.to_datetime(out["ds"])])
    move = pd.Series(delta.reindex(key).to_numpy(), index=out.index).fillna(0.0)
    move[~out["unique_id"].isin(ids)] = 0.0
    out["final"] = (out["final"] + move).clip(lower=0.0)
    if change.price_pct and "price" in out:
        hit = in_window(out["ds"], change.start, change.end) & out["unique_id"].isin(ids).to_numpy()
        out.loc[hit, "price"] = out.loc[hit, "price"] * (1 + change.price_pct / 100)
    return out


def capacity_after(capacity: pd.DataFrame, change: CapacityChange | SupplierDelay) -> pd.DataFrame:
    """The capacity table under a capacity change or a supplier delay."""
    rows = capacity["resource"].astype(str) == change.resource
    if not rows.any():
        raise DataError(
            f"resource {change.resource!r} is not in the capacity file; name one of "
            f"{format_examples(sorted(capacity['resource'].astype(str).unique()))}."
        )
    out = capacity.astype({"capacity": float})  # a copy; whole hours scaled are fractions
    if isinstance(change, CapacityChange):
        hit = rows.to_numpy() & in_window(out["ds"], change.start, change.end)
        out.loc[hit, "capacity"] = out.loc[hit, "capacity"] * (1 + change.pct / 100)
        return out
    first = pd.Timestamp(change.start) if change.start else pd.to_datetime(out.loc[rows, "ds"]).min()
    last = first + pd.DateOffset(months=change.months)
    ds = pd.to_datetime(out["ds"])
    hit = rows.to_numpy() & (ds >= first).to_numpy() & (ds < last).to_numpy()
    out.loc[hit, "capacity"] = 0.0
    return out


@dataclass(frozen=True)
class Elasticity:
    """A price elasticity estimated from history (log-log, within series)."""

    value: float
    observations: int
    series: int
    stderr: float
    basis: str = "price moves, promotions held fixed"


def estimate_elasticity(
    history: pd.DataFrame,
    *,
    ids: list[str] | None = None,
    price: str = "price",
    promo: str | None = "promo",
    min_observations: int = 24,
) -> Elasticity | None:
    """The price elasticity of demand from the history's price driver.

    Within-series regression of ``log(y)`` on ``log(price)`` (each series' mean, its own
    linear trend and the month of year removed, the promotion driver held fixed when
    present), over months with demand.
    When list-price moves alone give no negative elasticity (they often only follow
    inflation, with demand growing anyway) and the history has promotions, the price cuts
    of the promotions are the evidence: the fit is made again without the promotion term,
    and ``basis`` says so. Returns None when the history has no price driver, too few months
    with price moving, or no negative estimate (demand that rises with price is no elasticity).
    """
    if price not in history:
        return None
    frame = history if ids is None else history[history["unique_id"].isin(ids)]
    frame = frame[(frame["y"] > 0) & (frame[price] > 0)].copy()
    if len(frame) < min_observations:
        return None
    frame["ly"], frame["lp"] = np.log(frame["y"]), np.log(frame[price])
    frame["moy"] = pd.to_datetime(frame["ds"]).dt.month
    columns = ["ly", "lp", *([promo] if promo and promo in frame else [])]
    if len(columns) == 3:  # a month without a recorded promotion had none (NaN fails the fit)
        frame[promo] = frame[promo].fillna(0.0)
    demeaned = frame[columns] - frame.groupby(["unique_id"])[columns].transform("mean")
    # each series' own trend out too (growth is not a price effect; list prices rise with it)
    ds = pd.to_datetime(frame["ds"])
    t = (ds.dt.year * 12 + ds.dt.month).astype(float)
    t = t - t.groupby(frame["unique_id"]).transform("mean")
    spread = (t * t).groupby(frame["unique_id"]).transform("sum").replace(0.0, np.nan)
    for c in columns:
        slope = (demeaned[c] * t).groupby(frame["unique_id"]).transform("sum") / spread
        demeaned[c] = demeaned[c] - slope.fillna(0.0) * t
    demeaned = demeaned - demeaned.groupby(frame["moy"]).transform("mean")
    X = demeaned[columns[1:]].to_numpy(dtype=float)
    y = demeaned["ly"].to_numpy(dtype=float)
    if np.abs(X[:, 0]).max() < 1e-9:
        return None  # the price never moves
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    # the series' means and trends and the month-of-year means were estimated too
    dof = max(len(y) - X.shape[1] - 2 * frame["unique_id"].nunique() - (frame["moy"].nunique() - 1), 1)
    cov = np.linalg.pinv(X.T @ X) * float(resid @ resid) / dof
    value, stderr = float(beta[0]), float(np.sqrt(max(cov[0, 0], 0.0)))
    if not np.isfinite(value) or value >= 0:
        if len(columns) == 3:  # the promotions' price cuts are the evidence left
            found = estimate_elasticity(
                history, ids=ids, price=price, promo=None, min_observations=min_observations
            )
            return None if found is None else replace(found, basis="promotion price cuts")
        return None
    return Elasticity(max(value, -10.0), int(len(y)), int(frame["unique_id"].nunique()), stderr)


def compare(figures: dict[str, dict], base: str = "base") -> pd.DataFrame:
    """Figures of the base plan and each scenario side by side, with each scenario's change
    against the base: one row per figure, one column per plan and ``<name> vs base``."""
    table = pd.DataFrame(figures)
    if base in table:
        for name in table.columns:
            if name != base:
                table[f"{name} vs {base}"] = pd.to_numeric(table[name], errors="coerce") - pd.to_numeric(
                    table[base], errors="coerce"
                )
    table.index.name = "figure"
    return table.reset_index()
