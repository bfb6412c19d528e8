"""Plan versions, their series and lines, overrides, actuals; the run history table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "pipeline_runs" not in existing:  # stores made before migrations had the run history
        op.create_table(
            "pipeline_runs",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("pipeline", sa.String(200), nullable=False, index=True),
            sa.Column("path", sa.Text),
            sa.Column("trigger", sa.String(20), nullable=False),
            sa.Column("started_at", sa.DateTime, nullable=False),
            sa.Column("ended_at", sa.DateTime),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("mlflow_run_id", sa.String(64)),
            sa.Column("error", sa.Text),
            sa.Column("pid", sa.Integer),
        )
    op.create_table(
        "plan_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plan", sa.String(200), nullable=False, index=True),
        sa.Column("cycle", sa.String(20), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("plan_versions.id")),
        sa.Column("source_run_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("published_at", sa.DateTime),
        sa.Column("published_by", sa.String(200)),
        sa.Column("bucket", sa.String(16), nullable=False),
        sa.Column("history_end", sa.Date),
        sa.Column("hierarchy", sa.Text, nullable=False),
        sa.Column("data_config", sa.Text),
        sa.Column("note", sa.Text),
        sa.UniqueConstraint("plan", "cycle", "number", name="uq_plan_versions_number"),
    )
    op.create_table(
        "plan_series",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("plan_versions.id"), primary_key=True),
        sa.Column("unique_id", sa.String(500), primary_key=True),
        sa.Column("level", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("keys", sa.Text, nullable=False),
    )
    op.create_table(
        "plan_lines",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("plan_versions.id"), primary_key=True),
        sa.Column("unique_id", sa.String(500), primary_key=True),
        sa.Column("ds", sa.Date, primary_key=True),
        sa.Column("statistical", sa.Float, nullable=False),
        sa.Column("intervals", sa.Text),
        sa.Column("naive", sa.Float),
        sa.Column("consensus", sa.Float),
        sa.Column("final", sa.Float, nullable=False),
        sa.Column("author", sa.String(200)),
        sa.Column("price", sa.Float),
        sa.Column("unit_cost", sa.Float),
    )
    op.create_table(
        "overrides",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("plan_versions.id"), nullable=False, index=True),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("ds", sa.Date, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("change_pct", sa.Float),
        sa.Column("basis", sa.String(20), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source", sa.String(500)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("copied_from", sa.Integer),
        sa.Column("reverted_at", sa.DateTime),
        sa.Column("reverted_by", sa.String(200)),
    )
    op.create_table(
        "actuals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("plan", sa.String(200), nullable=False),
        sa.Column("unique_id", sa.String(500), nullable=False),
        sa.Column("ds", sa.Date, nullable=False),
        sa.Column("y", sa.Float, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("loaded_at", sa.DateTime, nullable=False),
        sa.Column("source", sa.String(500)),
        sa.UniqueConstraint("plan", "unique_id", "ds", "revision", name="uq_actuals_revision"),
    )
    op.create_index("ix_actuals_plan_ds", "actuals", ["plan", "ds"])


def downgrade() -> None:
    op.drop_index("ix_actuals_plan_ds", table_name="actuals")
    for table in ("actuals", "overrides", "plan_lines", "plan_series", "plan_versions"):
        op.drop_table(table)
