"""Saved rule states of one transaction: loaded for many members in one query, written in one.

The ingest path reads and changes a rule state per (member, achievement) per event. Here a
state is a plain :class:`SavedState` held in ``session.info``; changes mark it ``dirty``, and
just before the transaction commits every member with a dirty state is written with one
multi-row ``INSERT ... ON CONFLICT (member_id) DO UPDATE``. Within the transaction this cache is
the truth (a state is never read back from the table once cached).

A member's states are stored together, one ``member_states`` row holding a JSON object::

    {"seen": ["2026-09-07T12:00:00+00:00", "discord:1187"],
     "states": {"regular": [{"count": 3, ...}, false],
                "on-a-roll": [{"periods": [...]}, false, "2026-09-06T09:00:00+00:00", "discord:1150"]}}

Each state is ``[state, met]``, or ``[state, met, seen time, seen key]`` when the latest event
it saw is not the member's most common one, held once under ``"seen"`` (one event feeds most of a
member's achievements). Field names and repeated last-seen events were most of a member's
row; without them it is about half as long. A batch touches most of a member's achievements at
once (one message feeds eight in the demo catalogue), so a row per member is written in a
fraction of the time of a row per achievement. The whole object is rewritten, so a member's
states are always loaded (all achievements) before any is changed: :func:`put` loads them when
they are not cached yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from smallwins.core.bulk import DriverWrite
from smallwins.core.store import MemberStates, one_of, utcnow

#: ``session.info`` key: member id -> achievement id -> saved state (``None``: none saved yet).
CACHE = "smallwins.rule_states"
#: Members per ``IN (...)`` when loading.
LOAD_CHUNK = 2000
#: Rows per upsert statement.
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


#: The latest event a state saw: its time and its key.
Seen = tuple[datetime | None, str | None]


def _seen_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def decode(member_id: int, document: Mapping[str, Any] | None) -> dict[str, SavedState]:
    """A ``member_states.states`` object as saved states, by achievement id."""
    if not document:
        return {}
    common_text, common_key = document.get("seen") or (None, None)
    common_time = _seen_time(common_text)
    decoded = {}
    for achievement_id, saved in document["states"].items():
        if len(saved) == 2:
            decoded[achievement_id] = SavedState(member_id, achievement_id, saved[0], saved[1], common_time, common_key)
        else:
            decoded[achievement_id] = SavedState(
                member_id, achievement_id, saved[0], saved[1], _seen_time(saved[2]), saved[3]
            )
    return decoded


def encode(states: Iterable[SavedState | None]) -> dict[str, Any]:
    """The ``member_states.states`` object of a member's saved states (orjson writes the times)."""
    present: list[tuple[SavedState, Seen]] = []
    counts: dict[Seen, int] = {}
    common: Seen = (None, None)
    most = 0
    for saved in states:  # hot: every changed member of every batch; one pass finds the common seen
        if saved is not None:
            seen = (saved.seen_time, saved.seen_key)
            present.append((saved, seen))
            n = counts[seen] = counts.get(seen, 0) + 1
            if n > most:
                common, most = seen, n
    return {
        "seen": list(common),
        "states": {
            s.achievement_id: [s.state, s.met] if seen == common else [s.state, s.met, *seen] for s, seen in present
        },
    }


def read(session: Session, member_ids: Iterable[int]) -> dict[int, dict[str, SavedState]]:
    """The stored states of these members, without caching them (readers: cards, the showcase)."""
    wanted = sorted(set(member_ids))
    found: dict[int, dict[str, SavedState]] = {}
    table = MemberStates.__table__
    for start in range(0, len(wanted), LOAD_CHUNK):
        chunk = wanted[start : start + LOAD_CHUNK]
        for member_id, document in session.execute(
            select(table.c.member_id, table.c.states).where(one_of(session, table.c.member_id, chunk))
        ):
            found[member_id] = decode(member_id, document)
    return found


def _cache(session: Session) -> dict[int, dict[str, SavedState | None]]:
    cache: dict[int, dict[str, SavedState | None]] = session.info.setdefault(CACHE, {})
    return cache


def load(session: Session, member_ids: Iterable[int], achievement_ids: Iterable[str]) -> None:
    """Cache the saved states of these members (all achievements) in one query per chunk.

    ``achievement_ids`` get an entry (``None``) where the member has no state yet.
    """
    cache = _cache(session)
    wanted = set(member_ids) - set(cache)
    if not wanted:
        return
    blank: dict[str, SavedState | None] = dict.fromkeys(achievement_ids)
    stored = read(session, wanted)
    for member_id in wanted:
        states = dict(blank)
        states.update(stored.get(member_id, {}))
        cache[member_id] = states


def of(session: Session, member_id: int, achievement_ids: Iterable[str]) -> dict[str, SavedState | None]:
    """The member's saved states (``None`` where there is none yet), loaded once per transaction.

    States created in the transaction are in the same dict: callers add them with :func:`put`.
    """
    cache = _cache(session)
    if member_id not in cache:
        load(session, [member_id], achievement_ids)
    return cache[member_id]


def put(session: Session, saved: SavedState) -> SavedState:
    """Add a new state to the cache (written at commit), after the member's stored ones."""
    if saved.member_id not in _cache(session):
        load(session, [saved.member_id], ())  # the row is rewritten whole: keep what it holds
    saved.dirty = True
    _cache(session)[saved.member_id][saved.achievement_id] = saved
    return saved


def replace_member(
    session: Session, member_id: int, states: dict[str, SavedState], achievement_ids: Iterable[str]
) -> None:
    """Drop every saved state of the member now and cache ``states`` as the new ones."""
    session.execute(delete(MemberStates).where(MemberStates.member_id == member_id))
    fresh: dict[str, SavedState | None] = dict.fromkeys(achievement_ids)
    for achievement_id, saved in states.items():
        saved.dirty = True
        fresh[achievement_id] = saved
    _cache(session)[member_id] = fresh


def forget_member(session: Session, member_id: int) -> None:
    """Delete the member's states, unwritten changes included (a member merged away)."""
    session.execute(delete(MemberStates).where(MemberStates.member_id == member_id))
    _cache(session).pop(member_id, None)


def write_pending(session: Session) -> None:
    """Upsert every member with a changed state; registered to run before the engine's transactions commit."""
    cache: dict[int, dict[str, SavedState | None]] = session.info.pop(CACHE, {})
    now = utcnow()
    rows = [
        (member_id, encode(states.values()), now)
        for member_id, states in sorted(cache.items())  # id order, as members are locked
        if any(s is not None and s.dirty for s in states.values())
    ]
    for start in range(0, len(rows), WRITE_CHUNK):
        _UPSERT.execute(session, rows[start : start + WRITE_CHUNK])


def _upsert(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=["member_id"],
        set_={"states": statement.excluded.states, "updated_at": statement.excluded.updated_at},
    )


_UPSERT = DriverWrite(cast(Table, MemberStates.__table__), ("member_id", "states", "updated_at"), _upsert)
