"""presenter delivery state: the last failure of each presenter

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 01:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("presenter_cursors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failing_outbox_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("presenter_cursors", schema=None) as batch_op:
        batch_op.drop_column("failing_since")
        batch_op.drop_column("last_error")
        batch_op.drop_column("failing_outbox_id")
