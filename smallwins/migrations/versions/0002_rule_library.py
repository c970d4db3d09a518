"""rule library: targets, vouchers, period points, backfill runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:24:34.769098
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("catalogue", sa.String(length=40), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_member_id", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("awarded", sa.Integer(), nullable=False),
        sa.Column("revoked", sa.Integer(), nullable=False),
        sa.Column("changed_tiers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "period_points",
        sa.Column("board", sa.String(length=80), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
        ),
        sa.PrimaryKeyConstraint("board", "period", "member_id"),
    )
    with op.batch_alter_table("period_points", schema=None) as batch_op:
        batch_op.create_index("ix_period_points_rank", ["board", "period", "points"], unique=False)

    op.create_table(
        "vouchers",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("achievement_id", sa.String(length=80), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
        ),
        sa.PrimaryKeyConstraint("code"),
        sa.UniqueConstraint("member_id", "achievement_id", name="uq_voucher_member"),
    )
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vouchers_achievement_id"), ["achievement_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_member_id"), ["member_id"], unique=False)

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target", sa.String(length=250), nullable=True))
        batch_op.create_index(batch_op.f("ix_events_target"), ["target"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_target"))
        batch_op.drop_column("target")

    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vouchers_member_id"))
        batch_op.drop_index(batch_op.f("ix_vouchers_achievement_id"))

    op.drop_table("vouchers")
    with op.batch_alter_table("period_points", schema=None) as batch_op:
        batch_op.drop_index("ix_period_points_rank")

    op.drop_table("period_points")
    op.drop_table("backfill_runs")
