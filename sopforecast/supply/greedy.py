"""The greedy fallback of the constrained plan: a rule a planner can follow by hand.

Used only for a group of keys where HiGHS fails or runs out of time (the summary says so).
Feasible but myopic: a month's capacity is handed out before later months are seen, so a
later higher priority can pre-build only into what earlier months left over.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GREEDY_RULE", "allocate_greedily"]

_TOL = 1e-6

GREEDY_RULE = (
    "Greedy fallback: month by month, keys by priority then price; each key is served from "
    "stock, then made in its month, then pre-built backwards into the latest earlier months "
    "with capacity left over (within shelf life and storage); safety stock last."
)


def allocate_greedily(pb) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Month by month, keys by priority then price: serve from stock, make in the month, then
    pre-build backwards into the latest earlier months with spare capacity (within shelf life and
    storage); safety stock is topped up with what capacity is left.

    Parameters
    ----------
    pb : object
        The prepared problem of :mod:`~sopforecast.supply.constrained`: arrays ``demand``,
        ``price`` (keys x months), ``priority``, ``on_hand``, ``safety``, ``batch``, ``shelf``
        (by key), ``closing_ub`` (keys x months), ``storage_total`` (by month or None),
        ``edge_key``, ``edge_res``, ``edge_rate`` (routing rows) and ``capacity``
        (resources x months, inf = unlimited).

    Returns
    -------
    tuple of numpy.ndarray
        Production, closing stock and unmet demand, each keys x months.
    """
    n, T = pb.demand.shape
    P, C, U = np.zeros((n, T)), np.zeros((n, T)), np.zeros((n, T))
    spare = pb.capacity.copy()
    routes = [[] for _ in range(n)]
    for k, r, rate in zip(pb.edge_key, pb.edge_res, pb.edge_rate, strict=True):
        if rate > 0:
            routes[k].append((r, rate))
    order = np.lexsort((-pb.price.mean(1), pb.priority))
    stock = pb.on_hand.copy()
    limit = pb.storage_total if pb.storage_total is not None else np.full(T, np.inf)
    held = np.zeros(T)  # total closing stock by month, kept up to date with C

    def make(i, s, want):
        q = min([want] + [spare[r, s] / rate for r, rate in routes[i]])
        if pb.batch[i] > 0:
            q = pb.batch[i] * (np.ceil(want / pb.batch[i]) if q >= want else np.floor(q / pb.batch[i]))
            q = min(
                [q]
                + [pb.batch[i] * np.floor(spare[r, s] / rate / pb.batch[i] + _TOL) for r, rate in routes[i]]
            )
        for r, rate in routes[i]:
            spare[r, s] -= rate * q
        return max(q, 0.0)

    for t in range(T):
        for i in order:
            need = pb.demand[i, t]
            used = min(stock[i], need)
            stock[i] -= used
            need -= used
            made = make(i, t, need) if need > _TOL else 0.0
            P[i, t] += made
            stock[i] += max(made - need, 0.0)
            need = max(need - made, 0.0)
            for s in range(t - 1, max(-1, t - 1 - int(min(pb.shelf[i], T))), -1):
                if need <= _TOL:
                    break
                room = min((pb.closing_ub[i, s:t] - C[i, s:t]).min(), (limit[s:t] - held[s:t]).min())
                q = make(i, s, min(need, max(room, 0.0)))
                P[i, s] += q
                C[i, s:t] += q
                held[s:t] += q
                need -= q
            U[i, t] = max(need, 0.0)
        for i in order[pb.safety[order] > stock[order]]:
            q = make(i, t, min(pb.safety[i] - stock[i], max(pb.closing_ub[i, t] - stock[i], 0.0)))
            P[i, t] += q
            stock[i] += q
        C[:, t] += stock
        held[t] = C[:, t].sum()
    return P, C, U
