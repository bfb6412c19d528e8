"""Plan versions carry a row counter (optimistic concurrency), a branch name and the
reason a closed cycle was reopened; at most one open draft per plan, cycle and branch;
overrides keep their origin across versions and the reason they were reverted; a
monitoring run keeps the currency of its money.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plan_versions") as batch:
        batch.add_column(sa.Column("revision", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("branch", sa.String(100), nullable=False, server_default=""))
        batch.add_column(sa.Column("reopened_at", sa.DateTime))
        batch.add_column(sa.Column("reopened_by", sa.String(200)))
        batch.add_column(sa.Column("reopen_reason", sa.Text))
    with op.batch_alter_table("overrides") as batch:
        batch.add_column(sa.Column("origin_id", sa.Integer))  # the override a copy carries on
        batch.add_column(sa.Column("revert_reason", sa.Text))
    with op.batch_alter_table("monitor_runs") as batch:
        batch.add_column(sa.Column("currency", sa.String(3)))  # the money of its figures
    # stores made before this revision may hold several drafts of a cycle (silent branches):
    # the newest stays the cycle's draft, the others are kept as superseded
    op.execute(
        "UPDATE plan_versions SET status = 'superseded' WHERE status = 'draft' AND id NOT IN "
        "(SELECT max(id) FROM plan_versions WHERE status = 'draft' GROUP BY plan, cycle)"
    )
    op.create_index(
        "uq_plan_versions_open_draft",
        "plan_versions",
        ["plan", "cycle", "branch"],
        unique=True,
        sqlite_where=sa.text("status = 'draft'"),
        postgresql_where=sa.text("status = 'draft'"),
    )


def downgrade() -> None:
    op.drop_index("uq_plan_versions_open_draft", table_name="plan_versions")
    with op.batch_alter_table("monitor_runs") as batch:
        batch.drop_column("currency")
    with op.batch_alter_table("overrides") as batch:
        batch.drop_column("revert_reason")
        batch.drop_column("origin_id")
    with op.batch_alter_table("plan_versions") as batch:
        for column in ("reopen_reason", "reopened_by", "reopened_at", "branch", "revision"):
            batch.drop_column(column)
