"""Plan lines keep the 80% and 95% interval bounds as columns (``lo_80, hi_80, lo_95,
hi_95``), so they are bulk-loaded and read as arrays; the JSON ``intervals`` column keeps
only the bounds of any other level (empty for the levels every plan carries). Stored lines
move their bounds from the JSON into the columns.

Revision ID: 0005
Revises: 0004
"""

import json
import math

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = {"lo-80": "lo_80", "hi-80": "hi_80", "lo-95": "lo_95", "hi-95": "hi_95"}
CHUNK = 20_000

_lines = sa.table(
    "plan_lines",
    sa.column("version_id", sa.Integer),
    sa.column("unique_id", sa.String),
    sa.column("ds", sa.Date),
    sa.column("intervals", sa.Text),
    *(sa.column(c, sa.Float) for c in COLUMNS.values()),
)
_key = sa.and_(
    _lines.c.version_id == sa.bindparam("k_version"),
    _lines.c.unique_id == sa.bindparam("k_uid"),
    _lines.c.ds == sa.bindparam("k_ds"),
)


def _number(value):
    """A bound as stored in a column: NaN (JSON could hold it) becomes NULL."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _rewrite(build) -> None:
    """Update every line with bounds, one version at a time (memory stays that of one
    version's bounds), with the values ``build`` makes of a row."""
    conn = op.get_bind()
    has = sa.or_(_lines.c.intervals.is_not(None), *(_lines.c[c].is_not(None) for c in COLUMNS.values()))
    versions = conn.execute(sa.select(_lines.c.version_id).where(has).distinct()).scalars().all()
    for vid in sorted(versions):
        found = (
            conn.execute(sa.select(_lines).where(sa.and_(_lines.c.version_id == vid, has))).mappings().all()
        )
        for start in range(0, len(found), CHUNK):
            batch = [
                {"k_version": r["version_id"], "k_uid": r["unique_id"], "k_ds": r["ds"], **build(r)}
                for r in found[start : start + CHUNK]
            ]
            conn.execute(sa.update(_lines).where(_key), batch)


def _to_columns(row) -> dict:
    bounds = json.loads(row["intervals"]) if row["intervals"] else {}
    values = {column: _number(bounds.pop(name, None)) for name, column in COLUMNS.items()}
    values["intervals"] = json.dumps(bounds) if bounds else None
    return values


def _to_json(row) -> dict:
    bounds = json.loads(row["intervals"]) if row["intervals"] else {}
    bounds.update({name: row[column] for name, column in COLUMNS.items() if row[column] is not None})
    return {"intervals": json.dumps(bounds) if bounds else None, **dict.fromkeys(COLUMNS.values())}


def upgrade() -> None:
    with op.batch_alter_table("plan_lines") as batch:
        for column in COLUMNS.values():
            batch.add_column(sa.Column(column, sa.Float))
    _rewrite(_to_columns)


def downgrade() -> None:
    _rewrite(_to_json)
    with op.batch_alter_table("plan_lines") as batch:
        for column in reversed(COLUMNS.values()):
            batch.drop_column(column)
