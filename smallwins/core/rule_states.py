"""Saved rule states of one transaction: loaded for many members in one query, written in one.

The ingest path reads and changes a rule state per (member, achievement) per event. Doing that
through ORM objects cost an object, attribute instrumentation and a flushed UPDATE each; here a
state is a plain :class:`SavedState` held in ``session.info``, changes mark it ``dirty``, and
just before the transaction commits every dirty state is written with one multi-row
``INSERT ... ON CONFLICT (member_id, achievement_id) DO UPDATE``. Within the transaction this
cache is the truth (a state is never read back from the table once cached).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from smallwins.core.bulk import DriverWrite
from smallwins.core.store import RuleState, one_of, utcnow

#: ``session.info`` key: member id -> achievement id -> saved state (``None``: none saved yet).
CACHE = "smallwins.rule_states"
#: Members per ``IN (...)`` when loading.
LOAD_CHUNK = 2000
#: Rows per upsert statement (7 bound values each).
WRITE_CHUNK = 2000


@dataclass(slots=True)
class SavedState:
    """One achievement's evaluation state for one member, as the engine works on it."""

    member_id: int
    achievement_id: str
    state: dict[str, Any]
    met: bool = False
    #: The latest event (in event-time order) applied: an earlier one arriving later means replay.
    seen_time: datetime | None = None
    seen_key: str | None = None
    dirty: bool = False


def _cache(session: Session) -> dict[int, dict[str, SavedState | None]]:
    cache: dict[int, dict[str, SavedState | None]] = session.info.setdefault(CACHE, {})
    return cache


def load(session: Session, member_ids: Iterable[int], achievement_ids: Iterable[str]) -> None:
    """Cache the saved states of these members (all achievements) in one query per chunk."""
    cache = _cache(session)
    wanted = sorted(set(member_ids) - set(cache))
    if not wanted:
        return
    blank = dict.fromkeys(achievement_ids)
    for member_id in wanted:
        cache[member_id] = dict(blank)
    table = RuleState.__table__
    columns = (table.c.member_id, table.c.achievement_id, table.c.state, table.c.met, table.c.seen_time,
               table.c.seen_key)
    for start in range(0, len(wanted), LOAD_CHUNK):
        chunk = wanted[start : start + LOAD_CHUNK]
        for member_id, achievement_id, state, met, seen_time, seen_key in session.execute(
            select(*columns).where(one_of(session, table.c.member_id, chunk))
        ):
            cache[member_id][achievement_id] = SavedState(member_id, achievement_id, state, met, seen_time, seen_key)


def of(session: Session, member_id: int, achievement_ids: Iterable[str]) -> dict[str, SavedState | None]:
    """The member's saved states (``None`` where there is none yet), loaded once per transaction.

    States created in the transaction are in the same dict: callers add them with :func:`put`.
    """
    cache = _cache(session)
    states = cache.get(member_id)
    if states is None:
        load(session, [member_id], achievement_ids)
        return cache[member_id]
    missing = [a for a in achievement_ids if a not in states]
    if missing:  # an achievement the preload did not know (not in the catalogue then)
        states.update(dict.fromkeys(missing))
        table = RuleState.__table__
        for row in session.execute(
            select(table.c.achievement_id, table.c.state, table.c.met, table.c.seen_time, table.c.seen_key).where(
                table.c.member_id == member_id, table.c.achievement_id.in_(missing)
            )
        ):
            states[row.achievement_id] = SavedState(member_id, row.achievement_id, row.state, row.met, row.seen_time,
                                                    row.seen_key)
    return states


def put(session: Session, saved: SavedState) -> SavedState:
    """Add a new state to the cache (written at commit)."""
    saved.dirty = True
    _cache(session).setdefault(saved.member_id, {})[saved.achievement_id] = saved
    return saved


def replace_member(
    session: Session, member_id: int, states: dict[str, SavedState], achievement_ids: Iterable[str]
) -> None:
    """Drop every saved state of the member now and cache ``states`` as the new ones."""
    session.execute(delete(RuleState).where(RuleState.member_id == member_id))
    fresh: dict[str, SavedState | None] = dict.fromkeys(achievement_ids)
    for achievement_id, saved in states.items():
        saved.dirty = True
        fresh[achievement_id] = saved
    _cache(session)[member_id] = fresh


def forget_member(session: Session, member_id: int) -> None:
    """Delete the member's states, unwritten changes included (a member merged away)."""
    session.execute(delete(RuleState).where(RuleState.member_id == member_id))
    _cache(session).pop(member_id, None)


def write_pending(session: Session) -> None:
    """Upsert every changed state; registered to run before the engine's transactions commit."""
    cache: dict[int, dict[str, SavedState | None]] = session.info.pop(CACHE, {})
    now = utcnow()
    rows = [
        (s.member_id, s.achievement_id, s.state, s.met, s.seen_time, s.seen_key, now)
        for states in cache.values()
        for s in states.values()
        if s is not None and s.dirty
    ]
    for start in range(0, len(rows), WRITE_CHUNK):
        _UPSERT.execute(session, rows[start : start + WRITE_CHUNK])


def _upsert(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=["member_id", "achievement_id"],
        set_={
            "state": statement.excluded.state,
            "met": statement.excluded.met,
            "seen_time": statement.excluded.seen_time,
            "seen_key": statement.excluded.seen_key,
            "updated_at": statement.excluded.updated_at,
        },
    )


_UPSERT = DriverWrite(
    cast(Table, RuleState.__table__),
    ("member_id", "achievement_id", "state", "met", "seen_time", "seen_key", "updated_at"),
    _upsert,
)
