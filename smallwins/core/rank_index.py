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
    """The member's counted total before and after the flush, from the values the ORM kept when
    attributes changed (``committed_state``: read directly, it costs a fraction of
    ``load_history`` for the thousands of members a batch changes)."""
    state = inspect(member)
    current, original = state.dict, state.committed_state
    before = {name: original.get(name, current.get(name)) for name in TRACKED}
    if any(value is NO_VALUE for value in before.values()):  # changed before it was ever loaded
        before = {name: _loaded_before(state, name) for name in TRACKED}
    return _counted_total(before), _counted_total({name: current.get(name) for name in TRACKED})


def _loaded_before(state: Any, name: str) -> Any:
    history = state.attrs[name].load_history()
    if history.deleted:
        return history.deleted[0]
    return history.unchanged[0] if history.unchanged else (history.added[0] if history.added else None)


@event.listens_for(Session, "after_flush")
def track_flush(session: Session, _context: Any) -> None:
    """Move the counts by what this flush changed on members (runs inside the flush's transaction)."""
    changes: Counter[int] = Counter()
    moves: list[tuple[int | None, int | None]] = [
        (None, _counted_total({n: getattr(m, n) for n in TRACKED})) for m in session.new if isinstance(m, Member)
    ]
    moves += [_before_and_after(m) for m in session.dirty if isinstance(m, Member)]
    for before, after in moves:
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
