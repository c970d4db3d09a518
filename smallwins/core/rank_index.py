"""All-time ranks without counting members: a count of public members per points total.

A rank is one more than the number of public members with more points. Counting them over the
members table grows with the community (a median member of a million means reading half a
million index entries); summing ``points_counts`` rows above a total reads one row per distinct
total, a few thousand at most.

Every flush notes how members moved between totals (:func:`track_flush`), from the ORM's own
record of what changed on each :class:`Member`: privacy, staff, merges and points set outright
go through the ORM. Points the ingest credits, event by event, do not (:func:`credit`): the ORM's
unit of work cost more than anything else left per changed member, so credited members keep
their new total in memory and are written with one UPDATE per batch (with the names events gave:
:mod:`smallwins.core.member_columns`), and the total they were
last counted at stands in for the ORM's record. The moves are written once when the transaction
commits (:func:`write_pending`, one of the store's before-commit writers), touching rows in
ascending order of points, so concurrent writers queue instead of deadlocking. Members with zero
points are not counted (a new member changes nothing here), which is why a rank below zero
points falls back to counting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, delete, event, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import NO_VALUE, instance_state, set_committed_value

from smallwins.core import member_columns
from smallwins.core.bulk import DriverWrite
from smallwins.core.store import Member, PointsCount

TRACKED = ("points", "private", "staff", "merged_into_id")
#: ``session.info`` key: points total -> members gained (or lost) in this transaction.
PENDING = "smallwins.points_count_moves"
#: ``session.info`` key: member -> the total it is counted at now, for members given points by
#: :func:`credit` in this transaction (their new points are written at commit).
CREDITED = "smallwins.credited_members"


def _counted_total(values: dict[str, Any]) -> int | None:
    """The total a member contributes to the counts, or ``None`` (not public, or zero points)."""
    if values["merged_into_id"] is not None or values["private"] or values["staff"] or not values["points"]:
        return None
    return int(values["points"])


def _counted_now(member: Member) -> int | None:
    return _counted_total({name: getattr(member, name) for name in TRACKED})


def _counted_before(member: Member) -> int | None:
    """The member's counted total as of the last flush, from the values the ORM kept when
    attributes changed (``committed_state``: read directly, it costs a fraction of
    ``load_history`` for the thousands of members a batch changes)."""
    state = instance_state(member)
    current, original = state.dict, state.committed_state
    if not original and all(name in current for name in TRACKED):  # hot: unchanged since loaded
        return _counted_total(current)
    before = {name: original.get(name, current.get(name)) for name in TRACKED}
    if any(value is NO_VALUE for value in before.values()):  # changed before it was ever loaded
        before = {name: _loaded_before(state, name) for name in TRACKED}
    return _counted_total(before)


def credit(session: Session, member: Member, points: int) -> None:
    """Add ``points`` to the member's total in memory, outside the ORM's unit of work; the total
    is written, and the member's move between counts noted, when the transaction commits."""
    credited: dict[Member, int | None] = session.info.setdefault(CREDITED, {})
    values = member.__dict__
    if member in credited and "points" in values:
        # Hot (once per event): set_committed_value ran at the member's first credit; adding to the
        # loaded total is enough (should the ORM have set points since, as a recompute's reset
        # does, its flush writes this same total, and write_pending writes it anyway).
        values["points"] += points
        return
    if member not in credited:
        credited[member] = _counted_before(member)
        member_columns.mark(session, member)
    # The ORM now takes the new total for the stored one: no flush writes it, write_pending does.
    set_committed_value(member, "points", member.points + points)


def _loaded_before(state: Any, name: str) -> Any:
    history = state.attrs[name].load_history()
    if history.deleted:
        return history.deleted[0]
    return history.unchanged[0] if history.unchanged else (history.added[0] if history.added else None)


@event.listens_for(Session, "after_flush")
def track_flush(session: Session, _context: Any) -> None:
    """Note how this flush moved members between totals; written once, at commit (:func:`write_pending`).

    A credited member's last counted total is the one :func:`credit` keeps (the ORM's record
    no longer holds its points); it moves on to the member's current total here.
    """
    changes: Counter[int] = session.info.setdefault(PENDING, Counter())
    credited: dict[Member, int | None] = session.info.get(CREDITED, {})
    moves: list[tuple[int | None, int | None]] = []
    for member in session.new:
        if isinstance(member, Member):
            now = _counted_now(member)
            moves.append((None, now))
            if member in credited:
                credited[member] = now
    for member in session.dirty:
        if isinstance(member, Member):
            now = _counted_now(member)
            moves.append((credited[member] if member in credited else _counted_before(member), now))
            if member in credited:
                credited[member] = now
    for member in session.deleted:
        if isinstance(member, Member):
            moves.append((credited.pop(member) if member in credited else _counted_now(member), None))
    _note(changes, moves)


def _note(changes: Counter[int], moves: Iterable[tuple[int | None, int | None]]) -> None:
    for before, after in moves:
        if before != after:
            if before is not None:
                changes[before] -= 1
            if after is not None:
                changes[after] += 1


def write_pending(session: Session) -> None:
    """Before a writing transaction commits: flush, note the credited members' moves, then add
    the noted moves to the counts in one upsert, in points order (concurrent writers queue on a
    total instead of deadlocking). The credited points themselves are written by
    :func:`smallwins.core.member_columns.write_pending`."""
    session.flush()
    changes: Counter[int] = session.info.pop(PENDING, Counter())
    credited: dict[Member, int | None] = session.info.pop(CREDITED, {})
    if credited:
        _note(changes, ((counted, _counted_now(member)) for member, counted in credited.items()))
    rows = [{"points": total, "members": n} for total, n in sorted(changes.items()) if n]
    _ADD_MEMBERS.execute(session, rows)
    emptied = [row["points"] for row in rows if row["members"] < 0]
    if emptied:
        session.execute(delete(PointsCount).where(PointsCount.points.in_(emptied), PointsCount.members <= 0))


def _add_members(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=["points"], set_={"members": PointsCount.members + statement.excluded.members}
    )


_ADD_MEMBERS = DriverWrite(cast(Table, PointsCount.__table__), ("points", "members"), _add_members)


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
