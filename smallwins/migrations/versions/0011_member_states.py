"""member_states: a member's rule states in one row (a JSON object by achievement id), replacing
rule_states' row per (member, achievement); a batch writes a fourth of the rows

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:30:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_MEMBER_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Each state becomes [state, met, seen time (ISO 8601, UTC), seen key] under "states"; the engine
# writes the member's most common last-seen event once, under "seen", when it next writes the row.
_COPY_SQLITE = """
INSERT INTO member_states (member_id, states, updated_at)
SELECT member_id,
       json_object('seen', NULL, 'states', json_group_object(achievement_id, json_array(
           json(state),
           CASE WHEN met THEN json('true') ELSE json('false') END,
           replace(seen_time, ' ', 'T'),
           seen_key))),
       max(updated_at)
FROM rule_states GROUP BY member_id
"""
_COPY_POSTGRESQL = """
INSERT INTO member_states (member_id, states, updated_at)
SELECT member_id,
       json_build_object('seen', NULL, 'states', json_object_agg(achievement_id, json_build_array(
           state,
           met,
           to_char(seen_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
           seen_key))),
       max(updated_at)
FROM rule_states GROUP BY member_id
"""


def upgrade() -> None:
    op.create_table(
        "member_states",
        sa.Column("member_id", _MEMBER_ID, nullable=False),
        sa.Column("states", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id"),
    )
    op.execute(_COPY_POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _COPY_SQLITE)
    op.drop_table("rule_states")


def downgrade() -> None:
    op.create_table(
        "rule_states",
        sa.Column("member_id", _MEMBER_ID, nullable=False),
        sa.Column("achievement_id", sa.String(length=80), nullable=False),
        sa.Column("state", _JSON, nullable=False),
        sa.Column("met", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_key", sa.String(length=260), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id", "achievement_id"),
    )
    member_states = sa.table(
        "member_states", sa.column("member_id", _MEMBER_ID), sa.column("states", sa.JSON()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    rule_states = sa.table(
        "rule_states", *(sa.column(name) for name in ("member_id", "achievement_id", "met", "seen_key")),
        sa.column("state", _JSON), sa.column("seen_time", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = []
    for member_id, document, updated_at in bind.execute(sa.select(member_states)):
        common = document.get("seen") or [None, None]
        for achievement_id, saved in document["states"].items():
            seen, key = (saved[2], saved[3]) if len(saved) == 4 else common
            moment = datetime.fromisoformat(seen) if seen else None
            if moment is not None:
                moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            rows.append({
                "member_id": member_id, "achievement_id": achievement_id, "state": saved[0],
                "met": bool(saved[1]), "seen_time": moment, "seen_key": key, "updated_at": updated_at,
            })
    if rows:
        bind.execute(sa.insert(rule_states), rows)
    op.drop_table("member_states")
