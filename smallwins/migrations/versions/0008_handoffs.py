"""approvals one ingest worker hands to the worker that owns their author's partition

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("partition_count", sa.Integer(), nullable=False),
        sa.Column("partition_index", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("cause", sa.String(length=250), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_handoffs_partition", "handoffs", ["partition_count", "partition_index", "id"])


def downgrade() -> None:
    op.drop_index("ix_handoffs_partition", table_name="handoffs")
    op.drop_table("handoffs")
