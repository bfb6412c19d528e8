"""The constrained supply plan: what can be made, when, and what demand goes unmet.

A linear program (SciPy HiGHS) over the planned keys and months, with three decisions per
key-month: production, closing inventory and unmet demand. The balance is
``closing[t] = closing[t-1] + production[t] - (demand[t] - unmet[t])`` from on hand; the load
of every resource-month stays within its capacity; stock held at month ``t`` must be sold
within the key's shelf life (``closing[t] <= demand[t+1 .. t+shelf_life]``) and within a
storage limit if one is given. With batch sizes production is a whole number of batches and
the problem is solved with ``milp``. Keys that share no limited resource share no
constraint, so the LP is solved group by group (small groups packed into one call), which
gives the plan of the single LP far sooner. A greedy rule (:func:`greedy_plan`) stands in
only for a group where HiGHS fails or runs out of time, and the summary says which solver
made the plan.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from scipy.sparse.csgraph import connected_components

from ..errors import DataError, format_examples
from .greedy import GREEDY_RULE, allocate_greedily

__all__ = [
    "ALLOCATION_RULE",
    "BATCH_RULE",
    "GREEDY_RULE",
    "round_to_batches",
    "ConstrainedPlan",
    "constrained_plan",
    "greedy_plan",
]

logger = logging.getLogger(__name__)

ALLOCATION_RULE = (
    "Scarce capacity goes to priority 1 first, then 2, and so on: a unit of a higher priority "
    "is never left unmet to serve units of a lower one. Within a priority, the unit with the "
    "higher price is served first, so the revenue at stake is as small as it can be. Demand "
    "that cannot be made in its month is pre-built into the latest earlier months with spare "
    "capacity, within shelf life and storage. Safety stock is built only with capacity that "
    "no demand needs."
)


BATCH_RULE = (
    "Batch sizes: the LP's cumulative production of each batched key is rounded up to whole "
    "batches where capacity, shelf life and storage allow it (the batch is made early, a little "
    "stock is left), else down (less than one batch per key is left unmet), keys of higher "
    "priority and price rounded first and taking the room of lower priorities; the LP then plans "
    "every other key again around the fixed batches. It answers in about a second on the demo; the "
    "exact MILP (batches: milp) takes about 20 s there and leaves less unmet, too slow for a "
    "meeting's what-ifs."
)

_BINDING = 0.005  # a resource-month used to within this share of its capacity binds
_TOL = 1e-6  # units: load within capacity, a month counted as binding
# Measured (bench.supply, 1,000 groups of 2 keys x 24 months): one call per group 2.8 s, calls
# of at least 2,000 variables 1.2 s, of 10,000 1.3 s, of 50,000 2.1 s, all in one LP 4.8 s.
_MIN_VARIABLES = 2_000  # groups smaller than this are packed together into one HiGHS call
# Dual simplex against interior point, seconds: groups of 2 resources x 36 months, 7,200
# variables 0.06 against 0.19, 57,600 2.6 against 8.2, 230,400 30 against 79; one LP of
# 2,000 keys x 24 months sharing 20 resources (192,000 variables) 61 against 40.
_SIMPLEX_VARIABLES = 100_000


@dataclass(frozen=True)
class ConstrainedPlan:
    """A feasible supply plan and what it leaves unmet.

    Attributes
    ----------
    supply : pandas.DataFrame
        ``key, ds, supply``: production per key and month.
    inventory : pandas.DataFrame
        ``key, ds, closing``: stock at the end of each month.
    unmet : pandas.DataFrame
        ``key, ds, demand, served, unmet, price, revenue_at_stake`` per key and month.
    resources : pandas.DataFrame
        ``resource, ds, load, capacity, utilisation`` per resource and month (capacity NaN
        where none is given: unlimited).
    summary : dict
        ``unmet_units``, ``revenue_at_stake``, ``binding_resource_months``, ``solver``
        (``highs-lp``, ``highs-milp`` or ``greedy``), ``status``, ``fallback_reason``,
        ``seconds`` (split in ``timings``: ``build``, ``highs``, ``solve`` = HiGHS and any
        fallback, ``frames``), ``priority_gap``, ``rule``, ``groups`` (keys that share no
        limited resource, solved apart; keys without one count as one group),
        ``fallback_groups`` (planned by the greedy rule) and ``solves`` (HiGHS calls). With
        some groups fallen back, ``solver`` joins the names (``highs-lp+greedy``).
    """

    supply: pd.DataFrame
    inventory: pd.DataFrame
    unmet: pd.DataFrame
    resources: pd.DataFrame
    summary: dict


@dataclass(frozen=True)
class _Problem:
    keys: np.ndarray  # (n,)
    months: pd.DatetimeIndex  # (T,)
    resources: np.ndarray  # (R,)
    demand: np.ndarray  # (n, T)
    price: np.ndarray  # (n, T)
    priority: np.ndarray  # (n,) int, 1 = first
    on_hand: np.ndarray  # (n,)
    safety: np.ndarray  # (n,)
    batch: np.ndarray  # (n,) 0 = no batch size
    shelf: np.ndarray  # (n,) months, inf = no limit
    closing_ub: np.ndarray  # (n, T)
    storage_total: np.ndarray | None  # (T,)
    edge_key: np.ndarray  # routing rows: key index,
    edge_res: np.ndarray  # resource index,
    edge_rate: np.ndarray  # resource units per demand unit
    capacity: np.ndarray  # (R, T), inf where none is given


def _require(frame: pd.DataFrame, name: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"The {name} frame lacks the columns {missing}; found {list(frame.columns)}. "
            f"Give it the columns {columns}."
        )


def _per_key(frame: pd.DataFrame | None, keys: pd.Index, column: str, default: float) -> np.ndarray:
    if frame is None or column not in frame.columns:
        return np.full(len(keys), default, dtype=float)
    values = frame.groupby("key")[column].first().reindex(keys)
    return pd.to_numeric(values, errors="coerce").fillna(default).to_numpy(dtype=float)


def _prepare(demand, capacity, routing, inventory, safety, storage, id_col, time_col, target_col):
    _require(demand, "demand", [id_col, time_col, target_col, "price"])
    _require(capacity, "capacity", ["resource", "ds", "capacity"])
    _require(routing, "routing", ["key", "resource", "rate", "priority"])
    planned = set(routing["key"]) | (set(inventory["key"]) if inventory is not None else set())
    rows = demand[demand[id_col].isin(planned)]
    if rows.empty:
        raise DataError(
            f"No key of the routing or inventory is in the demand plan (routing keys "
            f"{format_examples(sorted(map(str, planned)))}). Route the plan's bottom series."
        )
    absent = planned - set(rows[id_col])
    if absent:
        logger.info(
            "%d routed keys have no demand and are left out: %s", len(absent), format_examples(absent)
        )
    wide = rows.pivot_table(
        index=id_col,
        columns=time_col,
        values=[target_col, "price"],
        aggfunc={target_col: "sum", "price": "mean"},
    )
    keys, months = wide.index, pd.DatetimeIndex(sorted(rows[time_col].unique()))
    dem = wide[target_col].reindex(columns=months).fillna(0.0).clip(lower=0).to_numpy(dtype=float)
    price = wide["price"].reindex(columns=months)
    price = price.T.fillna(price.mean(axis=1)).T.fillna(0.0).to_numpy(dtype=float)
    route = routing[routing["key"].isin(keys)]
    resources = np.array(sorted(set(route["resource"]) | set(capacity["resource"])), dtype=object)
    res_index = pd.Index(resources)
    cap = capacity.pivot_table(index="resource", columns="ds", values="capacity", aggfunc="sum")
    cap = cap.reindex(index=res_index, columns=months).to_numpy(dtype=float)
    if np.isnan(cap).any():
        logger.warning("%d resource-months have no capacity given: unlimited", int(np.isnan(cap).sum()))
    prio = route.groupby("key")["priority"].min().reindex(keys)
    prio = prio.fillna(prio.max() + 1 if prio.notna().any() else 1).to_numpy(dtype=int)
    inv = inventory.rename(columns={id_col: "key"}) if inventory is not None else None
    safe = _per_key(safety, keys, "safety_stock", 0.0)
    shelf = _per_key(inv, keys, "shelf_life", np.inf)
    shelf[shelf < 0] = np.inf
    on_hand = _per_key(inv, keys, "on_hand", 0.0).clip(min=0)
    per_key_storage = storage if isinstance(storage, pd.DataFrame) else None
    max_stock = _per_key(per_key_storage, keys, "max_stock", np.inf)
    ub, total = _closing_bounds(dem, on_hand, safe, shelf, max_stock, storage)
    return _Problem(
        keys=keys.to_numpy(),
        months=months,
        resources=resources,
        demand=dem,
        price=price,
        priority=prio,
        on_hand=on_hand,
        safety=safe,
        batch=_per_key(inv, keys, "batch_size", 0.0).clip(min=0),
        shelf=shelf,
        closing_ub=ub,
        storage_total=total,
        edge_key=keys.get_indexer(route["key"]),
        edge_res=res_index.get_indexer(route["resource"]),
        edge_rate=route["rate"].to_numpy(dtype=float),
        capacity=np.where(np.isnan(cap), np.inf, cap),
    )


def _closing_bounds(dem, on_hand, safe, shelf, max_stock, storage):
    """Upper bounds on closing stock: next ``shelf`` months' demand (at least the safety stock),
    per-key storage, never below what on hand alone leaves (so the problem stays feasible)."""
    n, T = dem.shape
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(dem, axis=1)], axis=1)  # cum[:, k] = d[:, :k]
    t = np.arange(T)
    reach = np.minimum(t[None, :] + 1 + np.minimum(shelf, T)[:, None], T).astype(int)
    window = np.take_along_axis(cum, reach, axis=1) - cum[:, 1:]
    window = np.where(np.isinf(shelf)[:, None], np.inf, window)
    leftover = np.maximum(on_hand[:, None] - cum[:, 1:], 0.0)
    ub = np.maximum(np.minimum(np.maximum(window, safe[:, None]), max_stock[:, None]), leftover)
    total = None
    if storage is not None and not isinstance(storage, pd.DataFrame):
        total = np.maximum(float(storage), leftover.sum(axis=0))
    return ub, total


def _weights(pb: _Problem, priority_gap: float | None) -> tuple[np.ndarray, float, float, float]:
    """Cost per unit unmet (by key), the gap between priority classes, safety and holding costs.

    A unit of class k weighs ``gap`` times the dearest unit of class k+1. Freeing the capacity
    of one unit of key h lets at most ``q = max_h sum_r rate[h, r] / min rate on r`` lower units
    be made, each worth at most ``V`` (the price spread), so ``gap > q * V`` keeps the order
    lexicographic; the gap is twice that bound.
    """
    T = len(pb.months)
    mean_price = pb.price.mean(axis=1)
    floor = mean_price[mean_price > 0].min() if (mean_price > 0).any() else 1.0
    value = np.where(mean_price > 0, mean_price / floor, 1.0)
    q = 1.0
    rate = pb.edge_rate
    if (rate > 0).any():
        ok = rate > 0
        floor = pd.Series(rate[ok]).groupby(pb.edge_res[ok]).min()
        ratio = rate[ok] / floor.reindex(pb.edge_res[ok]).to_numpy()
        q = max(1.0, float(pd.Series(ratio).groupby(pb.edge_key[ok]).sum().max()))
    if priority_gap is None:
        priority_gap = float(np.ceil(2 * q * value.max()))
    ranks = np.unique(pb.priority, return_inverse=True)[1]
    weight = priority_gap ** (ranks.max() - ranks) * value
    if weight.max() > 1e10:
        logger.warning("Unmet-demand weights span %.0e: HiGHS may not keep priorities exact", weight.max())
    safety_cost = 0.1 / (q * T)  # a month below safety stock costs less than a unit unmet
    return weight, float(priority_gap), safety_cost, 0.01 * safety_cost


def _build(pb: _Problem, weight, safety_cost, holding):
    """Objective, sparse constraint matrices and bounds; columns ``[P | C | U | S]`` by key-month."""
    n, T = pb.demand.shape
    nt = n * T
    cell = np.arange(nt)
    scale = np.where(pb.batch > 0, pb.batch, 1.0).repeat(T)  # production in batches where given
    first = cell % T == 0
    # balance: C[t] - C[t-1] - P[t] - U[t] = -d[t] (+ on hand at t = 0)
    rows = np.concatenate([cell, cell[~first], cell, cell])
    cols = np.concatenate([nt + cell, nt + cell[~first] - 1, cell, 2 * nt + cell])
    vals = np.concatenate([np.ones(nt), -np.ones(int((~first).sum())), -scale, -np.ones(nt)])
    a_eq = sparse.csr_matrix((vals, (rows, cols)), shape=(nt, 4 * nt))
    b_eq = -pb.demand.ravel() + np.where(first, pb.on_hand.repeat(T), 0.0)
    blocks, rhs = [], []
    limited = np.isfinite(pb.capacity)
    if limited.any():  # load: sum rate * P[key, t] <= capacity[res, t]
        e = len(pb.edge_rate)
        r = (pb.edge_res[:, None] * T + np.arange(T)).ravel()
        c = (pb.edge_key[:, None] * T + np.arange(T)).ravel()
        v = np.repeat(pb.edge_rate, T) * scale[c]
        keep = limited.ravel()[r] if e else np.zeros(0, bool)
        load = sparse.csr_matrix((v[keep], (r[keep], c[keep])), shape=(pb.capacity.size, 4 * nt))
        blocks.append(load[np.flatnonzero(limited.ravel())])
        rhs.append(pb.capacity.ravel()[limited.ravel()])
    held = np.flatnonzero(np.repeat(pb.safety > 0, T))
    if held.size:  # shortfall: -C - S <= -safety
        m = len(held)
        blocks.append(
            sparse.csr_matrix(
                (-np.ones(2 * m), (np.tile(np.arange(m), 2), np.concatenate([nt + held, 3 * nt + held]))),
                shape=(m, 4 * nt),
            )
        )
        rhs.append(-pb.safety.repeat(T)[held])
    if pb.storage_total is not None:  # sum over keys of C[., t] <= storage
        blocks.append(sparse.csr_matrix((np.ones(nt), (cell % T, nt + cell)), shape=(T, 4 * nt)))
        rhs.append(pb.storage_total)
    a_ub = sparse.vstack(blocks, format="csr") if blocks else None
    b_ub = np.concatenate(rhs) if rhs else None
    cost = np.concatenate([np.zeros(nt), np.full(nt, holding), weight.repeat(T), np.full(nt, safety_cost)])
    lower = np.zeros(4 * nt)
    upper = np.concatenate(
        [np.full(nt, np.inf), pb.closing_ub.ravel(), pb.demand.ravel(), pb.safety.repeat(T)]
    )
    return cost, a_eq, b_eq, a_ub, b_ub, lower, upper, scale


def _solve(pb: _Problem, built, time_limit: float, batches: str = "round"):
    """Run HiGHS; ``(P, C, U)`` or ``None`` with the solver's name and status message."""
    cost, a_eq, b_eq, a_ub, b_ub, lower, upper, scale = built
    n, T = pb.demand.shape
    nt = n * T
    if (pb.batch > 0).any() and batches == "milp":
        cons = [LinearConstraint(a_eq, b_eq, b_eq)]
        if a_ub is not None:
            cons.append(LinearConstraint(a_ub, -np.inf, b_ub))
        integer = np.concatenate([np.repeat(pb.batch > 0, T), np.zeros(3 * nt, bool)]).astype(int)
        res = milp(
            cost,
            constraints=cons,
            integrality=integer,
            bounds=Bounds(lower, upper),
            options={"time_limit": time_limit, "mip_rel_gap": 1e-2},
        )
        solver, usable = "highs-milp", res.x is not None and res.status in (0, 1)
        if usable:
            logger.debug("milp: %s, gap %.3g, objective %.6g", res.message, res.mip_gap, res.fun)
    else:
        res = linprog(
            cost,
            A_ub=a_ub,
            b_ub=b_ub,
            A_eq=a_eq,
            b_eq=b_eq,
            bounds=np.column_stack([lower, upper]),
            method="highs-ds" if len(cost) <= _SIMPLEX_VARIABLES else "highs-ipm",
            options={"time_limit": time_limit},
        )
        solver, usable = "highs-lp", res.status == 0
    if not usable:
        return None, solver, f"{res.status}: {res.message}"
    x = np.clip(res.x, 0.0, None)
    P, C, U = (b.reshape(n, T) for b in (x[:nt] * scale, x[nt : 2 * nt], x[2 * nt : 3 * nt]))
    if (pb.batch > 0).any() and solver == "highs-lp":
        return _batches_fixed(pb, built, (P, C, U), time_limit), "highs-lp+batches", res.message
    return (P, C, U), solver, res.message


def _batches_fixed(pb: _Problem, built, plan, time_limit: float):
    """Whole batches by priority, then the LP again around them: the batched keys' rounded
    production is fixed and every other key is planned anew, so capacity freed or taken by
    the rounding goes by the same rule. Where that LP finds no plan (a rounded batch breaks
    a shelf-life or storage bound), the rounding that keeps every other key's plan stands."""
    cost, a_eq, b_eq, a_ub, b_ub, lower, upper, scale = built
    n, T = pb.demand.shape
    nt = n * T
    P, _, _ = round_to_batches(pb, *plan, displace=True)
    cells = np.flatnonzero(np.repeat(pb.batch > 0, T))
    low, high = lower.copy(), upper.copy()
    low[cells] = high[cells] = P.ravel()[cells] / scale[cells]
    res = linprog(
        cost,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=np.column_stack([low, high]),
        method="highs-ds" if len(cost) <= _SIMPLEX_VARIABLES else "highs-ipm",
        options={"time_limit": time_limit},
    )
    if res.status != 0:
        logger.info(
            "Batches fixed by priority leave no feasible LP (%s): the plain rounding stands", res.message
        )
        return round_to_batches(pb, *plan)
    x = np.clip(res.x, 0.0, None)
    return tuple(v.reshape(n, T) for v in (x[:nt] * scale, x[nt : 2 * nt], x[2 * nt : 3 * nt]))


def round_to_batches(pb: _Problem, P: np.ndarray, C: np.ndarray, U: np.ndarray, *, displace: bool = False):
    """Production of batched keys in whole batches (:data:`BATCH_RULE`), from a plan in units.

    Keys are taken by priority, then price, and month by month: the cumulative production
    is rounded up to whole batches when the load it adds fits every resource the key uses in
    that month (and the storage limit), else down; each month then serves what stock allows,
    so rounding down leaves less than a batch unmet and rounding up a little stock.

    ``displace=False``: the room is what every other key's plan leaves, so the result is
    feasible as it stands. ``displace=True``: a key may take the room of keys without batch
    sizes of a lower priority (their plan is then made again by the LP around the fixed
    batches, :func:`_solve`), so a priority-1 batch is never rounded down to serve priority 2.
    Returns new ``(P, C, U)``.
    """
    P, C, U = P.copy(), C.copy(), U.copy()
    n, T = pb.demand.shape
    R = len(pb.resources)
    rate = sparse.csr_matrix((pb.edge_rate, (pb.edge_key, pb.edge_res)), shape=(n, R))
    cap = np.where(np.isfinite(pb.capacity), pb.capacity, np.inf)
    batched = np.flatnonzero(pb.batch > 0)
    order = batched[np.lexsort((-pb.price[batched].mean(axis=1), pb.priority[batched]))]
    if displace:  # the batched keys' loads are added as they are fixed; others count by priority
        unbatched = np.flatnonzero(pb.batch <= 0)
        kept_load = {
            p: rate[unbatched[pb.priority[unbatched] <= p]].T @ P[unbatched[pb.priority[unbatched] <= p]]
            for p in np.unique(pb.priority[batched])
        }
        fixed = np.zeros((R, T))
    else:
        room = cap - (rate.T @ P)
    stock_room = None if pb.storage_total is None else pb.storage_total - C.sum(axis=0)
    for k in order:
        b, row = pb.batch[k], rate.getrow(k)
        res, per_unit = row.indices, row.data
        if displace:  # room left by fixed batches and keys of this priority or higher, plus its own
            room = cap - fixed - kept_load[pb.priority[k]]
            room[res] -= np.outer(per_unit, P[k])
        cum = np.cumsum(P[k])
        made, stock = 0.0, pb.on_hand[k]
        for t in range(T):
            up = max(np.ceil(cum[t] / b - 1e-9) * b - made, 0.0)
            extra = per_unit * (up - P[k, t])
            after = stock + up - min(pb.demand[k, t], stock + up)
            fits = (
                (extra <= room[res, t] + _TOL).all()
                and (stock_room is None or after - C[k, t] <= stock_room[t] + _TOL)
                and after <= pb.closing_ub[k, t] + _TOL
            )
            if fits:
                made_now = up
            else:  # down, and never more than the month's room (earlier months made less)
                down = max(np.floor(cum[t] / b + 1e-9) * b - made, 0.0)
                ratio = (room[res, t] + _TOL) / per_unit if len(res) else np.array([np.inf])
                allowed = P[k, t] + max(float(np.min(ratio)), -P[k, t])
                made_now = min(down, np.floor(allowed / b + 1e-9) * b)
            room[res, t] -= per_unit * (made_now - P[k, t])
            if displace:
                fixed[res, t] += per_unit * made_now
            made += made_now
            avail = stock + made_now
            served = min(pb.demand[k, t], avail)
            stock = avail - served
            if stock_room is not None:
                stock_room[t] -= stock - C[k, t]
            P[k, t], C[k, t], U[k, t] = made_now, stock, pb.demand[k, t] - served
    return P, C, U


def _groups(pb: _Problem) -> tuple[np.ndarray, np.ndarray]:
    """Group of each key, and whether the key loads a resource with a capacity.

    Keys linked through limited resources (the bipartite graph of routing rows) form a group;
    groups share no constraint, so one LP per group gives the plan of the whole LP. Each key
    that loads no limited resource is a component of its own; they count as one group. A
    total storage limit links every key's stock in every month: then all keys are one group
    and the plan stays one LP.
    """
    n, R = len(pb.keys), len(pb.resources)
    if pb.storage_total is not None:  # one limit on all keys' stock couples them: no split
        return np.zeros(n, dtype=int), np.ones(n, bool)
    link = (pb.edge_rate != 0) & np.isfinite(pb.capacity).any(axis=1)[pb.edge_res]
    linked = np.zeros(n, bool)
    linked[pb.edge_key[link]] = True
    edges = (np.ones(int(link.sum())), (pb.edge_key[link], n + pb.edge_res[link]))
    graph = sparse.csr_matrix(edges, shape=(n + R, n + R))
    return connected_components(graph, directed=False)[1][:n], linked


def _count_groups(component: np.ndarray, linked: np.ndarray) -> int:
    return len(np.unique(component[linked])) + int(not linked.all())


def _batches(component: np.ndarray, months: int) -> list[np.ndarray]:
    """Keys of each HiGHS call: whole groups, consecutive small ones packed together up to
    ``_MIN_VARIABLES`` variables so that the fixed cost of a call does not dominate."""
    order = np.argsort(component, kind="stable")
    cuts = np.flatnonzero(np.diff(component[order])) + 1
    batches, current, size = [], [], 0
    for group in np.split(order, cuts):
        current.append(group)
        size += 4 * months * len(group)
        if size >= _MIN_VARIABLES:
            batches.append(np.sort(np.concatenate(current)))
            current, size = [], 0
    if current:
        batches.append(np.sort(np.concatenate(current)))
    return batches


def _part(pb: _Problem, rows: np.ndarray) -> _Problem:
    """The problem restricted to the keys ``rows`` and the resources they load."""
    if len(rows) == len(pb.keys):
        return pb
    on = np.isin(pb.edge_key, rows)
    res = np.unique(pb.edge_res[on])
    position = np.full(len(pb.keys), -1)
    position[rows] = np.arange(len(rows))
    return replace(
        pb,
        keys=pb.keys[rows],
        resources=pb.resources[res],
        demand=pb.demand[rows],
        price=pb.price[rows],
        priority=pb.priority[rows],
        on_hand=pb.on_hand[rows],
        safety=pb.safety[rows],
        batch=pb.batch[rows],
        shelf=pb.shelf[rows],
        closing_ub=pb.closing_ub[rows],
        edge_key=position[pb.edge_key[on]],
        edge_res=np.searchsorted(res, pb.edge_res[on]),
        edge_rate=pb.edge_rate[on],
        capacity=pb.capacity[res],
    )


def _solve_groups(pb: _Problem, batches, costs, time_limit: float, timings: dict, mode: str = "round"):
    """Solve each batch of keys with HiGHS, the greedy rule where HiGHS gives no plan.

    ``time_limit`` is for all batches together: an LP gets what is left (stopped early it gives
    no plan at all), a MILP its share by keys (stopped early it still gives its best plan, and
    with the whole rest it would leave later groups to the fallback). Returns production,
    closing stock, unmet demand (keys x months), the solver and status of each batch, which
    keys fell back and why.
    """
    weight, safety_cost, holding = costs
    n, T = pb.demand.shape
    P, C, U = np.zeros((n, T)), np.zeros((n, T)), np.zeros((n, T))
    solvers, statuses, failed, reasons = [], [], np.zeros(n, bool), []
    deadline, waiting = time.perf_counter() + time_limit, n
    for rows in batches:
        mark = time.perf_counter()
        part = _part(pb, rows)
        built = _build(part, weight[rows], safety_cost, holding)
        timings["build"] += time.perf_counter() - mark
        mark = time.perf_counter()
        try:
            if mark >= deadline:
                solution, solver, status = None, "highs", "time limit reached before this group's turn"
            else:
                share = len(rows) / waiting if (part.batch > 0).any() and mode == "milp" else 1.0
                solution, solver, status = _solve(part, built, share * (deadline - mark), mode)
        except (ValueError, MemoryError) as exc:  # HiGHS refused the problem: the fallback plans
            solution, solver, status = None, "highs", f"error: {exc}"
        timings["highs"] += time.perf_counter() - mark
        if solution is None:
            logger.warning(
                "HiGHS gave no plan for %d keys (%s, %s); the greedy rule plans them instead",
                len(rows),
                solver,
                status,
            )
            reasons.append(f"{solver} {status}")
            failed[rows] = True
            solution, solver, status = allocate_greedily(part), "greedy", "ok"
        P[rows], C[rows], U[rows] = solution
        waiting -= len(rows)
        solvers.append(solver)
        statuses.append(str(status))
        timings["solve"] += time.perf_counter() - mark
    return P, C, U, solvers, statuses, failed, reasons


def _rule(solver: str) -> str:
    if solver == "greedy":
        return GREEDY_RULE
    rule = f"{ALLOCATION_RULE} {BATCH_RULE}" if "batches" in solver else ALLOCATION_RULE
    if "greedy" in solver:  # some groups fell back
        return f"{rule} In the groups HiGHS could not plan: {GREEDY_RULE}"
    return rule


def _frames(pb: _Problem, P, C, U, summary: dict) -> ConstrainedPlan:
    n, T = pb.demand.shape
    key, ds = np.repeat(pb.keys, T), np.tile(pb.months, n)
    served = pb.demand - U
    unmet = pd.DataFrame(
        {
            "key": key,
            "ds": ds,
            "demand": pb.demand.ravel(),
            "served": served.ravel(),
            "unmet": U.ravel(),
            "price": pb.price.ravel(),
            "revenue_at_stake": (U * pb.price).ravel(),
        }
    )
    route = sparse.csr_matrix((pb.edge_rate, (pb.edge_res, pb.edge_key)), shape=(len(pb.resources), n))
    load, wanted = route @ P, route @ pb.demand
    cap = pb.capacity
    finite = np.isfinite(cap)
    util = np.divide(load, cap, out=np.full_like(load, np.nan), where=finite & (cap > 0))
    util[finite & (cap <= 0)] = 0.0
    # binding: used to within half a percent (production in whole batches rarely fills a month)
    binding = finite & (load >= cap * (1 - _BINDING) - _TOL) & ((cap > 0) | (wanted > _TOL))
    R = len(pb.resources)
    resources = pd.DataFrame(
        {
            "resource": np.repeat(pb.resources, T),
            "ds": np.tile(pb.months, R),
            "load": load.ravel(),
            "capacity": np.where(finite, cap, np.nan).ravel(),
            "utilisation": util.ravel(),
        }
    )
    summary = {
        "unmet_units": float(U.sum()),
        "revenue_at_stake": float(unmet["revenue_at_stake"].sum()),
        "binding_resource_months": int(binding.sum()),
        **summary,
        "rule": _rule(summary["solver"]),
    }
    return ConstrainedPlan(
        supply=pd.DataFrame({"key": key, "ds": ds, "supply": P.ravel()}),
        inventory=pd.DataFrame({"key": key, "ds": ds, "closing": C.ravel()}),
        unmet=unmet,
        resources=resources,
        summary=summary,
    )


def constrained_plan(
    demand: pd.DataFrame,
    capacity: pd.DataFrame,
    routing: pd.DataFrame,
    *,
    inventory: pd.DataFrame | None = None,
    safety: pd.DataFrame | None = None,
    storage: float | pd.DataFrame | None = None,
    priority_gap: float | None = None,
    time_limit: float = 60.0,
    batches: str = "round",
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "final",
) -> ConstrainedPlan:
    """A feasible supply plan that allocates scarce capacity by priority, solved with HiGHS.

    The rule (:data:`ALLOCATION_RULE`) is lexicographic: priority first, then revenue, then
    pre-build as late as possible. It is an LP whose cost per unit unmet is
    ``priority_gap ** (classes below) * price / lowest price``: a priority class outweighs all
    lower ones together, so a higher priority is never sacrificed, while inside a class money
    decides. The gap is derived from the data (routing rates and price spread) so the order
    holds exactly; one LP stays linear and fast where solving class by class would repeat the
    whole solve per priority. A holding cost a hundredth of the safety-stock penalty, itself
    far below any unmet unit, makes stock appear only when it saves unmet demand (pre-build
    as late as possible) or restores safety stock with capacity nobody needs. Planners get
    the order they set; ties go to the money; no stock is built without a reason.

    Parameters
    ----------
    demand : pandas.DataFrame
        Plan lines ``unique_id, ds, final, price`` (other levels and columns are ignored:
        only keys in ``routing`` or ``inventory`` are planned).
    capacity : pandas.DataFrame
        ``resource, ds, capacity``; a resource-month without a row is unlimited.
    routing : pandas.DataFrame
        ``key, resource, rate, priority``: resource units per unit of demand, 1 = served first.
        A key may load several resources; a key in ``inventory`` but not here loads none.
    inventory : pandas.DataFrame, optional
        ``key, on_hand`` and optionally ``shelf_life`` (months; empty = no limit) and
        ``batch_size`` (production in whole batches, see ``batches``). Default none.
    safety : pandas.DataFrame, optional
        ``key, safety_stock``: closing stock below it is penalised, less than unmet demand.
    storage : float or pandas.DataFrame, optional
        A limit on total closing stock per month (float) or per key (``key, max_stock``).
    priority_gap : float, optional
        Weight between priority classes; default derived from the data.
    time_limit : float, default 60.0
        Seconds HiGHS may take over all groups: each group gets what is left, and a group
        that HiGHS does not solve in it is planned by the greedy fallback (only that group).
    batches : {"round", "milp"}, default "round"
        Batch sizes: the LP rounded to whole batches (:data:`BATCH_RULE`), or ``milp``: exact
        with HiGHS's MILP, its best plan when the time limit stops it.
    id_col, time_col, target_col : str, default "unique_id", "ds", "final"
        Columns of ``demand``.

    Returns
    -------
    ConstrainedPlan
        ``supply``, ``inventory``, ``unmet``, ``resources`` frames and the ``summary``.
    """
    start = time.perf_counter()
    pb = _prepare(demand, capacity, routing, inventory, safety, storage, id_col, time_col, target_col)
    weight, gap, safety_cost, holding = _weights(pb, priority_gap)  # once: one rule for all groups
    component, linked = _groups(pb)
    timings = {"build": time.perf_counter() - start, "highs": 0.0, "solve": 0.0}
    groups_of_keys = _batches(component, len(pb.months))
    if batches not in ("round", "milp"):
        raise ValueError(f"batches must be 'round' or 'milp', got {batches!r}")
    P, C, U, solvers, statuses, failed, reasons = _solve_groups(
        pb, groups_of_keys, (weight, safety_cost, holding), time_limit, timings, batches
    )
    groups = _count_groups(component, linked)
    fallback_groups = _count_groups(component[failed], linked[failed])
    fallback = None
    if reasons:
        fallback = f"{fallback_groups} of {groups} groups: " + "; ".join(dict.fromkeys(reasons))
    mark = time.perf_counter()
    summary = {
        "solver": "+".join(
            s for s in ("highs-lp", "batches", "highs-milp", "greedy") if any(s in x for x in solvers)
        ),
        "status": "; ".join(dict.fromkeys(statuses)),
        "fallback_reason": fallback,
        "priority_gap": gap,
        "keys": len(pb.keys),
        "months": len(pb.months),
        "resources": len(pb.resources),
        "groups": groups,
        "fallback_groups": fallback_groups,
        "solves": len(groups_of_keys),
    }
    plan = _frames(pb, P, C, U, summary)
    timings["frames"] = time.perf_counter() - mark
    plan.summary.update(seconds=time.perf_counter() - start, timings=timings)
    return plan


def greedy_plan(
    demand: pd.DataFrame,
    capacity: pd.DataFrame,
    routing: pd.DataFrame,
    *,
    inventory: pd.DataFrame | None = None,
    safety: pd.DataFrame | None = None,
    storage: float | pd.DataFrame | None = None,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "final",
) -> ConstrainedPlan:
    """The fallback rule on its own: month by month, priorities first (then price), make in
    the month, then pre-build backwards into the latest earlier months with spare capacity.

    Feasible but myopic: a month's capacity is handed out before later months are seen, so a
    later higher priority can only pre-build into what earlier months left. Same parameters
    and result as :func:`constrained_plan` (``summary["solver"] == "greedy"``).
    """
    start = time.perf_counter()
    pb = _prepare(demand, capacity, routing, inventory, safety, storage, id_col, time_col, target_col)
    plan = _frames(pb, *allocate_greedily(pb), {"solver": "greedy", "status": "ok", "fallback_reason": None})
    plan.summary.update(seconds=time.perf_counter() - start)
    return plan
