"""Supply records in the plan store: a version's backtest, scenarios and balance reviews.

Functions on a caller's connection (writes on the store's write transaction); the
repository (:class:`~sopforecast.store.plans.PlanStore`) opens them. Frames in and out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from . import bulk
from .tables import (
    balance_decisions,
    balance_months,
    balance_resources,
    balance_runs,
    plan_backtest,
    scenario_lines,
    scenarios,
)

__all__ = [
    "save_backtest",
    "backtest",
    "add_scenario",
    "scenario_rows",
    "changed_lines",
    "drop_scenario",
    "drop_version",
    "record_balance",
    "balance_rows",
    "balance_table",
]

_TABLES = {"resources": balance_resources, "months": balance_months, "decisions": balance_decisions}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _records(frame: pd.DataFrame, columns: list[str], **fixed) -> list[dict]:
    out = frame.reindex(columns=columns).copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.date
    out = out.astype(object).where(pd.notna(out), None)
    records = out.to_dict("records")
    for rec in records:
        rec.update(fixed)
        for key, value in rec.items():
            if isinstance(value, np.generic):
                rec[key] = value.item()
            if isinstance(value, float) and not np.isfinite(value):
                rec[key] = None
    return records


def _frame(conn: Connection, query, table) -> pd.DataFrame:
    result = conn.execute(query)
    names = list(result.keys())
    # rows as tuples into columns (a dict per row is several times slower on a backtest)
    frame = pd.DataFrame.from_records(result.all(), columns=names).reindex(columns=[c.name for c in table.c])
    for column in ("ds", "last", "cutoff"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column])
    return frame


def save_backtest(conn: Connection, version_id: int, frame: pd.DataFrame) -> int:
    """Keep the delivered forecast's backtest (``unique_id, cutoff, ds, y, forecast``)."""
    conn.execute(delete(plan_backtest).where(plan_backtest.c.version_id == version_id))
    return bulk.insert_columns(
        conn,
        plan_backtest,
        {
            "version_id": [version_id] * len(frame),
            "unique_id": bulk.texts(frame["unique_id"]),
            "cutoff": bulk.dates(frame["cutoff"]),
            "ds": bulk.dates(frame["ds"]),
            "y": bulk.floats(frame["y"]),
            "forecast": bulk.floats(frame["forecast"]),
        },
    )


def backtest(conn: Connection, version_id: int) -> pd.DataFrame:
    query = select(plan_backtest).where(plan_backtest.c.version_id == version_id)
    return _frame(conn, query, plan_backtest).drop(columns="version_id")


def add_scenario(
    conn: Connection,
    *,
    plan: str,
    name: str,
    version_id: int,
    kind: str,
    params: dict,
    description: str,
    created_by: str,
    seconds: float,
    lines: pd.DataFrame | None,
) -> int:
    """Store a scenario and the bottom lines it changes; the unique name makes a second
    scenario of the same name fail (IntegrityError) with nothing written."""
    scenario_id = conn.execute(
        insert(scenarios).values(
            plan=plan,
            name=name,
            version_id=version_id,
            kind=kind,
            params=json.dumps(params, default=str),
            description=description,
            created_at=_now(),
            created_by=created_by,
            seconds=seconds,
        )
    ).inserted_primary_key[0]
    if lines is not None and len(lines):
        columns = ["unique_id", "ds", "final", "price", "unit_cost", "keys"]
        conn.execute(insert(scenario_lines), _records(lines, columns, scenario_id=scenario_id))
    return int(scenario_id)


def scenario_rows(conn: Connection, plan: str | None = None, name: str | None = None) -> pd.DataFrame:
    query = select(scenarios).order_by(scenarios.c.id)
    if plan is not None:
        query = query.where(scenarios.c.plan == plan)
    if name is not None:
        query = query.where(scenarios.c.name == name)
    frame = _frame(conn, query, scenarios)
    frame["params"] = frame["params"].map(json.loads)
    return frame


def changed_lines(conn: Connection, scenario_id: int) -> pd.DataFrame:
    query = select(scenario_lines).where(scenario_lines.c.scenario_id == scenario_id)
    return _frame(conn, query, scenario_lines).drop(columns="scenario_id")


def _drop_runs(conn: Connection, where) -> None:
    """Remove the balance reviews ``where`` selects, with their tables."""
    runs = [r[0] for r in conn.execute(select(balance_runs.c.id).where(where))]
    for table in _TABLES.values():
        conn.execute(delete(table).where(table.c.run_id.in_(runs)))
    conn.execute(delete(balance_runs).where(balance_runs.c.id.in_(runs)))


def drop_scenario(conn: Connection, scenario_id: int) -> None:
    """Remove a scenario, its lines and its balance reviews."""
    _drop_runs(conn, balance_runs.c.scenario_id == scenario_id)
    conn.execute(delete(scenario_lines).where(scenario_lines.c.scenario_id == scenario_id))
    conn.execute(delete(scenarios).where(scenarios.c.id == scenario_id))


def drop_version(conn: Connection, version_id: int) -> None:
    """Remove what a version keeps here (before the version itself): its backtest, its
    scenarios (their lines and reviews on any version) and its balance reviews."""
    made = conn.execute(select(scenarios.c.id).where(scenarios.c.version_id == version_id)).scalars().all()
    for scenario_id in made:
        drop_scenario(conn, scenario_id)
    _drop_runs(conn, balance_runs.c.version_id == version_id)
    conn.execute(delete(plan_backtest).where(plan_backtest.c.version_id == version_id))


def record_balance(
    conn: Connection,
    *,
    plan: str,
    version_id: int,
    scenario_id: int | None,
    created_by: str,
    source: str | None,
    solver: str,
    rule: str,
    figures: dict,
    resources: pd.DataFrame,
    months: pd.DataFrame,
    decisions: pd.DataFrame,
    mlflow_run_id: str | None = None,
) -> int:
    """Store a balance review: its figures, resources, month totals and decisions."""
    clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in figures.items()}
    run_id = conn.execute(
        insert(balance_runs).values(
            plan=plan,
            version_id=version_id,
            scenario_id=scenario_id,
            created_at=_now(),
            created_by=created_by,
            source=source,
            solver=solver,
            rule=rule,
            figures=json.dumps(clean, default=float),
            mlflow_run_id=mlflow_run_id,
        )
    ).inserted_primary_key[0]
    for key, frame in (("resources", resources), ("months", months), ("decisions", decisions)):
        table = _TABLES[key]
        columns = [c.name for c in table.c if c.name != "run_id"]
        if len(frame):
            conn.execute(insert(table), _records(frame, columns, run_id=int(run_id)))
    return int(run_id)


def balance_rows(
    conn: Connection, plan: str | None = None, version_id: int | None = None, run_id: int | None = None
) -> pd.DataFrame:
    query = select(balance_runs).order_by(balance_runs.c.id.desc())
    if plan is not None:
        query = query.where(balance_runs.c.plan == plan)
    if version_id is not None:
        query = query.where(balance_runs.c.version_id == version_id)
    if run_id is not None:
        query = query.where(balance_runs.c.id == run_id)
    frame = _frame(conn, query, balance_runs)
    frame["figures"] = frame["figures"].map(json.loads)
    frame["scenario_id"] = frame["scenario_id"].astype("Int64")  # the base review has none
    return frame


def balance_table(conn: Connection, run_id: int, which: str) -> pd.DataFrame:
    """One of a balance review's tables: ``resources``, ``months`` or ``decisions``."""
    table = _TABLES[which]
    query = select(table).where(table.c.run_id == run_id)
    if which == "decisions":
        query = query.order_by(table.c.rank)
    return _frame(conn, query, table).drop(columns="run_id")
