"""Member columns set outside the ORM's unit of work, written in one UPDATE when a transaction commits.

The ingest sets two things on thousands of members per batch: points it credits
(:func:`smallwins.core.rank_index.credit`) and names events carry
(:func:`smallwins.core.identity.name_members`). Both set the value in memory as if it were stored
(``set_committed_value``) and :func:`mark` the member; :func:`write_pending`, one of the store's
before-commit writers, then writes each marked member's points, name and naming time with one
statement. Writing them in two statements cost a second new row version per member on
PostgreSQL (1.2 s + 0.9 s per 100,000 events over 50,000 members).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from smallwins.core.store import Member, update_members

#: ``session.info`` key: the members whose unflushed columns are written at commit.
PENDING = "smallwins.unflushed_member_columns"
#: The columns written, with their PostgreSQL types.
COLUMNS = {"points": "bigint", "display_name": "text", "named_at": "timestamptz"}


def mark(session: Session, member: Member) -> None:
    """Write the member's points and name at commit (they were set in memory only)."""
    session.info.setdefault(PENDING, {})[member] = None


def write_pending(session: Session) -> None:
    """Write the marked members' columns from memory, in id order, with one statement."""
    marked: dict[Member, None] = session.info.pop(PENDING, {})
    update_members(
        session, COLUMNS, sorted((m.id, m.points, m.display_name, m.named_at) for m in marked)
    )
