"""Plan versions, series, lines and overrides as database rows, and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert

from . import bulk
from .tables import overrides

__all__ = [
    "bound_order",
    "BOUND_COLUMNS",
    "series_columns",
    "line_columns",
    "changed_lines",
    "insert_overrides",
]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def bound_order(name: str) -> tuple[int, int]:
    side, level = name.split("-")
    return int(level), 0 if side == "lo" else 1


# interval bounds kept as columns of plan_lines; bounds of other levels go to its JSON column
BOUND_COLUMNS = {"lo-80": "lo_80", "hi-80": "hi_80", "lo-95": "lo_95", "hi-95": "hi_95"}
VALUE_COLUMNS = ("statistical", "naive", "consensus", "final", "price", "unit_cost")


def series_columns(version_id: int, levels: pd.Series, keys: pd.DataFrame) -> dict[str, list]:
    """The ``plan_series`` rows of a version as column lists (:func:`.bulk.insert_columns`)."""
    keys = keys.reindex(levels.index)
    n = len(levels)
    records = keys.to_dict("records") if len(keys.columns) else [{}] * n
    encoded = [json.dumps({k: v for k, v in rec.items() if isinstance(v, str)}) for rec in records]
    return {
        "version_id": [int(version_id)] * n,
        "unique_id": [str(u) for u in levels.index],
        "level": [str(v) for v in levels.to_numpy()],
        "position": list(range(n)),
        "keys": encoded,
    }


def line_columns(version_id: int, lines: pd.DataFrame) -> dict[str, list]:
    """The ``plan_lines`` rows of a version as column lists: the 80/95% bounds in their own
    columns, any other level's bounds as JSON (``intervals``; empty when there are none)."""
    n = len(lines)
    out: dict[str, list] = {
        "version_id": [int(version_id)] * n,
        "unique_id": [str(u) for u in lines["unique_id"]],
        "ds": bulk.dates(lines["ds"]),
    }
    for col in VALUE_COLUMNS:
        out[col] = bulk.floats(lines[col]) if col in lines else [None] * n
    out["author"] = bulk.texts(lines["author"]) if "author" in lines else [None] * n
    bounds = {c.removeprefix("statistical-"): c for c in lines.columns if c.startswith("statistical-")}
    for name, column in BOUND_COLUMNS.items():
        out[column] = bulk.floats(lines[bounds.pop(name)]) if name in bounds else [None] * n
    if bounds:  # levels other than 80 and 95: rare, kept as before
        values = lines[list(bounds.values())].to_numpy(dtype=float)
        names = list(bounds)
        out["intervals"] = [json.dumps(dict(zip(names, row, strict=True))) for row in values.tolist()]
    else:
        out["intervals"] = [None] * n
    return out


def changed_lines(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame | None:
    """The rows of ``new`` whose stored values differ from ``old`` (the same lines as read
    from the store, same series and months in the same order); ``None`` when the two do not
    line up that way (then every line is written)."""
    stored = [c for c in (*VALUE_COLUMNS, "author") if c in old or c in new]
    bounds = sorted(c for c in new.columns if c.startswith("statistical-"))
    if (
        len(old) != len(new)
        or bounds != sorted(c for c in old.columns if c.startswith("statistical-"))
        or any((c in old) != (c in new) for c in stored)
        or not np.array_equal(old["unique_id"].to_numpy(), new["unique_id"].to_numpy())
        or not np.array_equal(pd.to_datetime(old["ds"]).to_numpy(), pd.to_datetime(new["ds"]).to_numpy())
    ):
        return None
    differs = np.zeros(len(new), dtype=bool)
    for col in [c for c in stored if c in new] + bounds:
        if col == "author":
            a = old[col].astype(object).where(old[col].notna(), None).to_numpy()
            b = new[col].astype(object).where(new[col].notna(), None).to_numpy()
            differs |= a != b
        else:
            a = old[col].to_numpy(dtype=float)
            b = new[col].to_numpy(dtype=float)
            differs |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return new[differs]


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
