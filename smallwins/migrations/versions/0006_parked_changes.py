"""outbox changes a presenter could never apply, parked with the reason; events found by proof

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_parked",
        sa.Column("presenter", sa.String(length=80), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("presenter", "outbox_id"),
    )
    op.create_index("ix_outbox_parked_member_id", "outbox_parked", ["member_id"])
    op.create_index("ix_events_proof", "events", ["proof"], postgresql_using="hash")


def downgrade() -> None:
    op.drop_index("ix_events_proof", table_name="events")
    op.drop_index("ix_outbox_parked_member_id", table_name="outbox_parked")
    op.drop_table("outbox_parked")
