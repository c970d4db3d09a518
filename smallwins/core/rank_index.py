"""All-time ranks without counting members: a count of public members per points total.

A rank is one more than the number of public members with more points. Counting them over the
members table grows with the community (a median member of a million means reading half a
million index entries); summing ``points_counts`` rows above a total reads one row per distinct
total, a few thousand at most.

The counts are kept at every flush of a session (:func:`track_flush`), from the ORM's own record
of what changed on each :class:`Member`: points, privacy, staff and merges all go through the
ORM. Members with zero points are not counted (a new member changes nothing here), which is why
a rank below zero points falls back to counting. The upsert touches rows in ascending order of
points, so concurrent writers wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, event, func, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import NO_VALUE

from smallwins.core.store import Member, PointsCount, dialect_insert

TRACKED = ("points", "private", "staff", "merged_into_id")


def _counted_total(values: dict[str, Any]) -> int | None:
    """The total a member contributes to the counts, or ``None`` (not public, or zero points)."""
    if values["merged_into_id"] is not None or values["private"] or values["staff"] or not values["points"]:
        return None
    return int(values["points"])


def _before_and_after(member: Member) -> tuple[int | None, int | None]:
    state = inspect(member)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name in TRACKED:
        history = state.attrs[name].load_history()
        current = history.added[0] if history.added else (history.unchanged[0] if history.unchanged else None)
        previous = history.deleted[0] if history.deleted else current
        after[name] = current
        before[name] = None if previous is NO_VALUE else previous
    return _counted_total(before), _counted_total(after)


@event.listens_for(Session, "after_flush")
def track_flush(session: Session, _context: Any) -> None:
    """Move the counts by what this flush changed on members (runs inside the flush's transaction)."""
    changes: Counter[int] = Counter()
    for member in (*session.new, *session.dirty):
        if not isinstance(member, Member):
            continue
        if member in session.new:
            before, after = None, _counted_total({name: getattr(member, name) for name in TRACKED})
        else:
            before, after = _before_and_after(member)
        if before != after:
            if before is not None:
                changes[before] -= 1
            if after is not None:
                changes[after] += 1
    for member in session.deleted:
        if isinstance(member, Member):
            total = _counted_total({name: getattr(member, name) for name in TRACKED})
            if total is not None:
                changes[total] -= 1
    apply_changes(session, changes)


def apply_changes(session: Session, changes: Counter[int]) -> None:
    """Add ``changes`` (points total -> members gained or lost) in one upsert, in points order."""
    rows = [{"points": total, "members": n} for total, n in sorted(changes.items()) if n]
    if not rows:
        return
    statement = dialect_insert(session.get_bind().dialect.name, PointsCount)
    statement = statement.on_conflict_do_update(
        index_elements=["points"], set_={"members": PointsCount.members + statement.excluded.members}
    )
    connection = session.connection()
    connection.execute(statement, rows)
    emptied = [row["points"] for row in rows if row["members"] < 0]
    if emptied:
        connection.execute(delete(PointsCount).where(PointsCount.points.in_(emptied), PointsCount.members <= 0))


def members_above(session: Session, totals: Iterable[int]) -> dict[int, int]:
    """For each points total, how many public members have more points."""
    above: dict[int, int] = {}
    for total in set(totals):
        if total < 0:  # zero-point members are not in the counts, and they are above: count them
            query = select(func.count()).select_from(Member).where(
                Member.points > total, Member.merged_into_id.is_(None), Member.private.is_(False),
                Member.staff.is_(False),
            )
        else:
            query = select(func.coalesce(func.sum(PointsCount.members), 0)).where(PointsCount.points > total)
        above[total] = int(session.scalar(query) or 0)
    return above
