"""The store's read queries, each on a connection the caller opened (so a unit of work can
read a version, its lines, keys and overrides in one transaction)."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from ..data.hierarchy import key_columns
from . import rows
from .tables import overrides, plan_lines, plan_series, plan_versions
from .versions import PlanNotFound, PlanVersion

__all__ = ["current_row", "lines", "top_totals", "as_lines", "published", "keys", "bottom", "overrides_of"]


def current_row(conn: Connection, base, cycle: str, branch: str = ""):
    """The row of a cycle's current version: its open draft on ``branch``, else its latest
    published version, else its latest version of any status (``base``: the plan's select)."""
    in_cycle = base.where(plan_versions.c.cycle == cycle)
    for query in (
        in_cycle.where(and_(plan_versions.c.status == "draft", plan_versions.c.branch == branch)),
        in_cycle.where(plan_versions.c.status == "published").order_by(plan_versions.c.number.desc()),
        in_cycle.order_by(plan_versions.c.number.desc()),
    ):
        row = conn.execute(query.limit(1)).first()
        if row is not None:
            return row
    return None


def lines(conn: Connection, vid: int, where: str) -> pd.DataFrame:
    """The plan lines of version ``vid``, series in order, interval bounds as columns."""
    query = (
        select(*_LINE_COLUMNS, plan_series.c.level)
        .join(
            plan_series,
            and_(
                plan_series.c.version_id == plan_lines.c.version_id,
                plan_series.c.unique_id == plan_lines.c.unique_id,
            ),
        )
        .where(plan_lines.c.version_id == vid)
        .order_by(plan_series.c.position, plan_lines.c.ds)
    )
    frame = _frame(conn, query)
    if frame.empty:
        raise PlanNotFound(f"plan version id {vid} has no lines in {where}.")
    return as_lines(frame)


def top_totals(conn: Connection, vid: int) -> pd.DataFrame:
    """``ds, statistical, final``: the month totals of version ``vid``'s top level (the level
    of its first series), summed in the database."""
    top = (
        select(plan_series.c.level)
        .where(plan_series.c.version_id == vid)
        .order_by(plan_series.c.position)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(
            plan_lines.c.ds,
            func.sum(plan_lines.c.statistical).label("statistical"),
            func.sum(plan_lines.c.final).label("final"),
        )
        .join(
            plan_series,
            and_(
                plan_series.c.version_id == plan_lines.c.version_id,
                plan_series.c.unique_id == plan_lines.c.unique_id,
            ),
        )
        .where(plan_lines.c.version_id == vid, plan_series.c.level == top)
        .group_by(plan_lines.c.ds)
        .order_by(plan_lines.c.ds)
    )
    frame = _frame(conn, query)
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame.astype({"statistical": float, "final": float})


def published(conn: Connection, plan: str, through=None) -> pd.DataFrame:
    """The lines of every published version of ``plan`` dated up to ``through`` (every
    month when ``None``), stacked newest version first with ``version_id`` and ``cycle``;
    versions without such a month are not read."""
    query = (
        select(*_LINE_COLUMNS, plan_series.c.level, plan_lines.c.version_id, plan_versions.c.cycle)
        .join(
            plan_series,
            and_(
                plan_series.c.version_id == plan_lines.c.version_id,
                plan_series.c.unique_id == plan_lines.c.unique_id,
            ),
        )
        .join(plan_versions, plan_versions.c.id == plan_lines.c.version_id)
        .where(and_(plan_versions.c.plan == plan, plan_versions.c.status == "published"))
        .order_by(plan_lines.c.version_id.desc(), plan_series.c.position, plan_lines.c.ds)
    )
    if through is not None:
        query = query.where(plan_lines.c.ds <= pd.Timestamp(through).date())
    frame = _frame(conn, query)
    if frame.empty:
        return pd.DataFrame()
    out = as_lines(frame)
    out["version_id"] = out["version_id"].astype(int)
    return out


_LINE_COLUMNS = [
    plan_lines.c[c]
    for c in ("unique_id", "ds", "statistical", *rows.BOUND_COLUMNS.values(), "intervals")
    + ("naive", "consensus", "final", "author", "price", "unit_cost")
]


def _frame(conn: Connection, query) -> pd.DataFrame:
    result = conn.execute(query)
    return pd.DataFrame.from_records(result.all(), columns=list(result.keys()))  # tuples: fast


def as_lines(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored line rows (the columns of ``plan_lines`` and the series' ``level``) as plan
    lines (:mod:`sopforecast.planning.lines`): bounds as ``statistical-lo-80`` ... columns
    (a level's columns when any line has them), other columns after them."""
    parts = {}
    for name, column in rows.BOUND_COLUMNS.items():
        values = frame[column].astype(float)
        if values.notna().any():  # a bound no line has was not written (or was empty throughout)
            parts[name] = values
    if frame["intervals"].notna().any():  # a level other than 80 and 95
        extra = pd.DataFrame([json.loads(v) if v else {} for v in frame["intervals"]], index=frame.index)
        for name in extra.columns:
            parts[name] = extra[name].astype(float)
    order = sorted(parts, key=rows.bound_order)
    bounds = pd.DataFrame({f"statistical-{n}": parts[n] for n in order}, index=frame.index)
    frame = frame.copy()
    frame["ds"] = pd.to_datetime(frame["ds"])
    frame["author"] = frame["author"].astype(object).where(frame["author"].notna(), None)
    front = frame[["unique_id", "level", "ds", "statistical"]]
    rest = frame[["naive", "consensus", "final", "author", "price", "unit_cost"]].astype(
        {c: float for c in ("naive", "consensus", "final", "price", "unit_cost")}
    )
    extra_cols = [c for c in frame.columns if c not in _KNOWN]  # e.g. version_id, cycle
    return pd.concat([front, bounds, rest, frame[extra_cols]], axis=1)


_KNOWN = {c.name for c in _LINE_COLUMNS} | {"level"}


def bottom(conn: Connection, version: PlanVersion) -> pd.DataFrame:
    """The bottom series of a version with their key columns (``unique_id`` + keys)."""
    keys_ = keys(conn, version)
    full = keys_.notna().all(axis=1) if len(keys_.columns) else pd.Series(True, index=keys_.index)
    return keys_[full].reset_index()


def keys(conn: Connection, version: PlanVersion) -> pd.DataFrame:
    """Key columns of every series of a version (index ``unique_id``; empty below its level)."""
    query = select(plan_series.c.unique_id, plan_series.c["keys"]).where(
        plan_series.c.version_id == version.id
    )
    found = conn.execute(query.order_by(plan_series.c.position)).all()
    frame = pd.DataFrame([json.loads(r.keys) for r in found], index=[r.unique_id for r in found])
    frame.index.name = "unique_id"
    order = key_columns(version.hierarchy)
    return frame.reindex(columns=order)


def overrides_of(conn: Connection, version: PlanVersion | None, plan: str | None) -> pd.DataFrame:
    """Overrides (newest first) of a version, or of every version of ``plan``."""
    query = select(overrides, plan_versions.c.plan, plan_versions.c.cycle, plan_versions.c.number).join(
        plan_versions, plan_versions.c.id == overrides.c.version_id
    )
    if version is not None:
        query = query.where(overrides.c.version_id == version.id)
    if plan:
        query = query.where(plan_versions.c.plan == plan)
    frame = pd.DataFrame(conn.execute(query.order_by(overrides.c.id.desc())).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=[c.name for c in overrides.c] + ["plan", "cycle", "number"])
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame
