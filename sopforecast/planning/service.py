"""The planning service: every change to a plan is one unit of work.

Read a :class:`~sopforecast.store.plans.Snapshot` of the version (its row counter first),
compute the new plan with the pure rules (:func:`~.consensus.apply_overrides`), and hand
it to one write transaction that checks the counter. A write computed from a stale read
changes nothing; the service reads again and replays, so two planners who apply, revert
or publish at the same moment both keep every decision that reported success.

The rules of a cycle:

* A cycle has at most one open draft (per branch; the main line has none). A change to a
  published version continues the cycle's draft, or opens one that carries the published
  version's overrides; a named branch is opened only when asked for (``branch``).
* A cycle whose months already have actuals is closed: a change or a publish is refused
  unless it is reopened with a reason, which the version keeps.
* A new statistical forecast for a cycle (a pipeline run) carries the overrides in force
  in the cycle's current version onto the new draft, and the draft it replaces is kept as
  ``superseded``.
"""

from __future__ import annotations

import logging
import random
import time

import pandas as pd

from ..data.hierarchy import Hierarchy
from ..errors import SopforecastError, format_examples
from ..store.plans import PlanStore, PlanVersion, Snapshot, StaleVersion, user
from .buckets import to_buckets
from .consensus import Consensus, apply_overrides
from .lines import summing

__all__ = [
    "ClosedCycle",
    "BusyVersion",
    "RETRIES",
    "structure",
    "history",
    "create_version",
    "apply",
    "revert",
    "publish",
    "check_open",
]

logger = logging.getLogger(__name__)

RETRIES = 60  # reads and replays before a change gives up (others kept changing the version)


class ClosedCycle(SopforecastError):
    """The cycle already has actuals for its months; it changes only when reopened."""


class BusyVersion(SopforecastError):
    """The version kept changing under this change for every retry."""


def structure(store: PlanStore, version: PlanVersion) -> tuple[Hierarchy, pd.Series]:
    """The hierarchy (sparse summing matrix) and levels of a version (:func:`~.lines.summing`)."""
    return summing(store.bottom(version), version.hierarchy)


def history(store: PlanStore, version: PlanVersion) -> pd.DataFrame:
    """The stored actuals of ``version``'s plan in its planning buckets, bottom series
    only: ``unique_id, ds, y``."""
    actual = store.actuals(version.plan)[["unique_id", "ds", "y"]]
    if actual.empty:
        return actual
    freq = (version.data_config or {}).get("freq", "MS")
    return to_buckets(actual, ["y"], freq, version.bucket)


def check_open(store: PlanStore, version: PlanVersion, reopen: str | None = None) -> None:
    """Refuse a change to a closed cycle (one with actuals for its months) unless ``reopen``
    gives the reason.

    Raises
    ------
    ClosedCycle
    """
    first, _ = store.months(version)
    last = store.actuals_from(version.plan, first)
    if last is None or (reopen and reopen.strip()):
        return
    raise ClosedCycle(
        f"cycle {version.cycle} of plan {version.plan} is closed: actuals up to {last:%Y-%m} are "
        f"stored for its months (it starts {first:%Y-%m}), and the monitor scores the plan as it was. "
        "To change it anyway, reopen it with a reason (--reopen 'REASON').",
        setting="reopen",
    )


def _pause(attempt: int) -> None:
    time.sleep(random.uniform(0.0, min(0.5, 0.01 * 2 ** min(attempt, 6))))


def create_version(
    store: PlanStore,
    plan: str,
    lines: pd.DataFrame,
    bottom: pd.DataFrame,
    hierarchy: list[str],
    *,
    cycle: str | None = None,
    source_run_id: str | None = None,
    created_by: str | None = None,
    bucket: str = "month",
    history_end: pd.Timestamp | None = None,
    data_config: dict | None = None,
) -> PlanVersion:
    """Store a new draft of ``plan``'s ``cycle`` (default: its first month) made from a new
    statistical forecast.

    The overrides in force in the cycle's current version are carried onto it (those whose
    series and month the new plan still has; the others are logged and left behind) and
    the cycle's open draft, if any, is kept as ``superseded``.
    """
    import json

    cycle = cycle or pd.Timestamp(lines["ds"].min()).strftime("%Y-%m")
    S, levels = summing(bottom, hierarchy)
    keys = S.key_values()
    row = {
        "plan": plan,
        "cycle": cycle,
        "status": "draft",
        "source_run_id": source_run_id,
        "created_at": pd.Timestamp.now(tz="UTC").tz_localize(None).to_pydatetime(),
        "created_by": created_by or user(),
        "bucket": bucket,
        "history_end": pd.Timestamp(history_end).date() if history_end is not None else None,
        "hierarchy": json.dumps(hierarchy),
        "data_config": json.dumps(data_config) if data_config else None,
    }
    for attempt in range(RETRIES):
        current = store.current(plan, cycle)
        carried, supersede, out = None, None, lines
        if current is not None:
            snap = store.snapshot(current)
            supersede = snap.version if snap.version.status == "draft" else None
            carried = _carried(snap, lines, S)
            if len(carried):
                past = history(store, snap.version) if (carried["basis"] == "history").any() else None
                out = apply_overrides(lines, carried, S, history=past).lines
        try:
            version, _ = store.insert_version(
                {**row, "parent_id": current.id if current is not None else None},
                out,
                levels,
                keys,
                carried=carried,
                supersede=supersede,
            )
        except StaleVersion:
            _pause(attempt)
            continue
        if current is not None:
            logger.info(
                "%s continues %s%s",
                version.label,
                current.label,
                f" with its {len(carried)} override(s)" if carried is not None and len(carried) else "",
            )
        return version
    raise BusyVersion(f"cycle {cycle} of plan {plan} kept changing while a new draft was stored; try again.")


def _carried(snap: Snapshot, lines: pd.DataFrame, S: pd.DataFrame) -> pd.DataFrame:
    """The active overrides of ``snap`` that the new plan ``lines`` can hold."""
    active = snap.active
    if active.empty:
        return active
    months = set(pd.to_datetime(lines["ds"]).unique())
    fits = active["key"].isin(S.index) & pd.to_datetime(active["ds"]).isin(months)
    if not fits.all():
        left = active[~fits]
        logger.warning(
            "%d override(s) of %s are not carried: the new plan has no such series or month: %s",
            len(left),
            snap.version.label,
            format_examples(
                [
                    f"{k} {d:%Y-%m} (id {i})"
                    for k, d, i in zip(left["key"], left["ds"], left["id"], strict=True)
                ]
            ),
        )
    return active[fits].reset_index(drop=True)


def _target(store: PlanStore, version: PlanVersion, branch: str) -> PlanVersion:
    """The version a change to ``version`` lands on: its cycle's current version (the open
    draft of ``branch``, else the main line's current version, which a new branch starts from)."""
    if version.status == "draft" and version.branch == branch:
        return version
    return store.current(version.plan, version.cycle, branch) or version


def _remap(result: Consensus, ids: dict[int, int]) -> Consensus:
    """The consensus with provisional and carried override ids replaced by the stored ones."""

    def swap(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        frame = frame.copy()
        for col in columns:
            if col in frame and len(frame):
                frame[col] = [ids.get(int(v), int(v)) if pd.notna(v) else v for v in frame[col]]
        return frame

    return Consensus(
        result.lines,
        swap(result.conflicts, ["override_id", "descendant_override_id"]),
        swap(result.applied, ["id"]),
    )


def _change(
    store: PlanStore,
    version: PlanVersion,
    *,
    new: pd.DataFrame | None,
    origin: int | None,
    by: str,
    reason: str | None,
    branch: str,
    reopen: str | None,
    past: pd.DataFrame | None,
) -> tuple[PlanVersion, Consensus]:
    """Read, replay, write; again from the read when another write came first."""
    for attempt in range(RETRIES):
        target = _target(store, store.version(version.id), branch)
        snap = store.snapshot(target)
        if snap.version.status == "superseded":  # replaced since it was looked up: look again
            _pause(attempt)
            continue
        check_open(store, snap.version, reopen)
        # a named branch not open yet starts as a new draft from the main line's current version
        fork = bool(branch) and not (snap.version.status == "draft" and snap.version.branch == branch)
        active, revert = snap.active, None
        if origin is not None:
            origins = active["origin_id"].fillna(active["id"]).astype(int) if len(active) else active["id"]
            hit = active[origins.to_numpy() == origin] if len(active) else active
            if hit.empty:
                raise SopforecastError(
                    f"override {origin} is not in force in {snap.version.label} (reverted there "
                    "already); see 'sopforecast override list'."
                )
            revert = (int(hit["id"].iloc[0]), by, reason)
            active = active[active["id"] != revert[0]]
        every = active
        if new is not None and len(new):
            start = int(snap.active["id"].max()) + 1 if len(snap.active) else 1
            new = new.assign(id=range(start, start + len(new)))
            every = pd.concat([active, new], ignore_index=True) if len(active) else new
        every = every.reset_index(drop=True)
        S, _ = summing(snap.bottom, snap.version.hierarchy)
        needs_history = "basis" in every and (every["basis"] == "history").any()
        if past is None and needs_history:
            past = history(store, snap.version)
        result = apply_overrides(snap.lines, every, S, history=past)
        try:
            written, ids = store.write_overrides(
                snap,
                result.lines,
                new=new,
                revert=revert,
                by=by,
                reopen=(by, reopen) if reopen else None,
                branch=branch,
                fork=fork,
            )
        except StaleVersion:
            _pause(attempt)
            continue
        if written.id != version.id:
            logger.info("%s is %s: the change went to %s", version.label, version.status, written.label)
        result = _remap(result, ids)
        made = {ids[int(i)] for i in new["id"]} if new is not None and len(new) else set()
        # what this change did: its own overrides (those carried on are in the audit)
        applied = result.applied[result.applied["id"].isin(made)].reset_index(drop=True)
        return written, Consensus(result.lines, result.conflicts, applied)
    raise BusyVersion(
        f"{version.label} kept changing under this change ({RETRIES} tries); nothing was applied. Try again."
    )


def apply(
    store: PlanStore,
    checked: pd.DataFrame,
    *,
    version: PlanVersion,
    basis: str = "statistical",
    history: pd.DataFrame | None = None,
    source: str | None = None,
    by: str | None = None,
    branch: str = "",
    reopen: str | None = None,
) -> tuple[PlanVersion, Consensus]:
    """Apply validated overrides (:func:`~.overrides.validate_overrides`) to ``version``'s
    cycle: its open draft takes them, or a new draft of a published version carries them.

    Parameters
    ----------
    branch : str, default ""
        Continue or open the named draft branch instead of the cycle's main draft.
    reopen : str, optional
        The reason to change a closed cycle (one with actuals); without it, refused.

    Returns
    -------
    (PlanVersion, Consensus)
        The version written and what the overrides did (ids as stored).
    """
    new = checked.assign(basis=basis)
    if source is not None or "source" not in new:
        new["source"] = source
    return _change(
        store,
        version,
        new=new,
        origin=None,
        by=by or user(),
        reason=None,
        branch=branch,
        reopen=reopen,
        past=history,
    )


def revert(
    store: PlanStore,
    override_id: int,
    *,
    by: str | None = None,
    reason: str | None = None,
    reopen: str | None = None,
    history: pd.DataFrame | None = None,
) -> tuple[PlanVersion, Consensus]:
    """Undo an override (of any version of its cycle: the one in force in the cycle's
    current version, which carries it on); the plan is replayed without it."""
    row = store.override(override_id)
    if row["reverted_at"] is not None:
        raise SopforecastError(
            f"override {override_id} was reverted already ({row['reverted_at']:%Y-%m-%d %H:%M} "
            f"by {row['reverted_by']})."
        )
    origin = int(row["origin_id"]) if row.get("origin_id") is not None else int(row["id"])
    version = store.version(int(row["version_id"]))
    return _change(
        store,
        version,
        new=None,
        origin=origin,
        by=by or user(),
        reason=reason,
        branch=version.branch if version.status == "draft" else "",
        reopen=reopen,
        past=history,
    )


def publish(
    store: PlanStore,
    ref: int | str | None = None,
    plan: str | None = None,
    *,
    by: str | None = None,
    reopen: str | None = None,
) -> PlanVersion:
    """Freeze a cycle's current draft (or the draft ``ref``); a closed cycle only when
    reopened with a reason."""
    version = store.version(ref, plan)
    if version.status == "draft":
        check_open(store, version, reopen)
    return store.publish(version, by=by)
