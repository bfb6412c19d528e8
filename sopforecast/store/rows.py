"""Plan versions, series, lines and overrides as database rows, and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert

from .tables import overrides, plan_lines

__all__ = ["bound_order", "series_rows", "line_rows", "insert_overrides"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def bound_order(name: str) -> tuple[int, int]:
    side, level = name.split("-")
    return int(level), 0 if side == "lo" else 1


def series_rows(version_id: int, levels: pd.Series, keys: pd.DataFrame) -> list[dict]:
    keys = keys.reindex(levels.index)
    records = keys.to_dict("records") if len(keys.columns) else [{}] * len(keys)
    return [
        {
            "version_id": int(version_id),
            "unique_id": uid,
            "level": level,
            "position": i,
            "keys": json.dumps({k: v for k, v in rec.items() if isinstance(v, str)}),
        }
        for i, (uid, level, rec) in enumerate(zip(levels.index, levels.to_numpy(), records, strict=True))
    ]


def line_rows(version_id: int, lines: pd.DataFrame) -> list[dict]:
    bounds = [c for c in lines.columns if c.startswith("statistical-")]
    frame = lines.assign(ds=pd.to_datetime(lines["ds"]).dt.date, version_id=int(version_id))
    if bounds:
        values = frame[bounds].to_numpy(dtype=float)
        names = [b.removeprefix("statistical-") for b in bounds]
        frame["intervals"] = [json.dumps(dict(zip(names, row.tolist(), strict=True))) for row in values]
    else:
        frame["intervals"] = None
    for col in ("naive", "consensus", "price", "unit_cost", "author"):
        if col not in frame:
            frame[col] = None
    cols = [c.name for c in plan_lines.c]
    out = frame[cols].astype(object)
    return out.where(pd.notna(out), None).to_dict("records")


def _origin(rec: dict) -> int:
    origin = rec.get("origin_id")
    return int(rec["id"]) if origin is None or pd.isna(origin) else int(origin)


def insert_overrides(conn, version_id: int, frame: pd.DataFrame, *, copied: bool) -> np.ndarray:
    """Insert override rows in order; their new ids, in the same order."""
    if frame is None or frame.empty:
        return np.array([], dtype=int)
    now = _now()
    rows = [
        {
            "version_id": int(version_id),
            "key": rec["key"],
            "ds": pd.Timestamp(rec["ds"]).date(),
            "value": None if pd.isna(rec.get("value")) else float(rec["value"]),
            "change_pct": None if pd.isna(rec.get("change_pct")) else float(rec["change_pct"]),
            "basis": rec.get("basis") or "statistical",
            "author": rec["author"],
            "reason": rec["reason"],
            "source": None if pd.isna(rec.get("source")) else str(rec.get("source")),
            "created_at": rec["created_at"] if copied else now,
            "copied_from": int(rec["id"]) if copied else None,
            # a copy carries on the override it copies (and that one's origin, if a copy too)
            "origin_id": _origin(rec) if copied else None,
        }
        for rec in frame.to_dict("records")
    ]
    result = conn.execute(insert(overrides).returning(overrides.c.id, sort_by_parameter_order=True), rows)
    return np.array([r[0] for r in result], dtype=int)
