"""event time, retraction, staff, source cursors, where merged rows came from

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MEMBER_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("rule_states", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seen_time", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("seen_key", sa.String(length=260), nullable=True))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retracts", sa.String(length=250), nullable=True))
        batch_op.add_column(sa.Column("retracted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f("ix_events_retracts"), ["retracts"], unique=False)

    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("staff", sa.Boolean(), nullable=False, server_default=sa.false()))

    for table in ("identities", "awards", "vouchers"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("home_member_id", MEMBER_ID, nullable=True))

    op.create_table(
        "source_cursors",
        sa.Column("source", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "key"),
    )


def downgrade() -> None:
    op.drop_table("source_cursors")
    for table in ("vouchers", "awards", "identities"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("home_member_id")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("staff")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_retracts"))
        batch_op.drop_column("retracted")
        batch_op.drop_column("retracts")
    with op.batch_alter_table("rule_states", schema=None) as batch_op:
        batch_op.drop_column("seen_key")
        batch_op.drop_column("seen_time")
