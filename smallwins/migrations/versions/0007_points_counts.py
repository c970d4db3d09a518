"""public members per all-time points total, so a rank is a sum over distinct totals; the
leaderboard index in the board's order

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the all-time board's order exactly (points descending, then id), so a top 100 needs no sort
    op.drop_index("ix_members_leaderboard", table_name="members")
    op.create_index("ix_members_leaderboard", "members", [sa.text("points DESC"), "id"])
    op.create_table(
        "points_counts",
        sa.Column("points", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("points"),
    )
    op.execute(
        "INSERT INTO points_counts (points, members) SELECT points, count(*) FROM members"
        " WHERE merged_into_id IS NULL AND NOT private AND NOT staff AND points <> 0 GROUP BY points"
    )


def downgrade() -> None:
    op.drop_table("points_counts")
    op.drop_index("ix_members_leaderboard", table_name="members")
    op.create_index("ix_members_leaderboard", "members", ["points", "id"])
