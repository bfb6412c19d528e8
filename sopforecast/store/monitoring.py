"""Monitoring records in the plan store: each run, its metrics and its exceptions."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from .tables import monitor_exceptions, monitor_metrics, monitor_runs

__all__ = ["record", "link", "runs", "kpis", "exceptions", "metrics"]

_METRICS = ("n", "actual", "wape", "accuracy", "bias", "mase", "tracking_signal", "coverage")


def _rows(frame: pd.DataFrame, run_id: int, columns: list[str]) -> list[dict]:
    out = frame.reindex(columns=columns).astype(object)
    out = out.where(pd.notna(out), None)
    records = out.to_dict("records")
    for rec in records:
        rec["run_id"] = run_id
        for key, value in rec.items():
            if isinstance(value, np.generic):
                rec[key] = value.item()
    return records


def _metric_rows(frame: pd.DataFrame, scope: str, key: str, run_id: int) -> list[dict]:
    if frame is None or frame.empty:
        return []
    part = frame.assign(
        scope=scope,
        key=frame[key].astype(str),
        level=frame["level"] if "level" in frame else None,
        cycle=frame["cycle"] if "cycle" in frame else None,
    )
    return _rows(part, run_id, ["scope", "cycle", "key", "level", "lag", "forecast", *_METRICS])


def record(
    conn: Connection,
    *,
    plan: str,
    cycle: str,
    created_by: str,
    versions: int,
    actuals_to,
    report: str | None,
    kpis: pd.DataFrame,
    currency: str | None = None,
    levels: pd.DataFrame,
    trend: pd.DataFrame,
    series: pd.DataFrame,
    segments: pd.DataFrame,
    exceptions: pd.DataFrame,
) -> int:
    """Store a monitoring run with its metrics and exceptions, on the write transaction ``conn``."""
    run_id = conn.execute(
        insert(monitor_runs).values(
            plan=plan,
            cycle=cycle,
            created_at=datetime.now(UTC).replace(tzinfo=None),
            created_by=created_by,
            versions=versions,
            actuals_to=pd.Timestamp(actuals_to).date() if actuals_to is not None else None,
            report=report,
            kpis=kpis.to_json(orient="records"),
            currency=currency,
        )
    ).inserted_primary_key[0]
    seg = segments.assign(key=_segment_keys(segments)) if len(segments) else segments
    rows = [
        *_metric_rows(levels, "level", "level", run_id),
        *_metric_rows(trend, "level", "level", run_id),
        *_metric_rows(series, "series", "unique_id", run_id),
        *(_metric_rows(seg, "segment", "key", run_id) if "key" in seg else []),
    ]
    if rows:
        conn.execute(insert(monitor_metrics), rows)
    if len(exceptions):
        cols = [c.name for c in monitor_exceptions.c if c.name != "run_id"]
        conn.execute(insert(monitor_exceptions), _rows(exceptions, run_id, cols))
    return int(run_id)


def _segment_keys(segments: pd.DataFrame) -> pd.Series:
    """``abc=A``-style names of segment rows (one segment column set per row; none: ``all``)."""
    key = pd.Series("all", index=segments.index, dtype=object)
    for col in ("xyz", "abc", "demand_class"):
        if col in segments:
            set_ = segments[col].notna()
            key[set_] = col + "=" + segments.loc[set_, col].astype(str)
    return key


def link(conn: Connection, run_id: int, mlflow_run_id: str) -> None:
    """Record the MLflow run of a monitoring run (on the write transaction ``conn``)."""
    conn.execute(update(monitor_runs).where(monitor_runs.c.id == run_id).values(mlflow_run_id=mlflow_run_id))


def runs(engine: Engine, plan: str | None = None) -> pd.DataFrame:
    query = select(monitor_runs).order_by(monitor_runs.c.id.desc())
    if plan:
        query = query.where(monitor_runs.c.plan == plan)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in monitor_runs.c])


def kpis(engine: Engine, run_id: int) -> pd.DataFrame:
    """The tiles of a monitoring run's report."""
    with engine.connect() as conn:
        text = conn.execute(select(monitor_runs.c.kpis).where(monitor_runs.c.id == run_id)).scalar_one()
    return pd.read_json(io.StringIO(text or "[]"), orient="records")


def exceptions(engine: Engine, run_id: int) -> pd.DataFrame:
    query = select(monitor_exceptions).where(monitor_exceptions.c.run_id == run_id)
    with engine.connect() as conn:
        frame = pd.DataFrame(
            conn.execute(query.order_by(monitor_exceptions.c.rank)).mappings().all(),
            columns=[c.name for c in monitor_exceptions.c],
        )
    return frame


def metrics(engine: Engine, run_id: int, scope: str | None = None) -> pd.DataFrame:
    query = select(monitor_metrics).where(monitor_metrics.c.run_id == run_id)
    if scope:
        query = query.where(monitor_metrics.c.scope == scope)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in monitor_metrics.c])
