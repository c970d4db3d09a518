"""events: index target and retracts only where set (most events name neither)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("target", "retracts")


def upgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_events_{column}", table_name="events")
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_events_{column}", "events", [column], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_events_{column}", table_name="events")
        op.create_index(f"ix_events_{column}", "events", [column])
