"""Actual demand in the plan store, with revisions.

Actuals are kept per plan for the bottom series, in the data's frequency. Loading a month
that is already stored with another value (a restatement from the ERP) adds a revision;
the earlier value is kept, never overwritten, so an accuracy figure can always be traced
to the numbers it was computed from.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection, Engine

from . import bulk
from .tables import actuals

__all__ = ["load", "latest", "revisions"]


def latest(
    conn: Connection, plan: str, *, revisions_only: bool = False, drivers: bool = False
) -> pd.DataFrame:
    """The latest revision of every stored month: ``unique_id, ds, y, revision`` (and with
    ``drivers`` the driver columns kept with them, e.g. ``price, promo``), read on ``conn``."""
    last = (
        select(actuals.c.unique_id, actuals.c.ds, func.max(actuals.c.revision).label("revision"))
        .where(actuals.c.plan == plan)
        .group_by(actuals.c.unique_id, actuals.c.ds)
        .subquery()
    )
    query = select(
        actuals.c.unique_id, actuals.c.ds, actuals.c.y, actuals.c.revision, actuals.c.drivers
    ).join(
        last,
        and_(
            actuals.c.unique_id == last.c.unique_id,
            actuals.c.ds == last.c.ds,
            actuals.c.revision == last.c.revision,
        ),
    )
    query = query.where(actuals.c.plan == plan)
    if revisions_only:
        query = query.where(actuals.c.revision > 1)
    frame = pd.DataFrame(conn.execute(query).all(), columns=["unique_id", "ds", "y", "revision", "drivers"])
    frame = frame.astype({"unique_id": object, "y": float, "revision": int})
    if drivers:
        extra = pd.DataFrame([json.loads(v) if v else {} for v in frame["drivers"]], index=frame.index)
        frame = pd.concat([frame, extra], axis=1)
    frame = frame.drop(columns="drivers")
    frame["ds"] = pd.to_datetime(frame["ds"])
    return frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def _drivers_json(frame: pd.DataFrame, columns: list[str]) -> list[str | None]:
    """The drivers of each row as a JSON object (numbers only; empty cells left out), the
    text ``json.dumps`` would write, built a column at a time."""
    if not columns:
        return [None] * len(frame)
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    parts = []
    for j, column in enumerate(columns):
        key = json.dumps(column)
        parts.append(
            [
                "" if v != v else f"{key}: {v!r}" if math.isfinite(v) else f"{key}: {json.dumps(v)}"
                for v in values[:, j].tolist()
            ]
        )
    return ["{" + ", ".join(p for p in row if p) + "}" for row in zip(*parts, strict=True)]


def revisions(engine: Engine, plan: str) -> pd.DataFrame:
    """Every stored value, each revision of a restated month included."""
    query = select(actuals).where(actuals.c.plan == plan).order_by(actuals.c.unique_id, actuals.c.ds)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all())
    if len(frame):
        frame["ds"] = pd.to_datetime(frame["ds"])
    return frame


def load(conn: Connection, plan: str, frame: pd.DataFrame, source: str | None = None) -> dict[str, int]:
    """Store ``frame`` (``unique_id, ds, y`` and any driver columns) as actuals of ``plan``,
    on the write transaction ``conn`` (the stored revisions are read under its lock, so two
    loads at once never number the same revision twice).

    Returns the count of ``new`` months, ``revised`` months (a new revision) and
    ``unchanged`` ones (already stored with the same value; not written again).
    """
    stored = latest(conn, plan)
    extra = [c for c in frame.columns if c not in ("unique_id", "ds", "y")]
    incoming = frame[["unique_id", "ds", "y", *extra]].copy()
    incoming["ds"] = pd.to_datetime(incoming["ds"])
    both = incoming.merge(stored, on=["unique_id", "ds"], how="left", suffixes=("", "_stored"))
    known = both["revision"].notna()
    stored_y = both["y_stored"].astype(float).to_numpy()
    same = known & np.isclose(both["y"].astype(float).to_numpy(), stored_y, rtol=1e-9, atol=1e-9)
    write = both[~same].copy()
    write["revision"] = write["revision"].fillna(0).astype(int) + 1
    now = datetime.now(UTC).replace(tzinfo=None)
    n = len(write)
    bulk.insert_columns(  # one prepared statement (COPY on PostgreSQL): 1M months in seconds
        conn,
        actuals,
        {
            "plan": [plan] * n,
            "unique_id": bulk.texts(write["unique_id"]),
            "ds": bulk.dates(write["ds"]),
            "y": bulk.floats(write["y"]),
            "revision": write["revision"].astype(int).tolist(),
            "loaded_at": [now] * n,
            "source": [source] * n,
            "drivers": _drivers_json(write, extra),
        },
    )
    return {"new": int((~known).sum()), "revised": int((known & ~same).sum()), "unchanged": int(same.sum())}
