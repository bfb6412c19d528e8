"""Monitoring: runs, their accuracy metrics and exceptions; drivers kept with the actuals.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actuals") as batch:
        batch.add_column(sa.Column("drivers", sa.Text))  # JSON {price: .., promo: ..} of the month
    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plan", sa.String(200), nullable=False, index=True),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("versions", sa.Integer, nullable=False),
        sa.Column("actuals_to", sa.Date),
        sa.Column("report", sa.Text),
        sa.Column("kpis", sa.Text),  # JSON records: the report's tiles (measure, value, target, status)
        sa.Column("mlflow_run_id", sa.String(64)),
    )
    op.create_table(
        "monitor_metrics",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("monitor_runs.id"), nullable=False, index=True),
        sa.Column("scope", sa.String(20), nullable=False),  # level | series | segment
        sa.Column("cycle", sa.String(20)),  # the plan's cycle; empty: all cycles pooled
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("level", sa.String(200)),
        sa.Column("lag", sa.Integer, nullable=False),
        sa.Column("forecast", sa.String(20), nullable=False),
        sa.Column("n", sa.Integer),
        sa.Column("actual", sa.Float),
        sa.Column("wape", sa.Float),
        sa.Column("accuracy", sa.Float),
        sa.Column("bias", sa.Float),
        sa.Column("mase", sa.Float),
        sa.Column("tracking_signal", sa.Float),
        sa.Column("coverage", sa.Float),
    )
    op.create_table(
        "monitor_exceptions",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("monitor_runs.id"), nullable=False, index=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("level", sa.String(200)),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("forecast", sa.String(20)),
        sa.Column("lag", sa.Integer),
        sa.Column("value", sa.Float),
        sa.Column("target", sa.String(100)),
        sa.Column("breach", sa.Float),
        sa.Column("trend", sa.Text),
        sa.Column("direction", sa.String(20)),
        sa.Column("action", sa.Text),
        sa.Column("at_stake", sa.Float),
    )


def downgrade() -> None:
    for table in ("monitor_exceptions", "monitor_metrics", "monitor_runs"):
        op.drop_table(table)
    with op.batch_alter_table("actuals") as batch:
        batch.drop_column("drivers")
