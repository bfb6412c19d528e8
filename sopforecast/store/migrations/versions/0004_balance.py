"""Supply balance and scenarios: the delivered forecast's backtest kept with its plan
version (safety stock from its errors), named what-if scenarios with the lines they change,
and each balance review's figures, resource utilisation, month totals and decisions.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_backtest",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("plan_versions.id"), primary_key=True),
        sa.Column("unique_id", sa.String(500), primary_key=True),
        sa.Column("cutoff", sa.Date, primary_key=True),
        sa.Column("ds", sa.Date, primary_key=True),
        sa.Column("y", sa.Float),
        sa.Column("forecast", sa.Float),
    )
    op.create_table(
        "scenarios",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plan", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("plan_versions.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("seconds", sa.Float),
        sa.UniqueConstraint("plan", "name", name="uq_scenarios_name"),
    )
    op.create_table(
        "scenario_lines",
        sa.Column("scenario_id", sa.Integer, sa.ForeignKey("scenarios.id"), primary_key=True),
        sa.Column("unique_id", sa.String(500), primary_key=True),
        sa.Column("ds", sa.Date, primary_key=True),
        sa.Column("final", sa.Float, nullable=False),
        sa.Column("price", sa.Float),
        sa.Column("unit_cost", sa.Float),
        sa.Column("keys", sa.Text),
    )
    op.create_table(
        "balance_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plan", sa.String(200), nullable=False, index=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("plan_versions.id"), nullable=False),
        sa.Column("scenario_id", sa.Integer, sa.ForeignKey("scenarios.id")),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("source", sa.String(500)),
        sa.Column("solver", sa.String(40)),
        sa.Column("rule", sa.Text),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("mlflow_run_id", sa.String(64)),
    )
    op.create_table(
        "balance_resources",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("balance_runs.id"), nullable=False, index=True),
        sa.Column("resource", sa.String(200), nullable=False),
        sa.Column("ds", sa.Date, nullable=False),
        sa.Column("load", sa.Float),
        sa.Column("capacity", sa.Float),
        sa.Column("utilisation", sa.Float),
        sa.Column("planned_load", sa.Float),
    )
    op.create_table(
        "balance_months",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("balance_runs.id"), nullable=False, index=True),
        sa.Column("ds", sa.Date, nullable=False),
        sa.Column("demand", sa.Float),
        sa.Column("served", sa.Float),
        sa.Column("unmet", sa.Float),
        sa.Column("revenue_at_stake", sa.Float),
        sa.Column("closing", sa.Float),
        sa.Column("safety_stock", sa.Float),
        sa.Column("stockouts", sa.Integer),
        sa.Column("below_safety", sa.Integer),
    )
    op.create_table(
        "balance_decisions",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("balance_runs.id"), nullable=False, index=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("ds", sa.Date),
        sa.Column("last", sa.Date),
        sa.Column("gap", sa.Float),
        sa.Column("at_stake", sa.Float),
        sa.Column("action", sa.Text),
        sa.Column("detail", sa.Text),
    )


def downgrade() -> None:
    for table in (
        "balance_decisions",
        "balance_months",
        "balance_resources",
        "balance_runs",
        "scenario_lines",
        "scenarios",
        "plan_backtest",
    ):
        op.drop_table(table)
