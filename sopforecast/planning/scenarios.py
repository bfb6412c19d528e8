"""Scenarios and the balance review on stored plans: the one entry point the CLI, the
pipeline's balance step and the notebooks call.

A scenario is a named :data:`~sopforecast.supply.scenarios.Change` on a plan version. A
demand change is computed here once (the pure deltas of :mod:`sopforecast.supply.scenarios`
on the version's bottom lines; a promotion re-forecasts with the fitted champion, no
backtest) and the changed bottom lines are kept in the plan store; a supply change is kept
as its settings. :func:`balance_plan` holds a version, or a scenario of it, against supply;
:func:`compare` does so for the base and each scenario and lays them side by side.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.hierarchy import PATH_SEP, Hierarchy, parse_chains
from ..errors import DataError, format_examples
from ..store.plans import PlanStore, PlanVersion, user
from ..supply import scenarios as what_if
from ..supply.balance import Balance, BalanceSettings, balance, expand_routing
from .lines import rollup, summing

__all__ = [
    "SupplyInputs",
    "VersionData",
    "members",
    "plan_lines",
    "create",
    "scenario_plan",
    "plan_baseline",
    "balance_plan",
    "compare",
    "BASE",
]

logger = logging.getLogger(__name__)

BASE = "base"


@dataclass(frozen=True)
class SupplyInputs:
    """Validated supply inputs (:mod:`sopforecast.supply.inputs`) and where they came from."""

    capacity: pd.DataFrame
    routing: pd.DataFrame
    inventory: pd.DataFrame
    sources: tuple[str, str, str] = ("", "", "")


def members(S: Hierarchy) -> pd.DataFrame:
    """``unique_id, bottom`` pairs: the bottom series of every series of a hierarchy."""
    return S.members()


def _structure(bottom: pd.DataFrame, hierarchy: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    return summing(bottom, hierarchy)


def plan_lines(bottom_lines: pd.DataFrame, bottom: pd.DataFrame, hierarchy: list[str]) -> pd.DataFrame:
    """Every level's ``final`` (and revenue-weighted ``price``, ``unit_cost``) rolled up from
    bottom lines; the frame :func:`~sopforecast.supply.balance.balance` takes."""
    S, levels = _structure(bottom, hierarchy)
    out = rollup(bottom_lines[["unique_id", "ds", "final"]], S, "final").reset_index()
    for column in ("price", "unit_cost"):
        if column in bottom_lines and bottom_lines[column].notna().any():
            money = bottom_lines.assign(v=bottom_lines["final"] * bottom_lines[column].fillna(0.0))
            value = rollup(money[["unique_id", "ds", "v"]], S, "v").reset_index(drop=True)
            out[column] = np.where(out["final"] > 0, value / out["final"].where(out["final"] > 0), np.nan)
    own = bottom_lines.set_index(["unique_id", "ds"])
    for column in ("price", "unit_cost"):  # a bottom series keeps its own price in months it sells nothing
        if column in own:
            is_bottom = out["unique_id"].isin(S.columns)
            key = pd.MultiIndex.from_frame(out.loc[is_bottom, ["unique_id", "ds"]])
            out.loc[is_bottom, column] = own[column].reindex(key).to_numpy()
    out["level"] = out["unique_id"].map(levels)
    return out


def _product_key(hierarchy: list[str]) -> str:
    """The key column that names an item: the finest key of the first chain (the SKU)."""
    return parse_chains(hierarchy)[0][-1]


def _launched(bottom: pd.DataFrame, hierarchy: list[str], change: what_if.Launch) -> tuple[str, dict]:
    like = bottom[bottom["unique_id"] == change.like]
    if like.empty:
        raise DataError(
            f"like item {change.like!r} is not a bottom series of the plan; name one, e.g. "
            f"{format_examples(bottom['unique_id'], 3)}."
        )
    keys = like.drop(columns="unique_id").iloc[0].astype(str).to_dict()
    if not keys:
        return change.item, {}
    keys[_product_key(hierarchy)] = change.item
    return PATH_SEP.join(keys.values()), keys


def _changed(base: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``new`` whose final, price or cost differ from ``base`` (or are new)."""
    columns = [c for c in ("final", "price", "unit_cost") if c in new]
    merged = new.merge(
        base[["unique_id", "ds", *columns]], on=["unique_id", "ds"], how="left", suffixes=("", "_base")
    )
    moved = np.zeros(len(merged), dtype=bool)
    for c in columns:
        a, b = merged[c].to_numpy(dtype=float), merged[f"{c}_base"].to_numpy(dtype=float)
        moved |= ~(np.isclose(a, b, rtol=1e-12, atol=1e-9) | (np.isnan(a) & np.isnan(b)))
    return new.loc[moved, ["unique_id", "ds", *columns]].reset_index(drop=True)


def create(
    store: PlanStore,
    version: PlanVersion,
    name: str,
    change: what_if.Change | dict,
    *,
    forecaster=None,
    future: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    baseline: pd.DataFrame | None = None,
    by: str | None = None,
) -> dict:
    """Compute scenario ``name`` on ``version`` and keep it in the store.

    Parameters
    ----------
    change : Change or dict
        What the scenario changes (:mod:`sopforecast.supply.scenarios`).
    forecaster : Forecaster, optional
        The fitted champion; a promotion re-forecasts with it (``predict(future=...)``).
    future : pandas.DataFrame, optional
        The drivers' planned values the plan was forecast with (a promotion's base).
    history : pandas.DataFrame, optional
        Bottom history with the price driver: a price change without an elasticity
        estimates one from it (default: the stored actuals with their drivers).
    baseline : pandas.DataFrame, optional
        The champion's forecast under ``future`` (``unique_id, ds, forecast``) when it is
        known already (the plan was made by this champion: :func:`plan_baseline`); a
        promotion then forecasts once, under the promoted calendar.

    Returns
    -------
    dict
        The stored scenario row (``id, name, kind, params, description, seconds``).
    """
    from ..config import check_name

    name = check_name(name)
    if name == BASE:
        raise DataError(
            f"{BASE!r} names the plan itself when scenarios are compared; give the scenario another name."
        )
    change = what_if.parse_change(change) if isinstance(change, dict) else change
    started = time.perf_counter()
    lines = None
    params = change.model_dump(mode="json")
    if change.kind in what_if.DEMAND_KINDS:
        lines, params = _demand_change(store, version, change, params, forecaster, future, history, baseline)
    seconds = time.perf_counter() - started
    store.add_scenario(
        version,
        name,
        kind=change.kind,
        params=params,
        description=what_if.describe(change),
        lines=lines,
        seconds=seconds,
        by=by,
    )
    logger.info("Scenario %r on %s: %s (%.1f s)", name, version.label, what_if.describe(change), seconds)
    return store.scenario(version.plan, name)


def _demand_change(store, version, change, params, forecaster, future, history, baseline=None):
    snap_lines = store.lines(version)
    bottom = store.bottom(version)
    base = snap_lines[snap_lines["unique_id"].isin(set(bottom["unique_id"]))].reset_index(drop=True)
    pairs = members(_structure(bottom, version.hierarchy)[0])  # a flat plan's series name themselves
    if isinstance(change, what_if.Launch):
        item_id, keys = _launched(bottom, version.hierarchy, change)
        new = what_if.launch_lines(base, item_id, change)
        new["keys"] = json.dumps(keys)
        columns = ["unique_id", "ds", "final", *[c for c in ("price", "unit_cost") if c in new], "keys"]
        return new[columns], {**params, "item_id": item_id}
    ids = what_if.subtree(pairs, change.node)
    if isinstance(change, what_if.Uplift):
        new = what_if.uplift_lines(base, ids, change)
    elif isinstance(change, what_if.PriceChange):
        elasticity = change.elasticity
        if elasticity is None:
            if history is None:
                history = store.actuals(version.plan, drivers=True)
            found = what_if.estimate_elasticity(history, ids=ids)
            if found is None:
                raise DataError(
                    f"no price elasticity can be estimated for {change.node!r} from the history (no "
                    "price driver, or its price never moved): give one, e.g. --elasticity -1.5."
                )
            elasticity = found.value
            params = {
                **params,
                "elasticity_estimated": round(found.value, 4),
                "elasticity_stderr": found.stderr,
                "elasticity_basis": found.basis,
            }
            logger.info(
                "Price elasticity of %s estimated at %.2f (s.e. %.2f, %d months of %d series; from %s)",
                change.node,
                found.value,
                found.stderr,
                found.observations,
                found.series,
                found.basis,
            )
        new = what_if.price_lines(base, ids, change, elasticity)
    else:  # a promotion: the champion re-forecasts under the promoted calendar
        if forecaster is None or future is None:
            raise DataError(
                "a promotion scenario needs the fitted champion and the promotion calendar the plan "
                "was made with; run it where the pipeline's model is registered (scenario create "
                "--pipeline FILE)."
            )
        calendar = future if "unique_id" in future else future.assign(unique_id=_ids(future, bottom))
        promoted = what_if.promotion_calendar(calendar, ids, change)
        first = forecaster.predict(future=calendar).forecast if baseline is None else baseline
        second = forecaster.predict(future=promoted).forecast
        new = what_if.promotion_lines(base, ids, first, second, change)
    return _changed(base, new), params


def _ids(future: pd.DataFrame, bottom: pd.DataFrame) -> pd.Series:
    keys = [c for c in bottom.columns if c != "unique_id"]
    missing = [k for k in keys if k not in future]
    if missing:
        raise DataError(
            f"the promotion calendar needs unique_id or the key columns {keys}; missing {missing}."
        )
    return future[keys].astype(str).agg(PATH_SEP.join, axis=1)


@dataclass(frozen=True)
class VersionData:
    """What a balance reads of a version: its lines, bottom keys and delivered backtest
    (read once when several scenarios of it are balanced)."""

    lines: pd.DataFrame
    bottom: pd.DataFrame
    backtest: pd.DataFrame

    @classmethod
    def read(cls, store: PlanStore, version: PlanVersion) -> VersionData:
        return cls(store.lines(version), store.bottom(version), store.backtest(version))


def plan_baseline(lines: pd.DataFrame) -> pd.DataFrame:
    """A version's statistical forecast as ``unique_id, ds, forecast``: the champion's forecast
    under the plan's calendar, when the champion made the version."""
    return lines[["unique_id", "ds", "statistical"]].rename(columns={"statistical": "forecast"})


def scenario_plan(
    store: PlanStore, version: PlanVersion, scenario: dict | None, data: VersionData | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan lines (every level) and bottom keys of ``version``, or of a scenario on it
    (``data``: the version as already read)."""
    if data is not None:
        lines, bottom = data.lines, data.bottom
    else:
        lines, bottom = store.lines(version), store.bottom(version)
    if scenario is None or scenario["kind"] not in what_if.DEMAND_KINDS:
        return lines, bottom
    changed = store.scenario_lines(int(scenario["id"]))
    changed = changed[changed["ds"].isin(lines["ds"].unique())]  # made on another version: this one's months
    base = lines[lines["unique_id"].isin(set(bottom["unique_id"]))]
    base = base[["unique_id", "ds", "final", *[c for c in ("price", "unit_cost") if c in base]]]
    if len(changed):
        added = changed[changed["keys"].notna()]
        if len(added):
            keys = pd.DataFrame([json.loads(k) for k in added.drop_duplicates("unique_id")["keys"]])
            keys.insert(0, "unique_id", added.drop_duplicates("unique_id")["unique_id"].to_numpy())
            bottom = pd.concat([bottom, keys], ignore_index=True)
        cols = [c for c in base.columns if c in changed]
        merged = base.set_index(["unique_id", "ds"])
        upd = changed.set_index(["unique_id", "ds"])[cols[2:]]
        merged = upd.combine_first(merged) if len(upd) else merged
        base = merged.reset_index()
    return plan_lines(base, bottom, version.hierarchy), bottom


def _supply_for(supply: SupplyInputs, scenario: dict | None, pairs: pd.DataFrame | None) -> SupplyInputs:
    """Supply inputs under a scenario: a capacity change or a supplier delay changes the
    capacity; a launched item loads its like item's resources (those no ancestor of it is
    routed to already) and gets its lead time and service level, with nothing on hand."""
    if scenario is None:
        return supply
    params = scenario["params"]
    if scenario["kind"] in what_if.SUPPLY_KINDS:
        capacity = what_if.capacity_after(supply.capacity, what_if.parse_change(params))
        return SupplyInputs(capacity, supply.routing, supply.inventory, supply.sources)
    if scenario["kind"] != "launch":
        return supply
    item, like = params["item_id"], params["like"]
    routed = expand_routing(supply.routing, pairs)
    covered = set(routed.loc[routed["key"] == item, "resource"])
    extra = routed[(routed["key"] == like) & ~routed["resource"].isin(covered)].assign(key=item)
    stock = supply.inventory[supply.inventory["key"] == like].assign(key=item, on_hand=0.0)
    return SupplyInputs(
        supply.capacity,
        pd.concat([supply.routing, extra[supply.routing.columns]], ignore_index=True),
        pd.concat([supply.inventory, stock], ignore_index=True),
        supply.sources,
    )


def balance_plan(
    store: PlanStore,
    version: PlanVersion,
    supply: SupplyInputs,
    *,
    scenario: str | None = None,
    settings: BalanceSettings | None = None,
    record: bool = True,
    source: str | None = None,
    mlflow_run_id: str | None = None,
    data: VersionData | None = None,
) -> tuple[Balance, int | None]:
    """Hold ``version`` (or its scenario ``scenario``) against supply; keep the review.

    Returns
    -------
    (Balance, int or None)
        The review and its id in the store (None with ``record=False``).
    """
    row = store.scenario(version.plan, scenario) if scenario else None
    if row is not None and int(row["version_id"]) != version.id:
        logger.info(
            "Scenario %r was made on version id %s; it is balanced on %s as stored",
            scenario,
            row["version_id"],
            version.label,
        )
    lines, bottom = scenario_plan(store, version, row, data)
    pairs = members(_structure(bottom, version.hierarchy)[0]) if version.hierarchy else None
    inputs = _supply_for(supply, row, pairs)
    result = balance(
        lines,
        inputs.capacity,
        inputs.routing,
        inputs.inventory,
        members=pairs,
        backtest=data.backtest if data is not None else store.backtest(version),
        settings=settings,
    )
    run_id = None
    if record:
        run_id = store.record_balance(
            version,
            result,
            scenario_id=int(row["id"]) if row is not None else None,
            source=source or "sopforecast balance run",
            mlflow_run_id=mlflow_run_id,
            by=user(),
        )
    return result, run_id


def compare(
    store: PlanStore,
    version: PlanVersion,
    supply: SupplyInputs,
    names: list[str],
    *,
    settings: BalanceSettings | None = None,
    record: bool = True,
    source: str | None = None,
    mlflow_run_id: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Balance]]:
    """The base plan and each scenario balanced and side by side.

    Returns
    -------
    (table, balances)
        ``table``: one row per figure (:data:`~sopforecast.supply.balance.FIGURES`), a column
        per plan and ``<scenario> vs base``; ``balances`` by name (``base`` first).
    """
    results: dict[str, Balance] = {}
    started = time.perf_counter()
    data = VersionData.read(store, version)  # once for the base and every scenario
    rows = {name: store.scenario(version.plan, name) for name in names}  # an unknown name fails here
    for name in [None, *names]:
        result, _ = balance_plan(
            store, version, supply, scenario=name, settings=settings, record=False, data=data
        )
        results[name or BASE] = result
    if record:  # all or none: a scenario that fails to balance leaves no review behind
        for name, result in results.items():
            store.record_balance(
                version,
                result,
                scenario_id=int(rows[name]["id"]) if name in rows else None,
                source=source or "sopforecast balance run",
                mlflow_run_id=mlflow_run_id,
                by=user(),
            )
    table = what_if.compare({name: r.figures for name, r in results.items()}, base=BASE)
    logger.info(
        "Compared %d scenario(s) with %s in %.1f s", len(names), version.label, time.perf_counter() - started
    )
    return table, results
