"""The tables of the sopforecast store (plans, overrides, actuals, run history).

These definitions are what the code queries; the schema itself is created and changed by
the Alembic migrations in ``store/migrations`` (:mod:`.schema`), so a database made by an
older sopforecast is upgraded, not recreated.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = ["metadata", "plan_versions", "plan_series", "plan_lines", "overrides", "actuals", "pipeline_runs"]
__all__ += ["monitor_runs", "monitor_metrics", "monitor_exceptions"]
__all__ += ["plan_backtest", "scenarios", "scenario_lines", "balance_runs", "balance_resources"]
__all__ += ["balance_months", "balance_decisions"]

metadata = MetaData()

plan_versions = Table(
    "plan_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("plan", String(200), nullable=False, index=True),
    Column("cycle", String(20), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # draft | published | superseded
    Column("parent_id", Integer, ForeignKey("plan_versions.id")),
    Column("source_run_id", String(64)),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("published_at", DateTime),
    Column("published_by", String(200)),
    Column("bucket", String(16), nullable=False),  # month | 445
    Column("history_end", Date),
    Column("hierarchy", Text, nullable=False),  # JSON list of key chains
    Column("data_config", Text),  # JSON: how actuals files are read (columns, keys, freq)
    Column("note", Text),
    Column("revision", Integer, nullable=False, server_default="0"),  # bumped by every write
    Column("branch", String(100), nullable=False, server_default=""),  # "": the cycle's main line
    Column("reopened_at", DateTime),
    Column("reopened_by", String(200)),
    Column("reopen_reason", Text),
    UniqueConstraint("plan", "cycle", "number", name="uq_plan_versions_number"),
    # at most one open draft per cycle and branch
    Index(
        "uq_plan_versions_open_draft",
        "plan",
        "cycle",
        "branch",
        unique=True,
        sqlite_where=text("status = 'draft'"),
        postgresql_where=text("status = 'draft'"),
    ),
)

plan_series = Table(
    "plan_series",
    metadata,
    Column("version_id", Integer, ForeignKey("plan_versions.id"), primary_key=True),
    Column("unique_id", String(500), primary_key=True),
    Column("level", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("keys", Text, nullable=False),  # JSON {key column: value}; empty below the level
)

plan_lines = Table(
    "plan_lines",
    metadata,
    Column("version_id", Integer, ForeignKey("plan_versions.id"), primary_key=True),
    Column("unique_id", String(500), primary_key=True),
    Column("ds", Date, primary_key=True),
    Column("statistical", Float, nullable=False),
    # interval bounds of the statistical forecast; the levels every plan carries as columns
    Column("lo_80", Float),
    Column("hi_80", Float),
    Column("lo_95", Float),
    Column("hi_95", Float),
    Column("intervals", Text),  # JSON {"lo-50": ..., "hi-50": ...}: bounds of any other level
    Column("naive", Float),
    Column("consensus", Float),
    Column("final", Float, nullable=False),
    Column("author", String(200)),
    Column("price", Float),
    Column("unit_cost", Float),
)

overrides = Table(
    "overrides",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("plan_versions.id"), nullable=False, index=True),
    Column("key", String(500), nullable=False),
    Column("ds", Date, nullable=False),
    Column("value", Float),
    Column("change_pct", Float),
    Column("basis", String(20), nullable=False),  # statistical | history
    Column("author", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("source", String(500)),
    Column("created_at", DateTime, nullable=False),
    Column("copied_from", Integer),  # the override of the parent version it carries over
    Column("reverted_at", DateTime),
    Column("reverted_by", String(200)),
    Column("origin_id", Integer),  # the override this one carries on from an earlier version
    Column("revert_reason", Text),
)

actuals = Table(
    "actuals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("plan", String(200), nullable=False),
    Column("unique_id", String(500), nullable=False),
    Column("ds", Date, nullable=False),
    Column("y", Float, nullable=False),
    Column("revision", Integer, nullable=False),  # 1 = first load; a restated month adds one
    Column("loaded_at", DateTime, nullable=False),
    Column("source", String(500)),
    Column("drivers", Text),  # JSON {price: .., promo: ..} of the month, when the data has drivers
    UniqueConstraint("plan", "unique_id", "ds", "revision", name="uq_actuals_revision"),
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("plan", String(200), nullable=False, index=True),
    Column("cycle", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("versions", Integer, nullable=False),
    Column("actuals_to", Date),
    Column("report", Text),
    Column("kpis", Text),
    Column("mlflow_run_id", String(64)),
    Column("currency", String(3)),
)

monitor_metrics = Table(
    "monitor_metrics",
    metadata,
    Column("run_id", Integer, ForeignKey("monitor_runs.id"), nullable=False, index=True),
    Column("scope", String(20), nullable=False),
    Column("cycle", String(20)),
    Column("key", String(500), nullable=False),
    Column("level", String(200)),
    Column("lag", Integer, nullable=False),
    Column("forecast", String(20), nullable=False),
    Column("n", Integer),
    Column("actual", Float),
    Column("wape", Float),
    Column("accuracy", Float),
    Column("bias", Float),
    Column("mase", Float),
    Column("tracking_signal", Float),
    Column("coverage", Float),
)

monitor_exceptions = Table(
    "monitor_exceptions",
    metadata,
    Column("run_id", Integer, ForeignKey("monitor_runs.id"), nullable=False, index=True),
    Column("rank", Integer, nullable=False),
    Column("key", String(500), nullable=False),
    Column("level", String(200)),
    Column("metric", String(40), nullable=False),
    Column("forecast", String(20)),
    Column("lag", Integer),
    Column("value", Float),
    Column("target", String(100)),
    Column("breach", Float),
    Column("trend", Text),
    Column("direction", String(20)),
    Column("action", Text),
    Column("at_stake", Float),
)

plan_backtest = Table(  # the delivered forecast's backtest: safety stock from its errors
    "plan_backtest",
    metadata,
    Column("version_id", Integer, ForeignKey("plan_versions.id"), primary_key=True),
    Column("unique_id", String(500), primary_key=True),
    Column("cutoff", Date, primary_key=True),
    Column("ds", Date, primary_key=True),
    Column("y", Float),
    Column("forecast", Float),
)

scenarios = Table(
    "scenarios",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("plan", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version_id", Integer, ForeignKey("plan_versions.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("params", Text, nullable=False),  # JSON: the change
    Column("description", Text),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("seconds", Float),
    UniqueConstraint("plan", "name", name="uq_scenarios_name"),
)

scenario_lines = Table(  # the bottom lines a demand scenario changes (or adds)
    "scenario_lines",
    metadata,
    Column("scenario_id", Integer, ForeignKey("scenarios.id"), primary_key=True),
    Column("unique_id", String(500), primary_key=True),
    Column("ds", Date, primary_key=True),
    Column("final", Float, nullable=False),
    Column("price", Float),
    Column("unit_cost", Float),
    Column("keys", Text),  # JSON key columns of a launched item (null for existing series)
)

balance_runs = Table(
    "balance_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("plan", String(200), nullable=False, index=True),
    Column("version_id", Integer, ForeignKey("plan_versions.id"), nullable=False),
    Column("scenario_id", Integer, ForeignKey("scenarios.id")),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("source", String(500)),  # pipeline run id, or the command
    Column("solver", String(40)),
    Column("rule", Text),
    Column("figures", Text, nullable=False),  # JSON
    Column("mlflow_run_id", String(64)),
)

balance_resources = Table(
    "balance_resources",
    metadata,
    Column("run_id", Integer, ForeignKey("balance_runs.id"), nullable=False, index=True),
    Column("resource", String(200), nullable=False),
    Column("ds", Date, nullable=False),
    Column("load", Float),  # of the unconstrained final plan
    Column("capacity", Float),
    Column("utilisation", Float),
    Column("planned_load", Float),  # of the constrained supply plan
)

balance_months = Table(
    "balance_months",
    metadata,
    Column("run_id", Integer, ForeignKey("balance_runs.id"), nullable=False, index=True),
    Column("ds", Date, nullable=False),
    Column("demand", Float),
    Column("served", Float),
    Column("unmet", Float),
    Column("revenue_at_stake", Float),
    Column("closing", Float),
    Column("safety_stock", Float),
    Column("stockouts", Integer),
    Column("below_safety", Integer),
)

balance_decisions = Table(
    "balance_decisions",
    metadata,
    Column("run_id", Integer, ForeignKey("balance_runs.id"), nullable=False, index=True),
    Column("rank", Integer, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("ds", Date),
    Column("last", Date),
    Column("gap", Float),
    Column("at_stake", Float),
    Column("action", Text),
    Column("detail", Text),
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(200), nullable=False, index=True),
    Column("path", Text),
    Column("trigger", String(20), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("status", String(20), nullable=False),
    Column("mlflow_run_id", String(64)),
    Column("error", Text),
    Column("pid", Integer),
)
