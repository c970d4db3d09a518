"""events: drop the indexes on type and on (source, subject), which no query needs

Every stored event paid for an entry in each, at a random place in the second. Queries by type
also name the member (the member-time index serves them) or scan for a report; the one query by
subject (moving an unlinked account's events) also names the member.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:05:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_type", table_name="events")
    op.drop_index("ix_events_source_subject", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_source_subject", "events", ["source", "subject"])
    op.create_index("ix_events_type", "events", ["type"])
