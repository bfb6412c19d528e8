"""The balance review: one demand plan held against capacity and inventory, in one call.

:func:`balance` chains the pure steps of this package over one plan's lines:

1. the capacity check on the final plan (:mod:`.capacity`): load, utilisation, exceptions;
2. safety stock per inventory key from the delivered forecast's own backtest errors at its
   lead time (:mod:`.safety`);
3. the constrained supply plan (:mod:`.constrained`, HiGHS): what can be made, by priority,
   with pre-build, and what demand is left unmet;
4. projected inventory from on hand, the constrained plan's supply and the final demand,
   with stock-outs and months below safety stock (:mod:`.inventory`);
5. the key figures and one list of decisions to take, ranked by the money at stake.

Frames in, frames out: nothing is read or written here. The planning layer gives the plan
lines (and which bottom series make up each routed key), the runner and the CLI store and
print the result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import DataError, format_examples
from .capacity import capacity_exceptions, capacity_load, resource_load, utilisation
from .constrained import ConstrainedPlan, constrained_plan
from .inventory import STOCKOUT, inventory_exceptions, project_inventory
from .safety import lead_time_errors, safety_stock

__all__ = [
    "BalanceSettings",
    "Balance",
    "DECISION_COLUMNS",
    "FIGURES",
    "balance",
    "expand_routing",
    "plan_money",
]

logger = logging.getLogger(__name__)

DECISION_COLUMNS = ["rank", "kind", "subject", "ds", "last", "gap", "at_stake", "action", "detail"]

# the key figures of a balance, in the order the CLI, the run and the report show them
FIGURES = (
    "units",
    "revenue",
    "margin",
    "overloaded_resource_months",
    "underused_resource_months",
    "max_utilisation",
    "binding_resource_months",
    "unmet_units",
    "revenue_at_stake",
    "revenue_served",
    "fill_rate",
    "stockout_months",
    "below_safety_months",
    "safety_stock_units",
    "closing_stock_end",
)


class BalanceSettings(BaseModel):
    """Thresholds and limits of the balance review."""

    model_config = ConfigDict(extra="forbid")

    over: float = Field(1.0, gt=0, description="Utilisation above which a resource-month is overloaded.")
    under: float = Field(
        0.5, ge=0, description="Utilisation below which a resource-month is badly under-used (0: never)."
    )
    top_drivers: int = Field(3, ge=0, description="Series named as drivers of each capacity exception.")
    storage: float | None = Field(
        None, gt=0, description="Limit on total stock held at any month end (units); default none."
    )
    time_limit: float = Field(
        60.0, gt=0, description="Seconds HiGHS may take before the greedy fallback plans instead."
    )
    batches: Literal["round", "milp"] = Field(
        "round",
        description="Batch sizes: the LP rounded to whole batches (fast), or milp (exact, slow).",
    )

    @model_validator(mode="after")
    def _order(self) -> BalanceSettings:
        if self.under >= self.over:
            raise ValueError(f"under ({self.under}) must be below over ({self.over})")
        return self


@dataclass
class Balance:
    """A plan held against supply.

    Attributes
    ----------
    utilisation : ``resource, ds, load, capacity, utilisation`` of the unconstrained final plan.
    capacity_exceptions : overloaded, capacity-less and under-used resource-months, with drivers.
    safety : safety stock per inventory key (``key, safety_stock, safety_stock_normal, ...``).
    plan : the constrained supply plan (supply, unmet demand, load per resource, its rule).
    projection : projected inventory per key and month from the constrained supply.
    inventory_exceptions : stock-out and below-safety episodes, with month and gap.
    decisions : every exception as one list ranked by the money at stake (:data:`DECISION_COLUMNS`).
    figures : the key figures (:data:`FIGURES`).
    """

    utilisation: pd.DataFrame
    capacity_exceptions: pd.DataFrame
    safety: pd.DataFrame
    plan: ConstrainedPlan
    projection: pd.DataFrame
    inventory_exceptions: pd.DataFrame
    decisions: pd.DataFrame
    figures: dict[str, float | None] = field(default_factory=dict)

    @property
    def rule(self) -> str:
        """The allocation rule the constrained plan follows, in words."""
        return str(self.plan.summary.get("rule", ""))

    def monthly(self) -> pd.DataFrame:
        """Month totals for charts and the report: demand, served, unmet, revenue at stake,
        closing stock and safety stock over every inventory key."""
        unmet = self.plan.unmet.groupby("ds")[["demand", "served", "unmet", "revenue_at_stake"]].sum()
        stock = self.projection.groupby("ds").agg(
            closing=("closing", lambda s: float(s.clip(lower=0).sum())),
            safety_stock=("safety_stock", "sum"),
            stockouts=("stockout", "sum"),
            below_safety=("below_safety", "sum"),
        )
        out = unmet.join(stock, how="outer").fillna(0.0)
        out.index.name = "ds"
        return out.reset_index()


def expand_routing(routing: pd.DataFrame, members: pd.DataFrame | None) -> pd.DataFrame:
    """The routing on the plan's bottom series: a row for a SKU (any aggregate) applies to
    every bottom series beneath it, with its rate and priority.

    Parameters
    ----------
    routing : pandas.DataFrame
        ``key, resource, rate, priority``; a key is any ``unique_id`` of the plan.
    members : pandas.DataFrame, optional
        ``unique_id, bottom``: the bottom series of every series of the plan (a bottom series
        names itself). None: routing keys are bottom series already.

    Raises
    ------
    DataError
        When a resource is routed both from a series and from one of its ancestors (the load
        would be counted twice), naming the keys.
    """
    if members is None or routing.empty:
        return routing.reset_index(drop=True)
    spread = routing.merge(members, left_on="key", right_on="unique_id", how="left", sort=False)
    unknown = spread["bottom"].isna()
    if unknown.any():
        logger.info(
            "%d routed key(s) are not series of the plan and load nothing: %s",
            spread.loc[unknown, "key"].nunique(),
            format_examples(spread.loc[unknown, "key"].unique()),
        )
    spread = spread[~unknown]
    twice = spread.duplicated(["bottom", "resource"], keep=False)
    if twice.any():
        clash = spread[twice].groupby(["bottom", "resource"])["key"].agg(lambda k: " and ".join(sorted(k)))
        example = format_examples([f"{res}: {keys}" for (_, res), keys in clash.head(5).items()])
        raise DataError(
            f"The routing loads a resource twice for the same series ({example}): a key and one of its "
            "ancestors name the same resource. Keep one row per resource: the SKU's, or each "
            "SKU-location's."
        )
    out = spread.drop(columns=["key", "unique_id"]).rename(columns={"bottom": "key"})
    return out[["key", *[c for c in routing.columns if c != "key"]]].reset_index(drop=True)


def plan_money(lines: pd.DataFrame, column: str = "final") -> dict[str, float | None]:
    """Units, revenue and margin of bottom plan lines (``price``, ``unit_cost`` when known)."""
    units = float(lines[column].sum())
    revenue = margin = None
    if "price" in lines and lines["price"].notna().any():
        revenue = float((lines[column] * lines["price"]).sum())
        if "unit_cost" in lines and lines["unit_cost"].notna().any():
            margin = float((lines[column] * (lines["price"] - lines["unit_cost"])).sum())
    return {"units": units, "revenue": revenue, "margin": margin}


def _safety(backtest: pd.DataFrame | None, inventory: pd.DataFrame) -> pd.DataFrame:
    if backtest is None or backtest.empty or "lead_time" not in inventory:
        logger.warning("No backtest of the delivered forecast: no safety stock; stock-outs only are flagged")
        return pd.DataFrame(
            {"key": inventory["key"].astype(str), "safety_stock": np.nan, "method": "no backtest"}
        )
    lead = pd.Series(inventory["lead_time"].to_numpy(), index=inventory["key"].astype(str))
    errors = lead_time_errors(backtest[backtest["unique_id"].isin(lead.index)], lead_time=lead)
    return safety_stock(errors, inventory)


def _utilisation_text(value: float) -> str:
    if np.isnan(value):  # no capacity row for the month
        return "no capacity given"
    if np.isinf(value):  # load in a month of zero capacity
        return "capacity 0"
    return f"utilisation {value:.0%}"


def _decisions(
    exceptions: pd.DataFrame, stock: pd.DataFrame, plan: ConstrainedPlan, routing: pd.DataFrame
) -> pd.DataFrame:
    """Capacity and inventory exceptions as one list, most money at stake first."""
    unmet = plan.unmet[plan.unmet["unmet"] > 0]
    at_stake = (
        unmet.merge(routing[["key", "resource"]], on="key")
        .groupby(["resource", "ds"])["revenue_at_stake"]
        .sum()
    )
    rows = []
    for rec in exceptions.itertuples(index=False):
        money = float(at_stake.get((rec.resource, rec.ds), 0.0))
        if rec.kind == "overload":
            action = "add capacity (overtime, a shift, a subcontractor) or pre-build in earlier months"
        elif rec.kind == "no capacity":
            action = "give this resource's capacity for the month in the capacity file"
        else:
            action = "pull work forward, lend the capacity or plan less of it"
        rows.append(
            {
                "kind": rec.kind,
                "subject": rec.resource,
                "ds": rec.ds,
                "last": rec.ds,
                "gap": float(rec.gap),
                "at_stake": money,
                "action": action,
                "detail": f"{_utilisation_text(rec.utilisation)}; drivers {rec.drivers}"
                if rec.drivers
                else "",
            }
        )
    for rec in stock.itertuples(index=False):
        value = float(getattr(rec, "value", np.nan))
        action = (
            "expedite supply or agree who is served first"
            if rec.kind == STOCKOUT
            else f"raise supply by {rec.gap:,.0f} units before {pd.Timestamp(rec.ds):%Y-%m}"
        )
        rows.append(
            {
                "kind": rec.kind,
                "subject": rec.key,
                "ds": rec.ds,
                "last": rec.last,
                "gap": float(rec.gap),
                "at_stake": 0.0 if np.isnan(value) else value,
                "action": action,
                "detail": f"{rec.months} month(s); closing {rec.closing:,.0f} against safety stock "
                f"{rec.safety_stock:,.0f}"
                if pd.notna(rec.safety_stock)
                else f"{rec.months} month(s); closing {rec.closing:,.0f}",
            }
        )
    out = pd.DataFrame(rows, columns=DECISION_COLUMNS[1:])
    if out.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    out = out.sort_values(["at_stake", "gap"], ascending=[False, False], kind="stable").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def balance(
    lines: pd.DataFrame,
    capacity: pd.DataFrame,
    routing: pd.DataFrame,
    inventory: pd.DataFrame,
    *,
    members: pd.DataFrame | None = None,
    backtest: pd.DataFrame | None = None,
    settings: BalanceSettings | None = None,
) -> Balance:
    """Hold a demand plan against capacity and inventory.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines of every level: ``unique_id, ds, final`` and ``price`` (``unit_cost``
        for margin). Bottom series are those ``members`` names as bottoms.
    capacity, routing, inventory : pandas.DataFrame
        Validated supply inputs (:mod:`.inputs`); routing keys may be any series of the plan.
    members : pandas.DataFrame, optional
        ``unique_id, bottom`` pairs of the plan's structure; None for a flat plan.
    backtest : pandas.DataFrame, optional
        The delivered forecast's backtest (``unique_id, cutoff, ds, y, forecast``) for
        safety stock from its errors; None: no safety stock.
    settings : BalanceSettings, optional

    Returns
    -------
    Balance
    """
    settings = settings or BalanceSettings()
    bottom_ids = set(members["bottom"]) if members is not None else set(lines["unique_id"])
    bottom = lines[lines["unique_id"].isin(bottom_ids)]
    if bottom.empty:
        raise DataError("The plan has no bottom series to balance; check the plan version.")
    routed = expand_routing(routing, members)
    # the capacity check reads the routing as given (a SKU's line carries its load), the
    # constrained plan plans the bottom series that hold stock
    detail = capacity_load(lines, routing, detail=True)
    months = pd.DatetimeIndex(np.sort(lines["ds"].unique()))
    load = resource_load(detail, resources=routing["resource"].unique(), months=months)
    util = utilisation(load, capacity)
    cap_exc = capacity_exceptions(
        util, detail, over=settings.over, under=settings.under, top_drivers=settings.top_drivers
    )
    safety = _safety(backtest, inventory)
    has_prices = "price" in bottom and bottom["price"].notna().any()
    demand = bottom if has_prices else bottom.assign(price=1.0)
    plan = constrained_plan(
        demand.assign(price=demand["price"].fillna(0.0)),
        capacity,
        routed,
        inventory=inventory,
        safety=safety[["key", "safety_stock"]],
        storage=settings.storage,
        time_limit=settings.time_limit,
        batches=settings.batches,
    )
    if not has_prices:  # the plan weighs every unit alike; no money is known to be at stake
        plan = replace(plan, unmet=plan.unmet.assign(price=np.nan, revenue_at_stake=np.nan))
    projection = project_inventory(bottom, inventory, safety[["key", "safety_stock"]], supply=plan.supply)
    priced = bottom[["unique_id", "ds", "price"]] if "price" in bottom else None
    stock_exc = inventory_exceptions(projection, prices=priced)
    decisions = _decisions(cap_exc, stock_exc, plan, routed)
    money = plan_money(bottom)
    planned = plan.unmet["demand"].sum()
    figures = {
        **money,
        "overloaded_resource_months": int((cap_exc["kind"] == "overload").sum()),
        "underused_resource_months": int((cap_exc["kind"] == "underused").sum()),
        "max_utilisation": float(util["utilisation"].replace(np.inf, np.nan).max())
        if util["utilisation"].notna().any()
        else None,
        "binding_resource_months": int(plan.summary["binding_resource_months"]),
        "unmet_units": float(plan.summary["unmet_units"]),
        "revenue_at_stake": float(plan.summary["revenue_at_stake"]) if money["revenue"] is not None else None,
        # what supply can deliver: a demand scenario's revenue is planned, this is what it earns
        "revenue_served": float(money["revenue"] - plan.summary["revenue_at_stake"])
        if money["revenue"] is not None
        else None,
        "fill_rate": float(1 - plan.summary["unmet_units"] / planned) if planned > 0 else None,
        "stockout_months": int(projection["stockout"].sum()),
        "below_safety_months": int(projection["below_safety"].sum()),
        "safety_stock_units": float(safety["safety_stock"].sum(min_count=1))
        if safety["safety_stock"].notna().any()
        else None,
        # stock held, as Balance.monthly() counts it: one key's backlog is not another's stock
        "closing_stock_end": float(
            projection.loc[projection["ds"] == projection["ds"].max(), "closing"].clip(lower=0).sum()
        )
        if len(projection)
        else None,
    }
    logger.info(
        "Balance: %d overloaded resource-month(s), %s units unmet, %d stock-out key-month(s); plan by %s",
        figures["overloaded_resource_months"],
        f"{figures['unmet_units']:,.0f}",
        figures["stockout_months"],
        plan.summary.get("solver"),
    )
    return Balance(util, cap_exc, safety, plan, projection, stock_exc, decisions, figures)
