"""Consensus: apply overrides to a plan so that every level still adds up.

The consensus plan is a replay from the statistical forecast: start from the bottom
series' ``statistical`` values, apply the overrides in order, rebuild every aggregate as the
sum of its bottom series. Reverting an override is replaying without it; the existing
``consensus`` and ``final`` columns of the lines are never read.

Order: overrides reaching deeper apply first (by the number of bottom series under the key,
the Total first, the bottom level last), then by ``id``. An override on key K in month m
sets K to its target (``value``, or K's current value x (1 + ``change_pct`` / 100)) and
spreads it over the bottom series under K in proportion to their current values (the
statistical forecast unless an earlier override moved them), or with ``basis="history"``
to their demand in the last 12 months before the plan. When the current values sum to
zero (all discontinued) history shares are used, then an equal split. Overrides on keys
that cross (a category and a region) apply in order; the later one holds on the bottom
series they share.

Conflict rule
-------------
An override on K and an override on a descendant D of K (D's bottom series a strict subset
of K's) in the same month conflict. The more specific override is applied after the
aggregate one and its value holds. The aggregate's value holds too where it can: K's other
bottom series (those under K not under any overridden descendant in that month) are
rescaled proportionally so that K again totals its target. If those other series sum to
zero, or would have to go below zero, the aggregate cannot hold: K becomes the sum of its
children, and the conflict says so (``held`` False). Every conflict is reported, one row per
pair of overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.hierarchy import Hierarchy
from ..errors import format_examples
from .lines import is_coherent, rollup
from .overrides import OverrideError

__all__ = ["Consensus", "apply_overrides", "BASES", "CONFLICT_COLUMNS", "APPLIED_COLUMNS"]
__all__ += ["PLAUSIBLE_FACTOR", "IMPLAUSIBLE_COLUMNS", "implausible_changes", "plausibility_warnings"]

BASES = ("statistical", "history")
CONFLICT_COLUMNS = ["ds", "key", "override_id", "descendant_key", "descendant_override_id"]
CONFLICT_COLUMNS += ["requested", "result", "held"]
APPLIED_COLUMNS = ["id", "key", "ds", "requested", "previous", "final"]
HISTORY_MONTHS = 12
PLAUSIBLE_FACTOR = 5.0
IMPLAUSIBLE_COLUMNS = ["key", "ds", "statistical", "requested", "final", "ratio"]
_RTOL = 1e-9


@dataclass
class Consensus:
    """A plan with its overrides applied.

    Attributes
    ----------
    lines : pandas.DataFrame
        The plan lines, same rows and columns as given, with ``final``, ``consensus`` and
        ``author`` replayed.
    conflicts : pandas.DataFrame
        One row per aggregate override and descendant override in the same month
        (:data:`CONFLICT_COLUMNS`); ``held`` says whether the aggregate kept its target.
    applied : pandas.DataFrame
        One row per override in application order (:data:`APPLIED_COLUMNS`): its target
        (``requested``), the key's value just before it applied (``previous``) and the key's
        value in the final plan (``final``).
    """

    lines: pd.DataFrame
    conflicts: pd.DataFrame
    applied: pd.DataFrame


def apply_overrides(
    lines: pd.DataFrame,
    overrides: pd.DataFrame,
    S: Hierarchy,
    *,
    basis: str = "statistical",
    history: pd.DataFrame | None = None,
) -> Consensus:
    """Replay the overrides on the statistical forecast; every level stays coherent.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines of every level and month (:mod:`sopforecast.planning.lines`).
    overrides : pandas.DataFrame
        Validated overrides (:func:`~sopforecast.planning.overrides.validate_overrides`)
        with an integer ``id`` (order among keys of equal depth; default the row order).
    S : pandas.DataFrame
        From :func:`~sopforecast.planning.lines.summing`: the hierarchy, its sparse summing matrix.
    basis : {"statistical", "history"}, default "statistical"
        What an aggregate override is spread in proportion to: the bottom series' current
        values, or their demand in the 12 months before the plan. A ``basis`` column in
        ``overrides`` sets it per override (stored overrides keep the one they were made with).
    history : pandas.DataFrame, optional
        Bottom series' demand, ``unique_id, ds, y``; needed for ``basis="history"`` and
        used where the current values under a key sum to zero.

    Returns
    -------
    Consensus

    Raises
    ------
    OverrideError
        When an override names a key or month not in the plan, or the result would be
        negative or incoherent.
    """
    if "basis" in overrides:  # each stored override keeps the basis it was made with
        overrides = overrides.assign(basis=overrides["basis"].fillna(basis))
    else:
        overrides = overrides.assign(basis=basis)
    unknown = sorted(set(overrides["basis"]) - set(BASES)) + ([basis] if basis not in BASES else [])
    if unknown:
        raise OverrideError(
            f"basis {unknown[0]!r} is unknown; use one of {', '.join(BASES)}.", setting="basis"
        )
    if (overrides["basis"] == "history").any() and history is None:
        raise OverrideError(
            "basis='history' spreads overrides by recent demand, but no history was given; "
            "pass the demand history of the bottom series, or use basis='statistical'.",
            setting="basis",
        )
    months = pd.DatetimeIndex(pd.unique(lines["ds"])).sort_values()
    member = _Members(S)
    todo = _schedule(overrides, S, months, member)
    start = _bottom_matrix(lines, S.columns, months)
    no_history = np.zeros(len(S.columns))
    weights = no_history if history is None else _history_weights(history, S.columns, months[0])
    replay = _Replay(start, member, todo, weights)
    replay.run()

    full = member.S @ replay.values
    changed = (member.S @ replay.touched.astype(float)) > 0
    last = _last_override(member, replay.stamp)
    out = _write_lines(lines, S, months, full, changed, last, todo["author"].to_numpy())
    _check(out, S)
    applied = pd.DataFrame(
        {
            "id": todo["id"].to_numpy(),
            "key": todo["key"].to_numpy(),
            "ds": months[todo["month"].to_numpy()],
            "requested": replay.requested,
            "previous": replay.previous,
            "final": full[todo["pos"].to_numpy(), todo["month"].to_numpy()],
        },
        columns=APPLIED_COLUMNS,
    )
    return Consensus(lines=out, conflicts=replay.conflicts(full, months), applied=applied)


def implausible_changes(
    applied: pd.DataFrame,
    lines: pd.DataFrame,
    *,
    factor: float = PLAUSIBLE_FACTOR,
    floor: float = 1.0,
) -> pd.DataFrame:
    """Overrides whose result lies beyond ``factor`` times the statistical forecast, either way.

    A planner who types 400 where the model says 11.6 (34x) may mean it, or may have typed a
    yearly figure into a month: the change is applied and this says which ones to look at.

    Parameters
    ----------
    applied : pandas.DataFrame
        :attr:`Consensus.applied`: ``key, ds, requested, final`` per override (a key and
        month overridden more than once is judged once, by its last override).
    lines : pandas.DataFrame
        Plan lines with ``unique_id, ds, statistical``.
    factor : float, default 5.0
        A result above ``factor`` x statistical or below statistical / ``factor`` is reported.
    floor : float, default 1.0
        Both values count as at least ``floor`` units, so a statistical forecast of 0 with a
        new value of 400 is reported (400x) while 0 against 0.4 is not.

    Returns
    -------
    pandas.DataFrame
        :data:`IMPLAUSIBLE_COLUMNS`: ``ratio`` = final / statistical (after the floor), in the
        order of ``applied``.
    """
    if factor <= 1:
        raise OverrideError(f"the plausibility factor must be above 1, got {factor}", setting="factor")
    if applied.empty:
        return pd.DataFrame(columns=IMPLAUSIBLE_COLUMNS)
    last = applied.assign(ds=pd.to_datetime(applied["ds"])).drop_duplicates(["key", "ds"], keep="last")
    stat = lines.assign(ds=pd.to_datetime(lines["ds"])).drop_duplicates(["unique_id", "ds"])
    stat = stat.set_index(["unique_id", "ds"])["statistical"]
    out = last.assign(statistical=stat.reindex(pd.MultiIndex.from_frame(last[["key", "ds"]])).to_numpy(float))
    ratio = np.maximum(out["final"].to_numpy(float), floor) / np.maximum(
        out["statistical"].fillna(0.0), floor
    )
    out["ratio"] = ratio
    far = (ratio > factor) | (ratio < 1 / factor)
    return out.loc[far, IMPLAUSIBLE_COLUMNS].reset_index(drop=True)


def plausibility_warnings(changes: pd.DataFrame, *, factor: float = PLAUSIBLE_FACTOR) -> list[str]:
    """One line per row of :func:`implausible_changes`, for the planner to check.

    Example: ``Bev/Juice 2027-03: 400 is 34.5x the statistical forecast 11.6 (beyond 5x);
    check it is meant``.
    """
    out = []
    for rec in changes.itertuples(index=False):
        how = f"{rec.ratio:.3g}x" if rec.ratio >= 1 else f"1/{1 / rec.ratio:.3g}"
        out.append(
            f"{rec.key} {pd.Timestamp(rec.ds):%Y-%m}: {rec.final:,.6g} is {how} the statistical forecast "
            f"{rec.statistical:,.6g} (beyond {factor:g}x either way); check it is meant"
        )
    return out


class _Members:
    """Which bottom series add into each series: the sparse ``S`` (every id x bottom id), with
    a series' members as a dense mask only for the few keys overrides name."""

    def __init__(self, S: Hierarchy):
        self.S = S.S.tocsr().astype(float)
        self.sizes = np.diff(self.S.indptr)
        self._rows: dict[int, np.ndarray] = {}

    def __getitem__(self, pos: int) -> np.ndarray:
        if pos not in self._rows:
            mask = np.zeros(self.S.shape[1], dtype=bool)
            mask[self.S.indices[self.S.indptr[pos] : self.S.indptr[pos + 1]]] = True
            self._rows[pos] = mask
        return self._rows[pos]


class _Replay:
    """The bottom x month matrix as overrides apply to it, with who changed which cell."""

    def __init__(self, start: np.ndarray, member: _Members, todo: pd.DataFrame, weights):
        self.values = start.copy()
        self.member, self.weights, self.basis = member, weights, todo["basis"].to_numpy()
        self.pos, self.month = todo["pos"].to_numpy(), todo["month"].to_numpy()
        self.value, self.pct = todo["value"].to_numpy(float), todo["change_pct"].to_numpy(float)
        self.ids, self.keys = todo["id"].to_numpy(), todo["key"].to_numpy()
        self.touched = np.zeros(start.shape, dtype=bool)
        self.stamp = np.full(start.shape, -1)  # position in todo of the last override changing a cell
        self.requested = np.zeros(len(todo))
        self.previous = np.zeros(len(todo))
        self.live: dict[int, list[int]] = {}  # month -> overrides whose target still stands

    def run(self) -> None:
        for i in range(len(self.pos)):
            under, j = self.member[self.pos[i]], self.month[i]
            col = self.values[:, j]  # a view: writing to it writes the matrix
            self.previous[i] = col[under].sum()
            pct = self.pct[i]
            self.requested[i] = self.value[i] if np.isnan(pct) else self.previous[i] * (1 + pct / 100)
            col[under] = _spread(self.requested[i], col[under], self.weights[under], self.basis[i])
            self.touched[under, j], self.stamp[under, j] = True, i
            # an earlier override of the very same series is replaced, not held against this one
            earlier = [a for a in self.live.get(j, []) if not np.array_equal(self.member[self.pos[a]], under)]
            self.live[j] = [*earlier, i]
            above = [a for a in earlier if self._within(i, a)]
            # nearest aggregate first, so a farther one counts it as held when it rescales
            for a in sorted(above, key=lambda a: self.member[self.pos[a]].sum()):
                self._hold(a, col, j)

    def _within(self, d: int, a: int) -> bool:
        """Whether override ``d``'s key is a strict descendant of override ``a``'s."""
        inner, outer = self.member[self.pos[d]], self.member[self.pos[a]]
        return bool(inner.sum() < outer.sum() and not (inner & ~outer).any())

    def _hold(self, a: int, col: np.ndarray, j: int) -> None:
        """Rescale aggregate ``a``'s series no descendant override claims, so ``a`` totals its target."""
        under = self.member[self.pos[a]]
        fixed = np.zeros_like(under)
        for d in self.live[j]:
            if self._within(d, a):
                fixed |= self.member[self.pos[d]]
        free = under & ~fixed
        need, have = self.requested[a] - col[fixed].sum(), col[free].sum()
        tol = _RTOL * max(1.0, abs(self.requested[a]))
        if abs(need - have) <= tol or have <= 0 or need < -tol:
            return  # holds already, or cannot hold: the conflict report shows which
        col[free] *= max(need, 0.0) / have
        self.touched[free, j], self.stamp[free, j] = True, a

    def conflicts(self, full: np.ndarray, months: pd.DatetimeIndex) -> pd.DataFrame:
        rows = []
        for j, live in sorted(self.live.items()):
            for a in live:
                result = float(full[self.pos[a], j])
                held = abs(result - self.requested[a]) <= _RTOL * max(1.0, abs(self.requested[a]))
                rows.extend(
                    [
                        months[j],
                        self.keys[a],
                        self.ids[a],
                        self.keys[d],
                        self.ids[d],
                        self.requested[a],
                        result,
                        held,
                    ]
                    for d in live
                    if self._within(d, a)
                )
        return pd.DataFrame(rows, columns=CONFLICT_COLUMNS).astype({"held": bool})


def _spread(target: float, current: np.ndarray, history: np.ndarray, basis: str) -> np.ndarray:
    """``target`` split over series in proportion to their current values (or history)."""
    choices = (history, current) if basis == "history" else (current, history)
    for weights in choices:
        weights = np.clip(weights, 0.0, None)  # a negative forecast takes no share
        total = weights.sum()
        if total > 0:
            return target * weights / total
    return np.full(len(current), target / len(current))


def _schedule(
    overrides: pd.DataFrame, S: Hierarchy, months: pd.DatetimeIndex, member: _Members
) -> pd.DataFrame:
    """The overrides in application order, with their key's row in ``S`` and month's column."""
    todo = overrides.reset_index(drop=True).copy()
    if "id" not in todo:
        todo["id"] = np.arange(1, len(todo) + 1)
    for name in ("value", "change_pct", "author"):
        if name not in todo:
            todo[name] = np.nan if name != "author" else None
    todo["key"] = todo["key"].astype(str)
    todo["pos"] = S.index.get_indexer(todo["key"])
    ds = pd.to_datetime(todo["ds"]).dt.to_period("M").dt.to_timestamp()
    todo["month"] = months.get_indexer(ds)
    bad = (todo["pos"] < 0) | (todo["month"] < 0) | todo[["value", "change_pct"]].isna().all(axis=1)
    if bad.any():
        shown = [f"{k} {m:%Y-%m}" for k, m in zip(todo.loc[bad, "key"], ds[bad], strict=True)]
        raise OverrideError(
            f"{int(bad.sum())} override(s) name a series or month not in the plan, or give neither "
            f"value nor change_pct: {format_examples(shown)}. Check them with validate_overrides first."
        )
    todo["depth"] = member.sizes[todo["pos"].to_numpy()]
    return todo.sort_values(["depth", "id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _bottom_matrix(lines: pd.DataFrame, bottom: pd.Index, months: pd.DatetimeIndex) -> np.ndarray:
    """The bottom series' statistical forecast, bottom x month (0 where a line is missing)."""
    part = lines[lines["unique_id"].isin(bottom)]
    wide = part.pivot(index="unique_id", columns="ds", values="statistical")
    return wide.reindex(index=bottom, columns=months).fillna(0.0).to_numpy(float)


def _history_weights(history: pd.DataFrame, bottom: pd.Index, first: pd.Timestamp) -> np.ndarray:
    """Each bottom series' demand in the 12 months before the plan (none below zero)."""
    ds = pd.to_datetime(history["ds"])
    recent = history[(ds >= first - pd.DateOffset(months=HISTORY_MONTHS)) & (ds < first)]
    total = recent.groupby(recent["unique_id"].astype(str))["y"].sum()
    return np.clip(total.reindex(bottom).fillna(0.0).to_numpy(float), 0.0, None)


def _last_override(member: _Members, stamp: np.ndarray) -> np.ndarray:
    """Per series and month, the position of the last override changing one of its bottom
    series (-1 for none)."""
    S = member.S
    last = np.full((S.shape[0], stamp.shape[1]), -1)
    filled = member.sizes > 0
    starts = S.indptr[:-1][filled]
    for j in np.flatnonzero((stamp >= 0).any(axis=0)):  # only months someone overrode
        last[filled, j] = np.maximum.reduceat(stamp[S.indices, j], starts)
    return last


def _write_lines(lines, S, months, full, changed, last, authors) -> pd.DataFrame:
    """The input lines with ``final``, ``consensus`` and ``author`` from the replay."""
    rows = S.index.get_indexer(lines["unique_id"].astype(str))
    cols = months.get_indexer(lines["ds"])
    if (rows < 0).any():
        unknown = pd.unique(lines.loc[rows < 0, "unique_id"])
        raise OverrideError(
            f"plan lines of series {format_examples(unknown)} are not in the summing matrix; build S "
            "with summing() from the same plan's bottom series."
        )
    hit = changed[rows, cols]
    value = full[rows, cols]
    out = lines.copy()
    # untouched lines keep the statistical forecast exactly, not its re-summed float twin
    out["final"] = np.where(hit, value, out["statistical"].to_numpy(float))
    out["consensus"] = np.where(hit, value, np.nan)
    who = last[rows, cols]
    named = np.array([*authors, None], dtype=object)  # position -1 (no override) names nobody
    out["author"] = pd.Series(np.where(hit, named[who], None), index=out.index, dtype=object)
    return out


def _check(out: pd.DataFrame, S: Hierarchy) -> None:
    """The replayed plan has no negative line an override made, and adds up at every level."""
    made = out["consensus"].notna()
    negative = made & (out["final"] < 0)
    if negative.any():
        raise OverrideError(
            f"overrides would take {format_examples(pd.unique(out.loc[negative, 'unique_id']))} below zero; "
            "check the values and change_pct of the overrides on these series."
        )
    if not is_coherent(out, S):
        expected = rollup(out[out["unique_id"].isin(S.columns)], S, "final")
        actual = out.set_index(["unique_id", "ds"])["final"].reindex(expected.index)
        scale = max(float(np.abs(expected).max()), 1.0)
        bad = expected.index[np.abs(actual.to_numpy() - expected.to_numpy()) > _RTOL * scale]
        keys = pd.unique(bad.get_level_values("unique_id"))
        raise OverrideError(
            f"the plan does not add up after the overrides at {format_examples(keys)}: their final "
            "is not the sum of their bottom series. The statistical forecast of these lines is not "
            "reconciled; rebuild the plan from a reconciled forecast."
        )
