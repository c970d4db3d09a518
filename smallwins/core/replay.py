"""Event-time order: where each event sits in a member's history, and replaying that history.

A member's standing must depend only on what happened and when, never on delivery order. So
there is one canonical order of a member's history, and both paths of the engine follow it:
the incremental path applies an event only when it comes after everything the saved state has
seen (the common, in-order case), and otherwise the affected rules are replayed from the
stored history in this order.

The order is ``(time, own-before-approval, key)``. An approval or reaction reaches the author of
the contribution it names at ``max(its time, the contribution's time)``: an approval stamped a
little before the contribution (clocks on two platforms) still follows it, as it does in life.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from smallwins.core.events import Event
from smallwins.core.rules import Achievement, RuleContext, rule_failed
from smallwins.core.store import StoredEvent, pair_in

#: Contributions looked up per query when approvals name some the history did not read.
UNREAD_CHUNK = 5_000

OWN = "0"
APPROVAL = "1"


@dataclass(frozen=True, order=True)
class Position:
    """An event's place in a member's canonical order; compared as ``(time, token)``.

    ``token`` is ``"0" + key`` for the member's own events and ``"1" + key`` for others'
    approvals of their contributions, so at the same instant a contribution precedes its
    approvals and ties are broken by the event key, never by arrival.
    """

    time: datetime
    token: str

    @classmethod
    def own(cls, event: Event) -> Position:
        return cls(event.time, OWN + event.key)

    @classmethod
    def approval(cls, event: Event, contribution_time: datetime) -> Position:
        return cls(max(event.time, contribution_time), APPROVAL + event.key)


#: What :func:`event_from_row` reads: hot paths select these columns as plain rows, which costs a
#: fraction of loading ``StoredEvent`` objects they would only read.
EVENT_COLUMNS = (
    StoredEvent.event_id, StoredEvent.source, StoredEvent.type, StoredEvent.subject, StoredEvent.time,
    StoredEvent.proof, StoredEvent.data,
)


def event_from_row(row: StoredEvent | Row[Any]) -> Event:
    """Rebuild a stored event without re-validating it (it was validated on the way in), from a
    ``StoredEvent`` or a row of at least :data:`EVENT_COLUMNS`."""
    return Event.model_construct(
        id=row.event_id,
        source=row.source,
        type=row.type,
        subject=row.subject,
        time=row.time,
        proof=row.proof,
        data=row.data or {},
    )


@dataclass(frozen=True)
class HistoryItem:
    """One event of a member's history: their own (``actor`` None) or someone's approval."""

    event: Event
    position: Position
    actor_member_id: int | None = None


def member_history(session: Session, member_id: int, achievements: list[Achievement]) -> list[HistoryItem]:
    """The member's counted events and the approvals of their contributions, in canonical order.

    Only event types that ``achievements`` listen to are read; retracted events never count.
    """
    return member_histories(session, [member_id], achievements)[member_id]


def member_histories(
    session: Session, member_ids: list[int], achievements: list[Achievement]
) -> dict[int, list[HistoryItem]]:
    """:func:`member_history` of several members in two queries (a backfill reads a batch at once)."""
    own_types = {t for a in achievements for t in a.triggers}
    target_types = {t for a in achievements for t in a.target_triggers}
    histories: dict[int, list[HistoryItem]] = {member_id: [] for member_id in member_ids}
    if not member_ids:
        return histories
    own_rows = session.execute(
        select(*EVENT_COLUMNS, StoredEvent.member_id).where(
            StoredEvent.member_id.in_(member_ids),
            StoredEvent.type.in_(own_types),
            StoredEvent.retracted.is_(False),
        )
    ).all()
    contributions: dict[str, tuple[int, datetime]] = {}
    for row in own_rows:
        event = event_from_row(row)
        histories[row.member_id].append(HistoryItem(event, Position(row.time, OWN + event.key)))
        contributions[event.key] = (row.member_id, row.time)
    if target_types:
        theirs = select(StoredEvent.source + ":" + StoredEvent.event_id).where(
            StoredEvent.member_id.in_(member_ids), StoredEvent.retracted.is_(False)
        )
        approvals = session.execute(
            select(*EVENT_COLUMNS, StoredEvent.member_id, StoredEvent.target).where(
                StoredEvent.target.in_(theirs), StoredEvent.type.in_(target_types), StoredEvent.retracted.is_(False)
            )
        ).all()
        # an approval may name a contribution of a type no chosen rule triggers on: read those too
        named = {row.target for row in approvals if row.target and row.target not in contributions}
        unread = sorted(tuple(key.split(":", 1)) for key in named)
        for start in range(0, len(unread), UNREAD_CHUNK):
            for source, event_id, member_id, posted in session.execute(
                select(StoredEvent.source, StoredEvent.event_id, StoredEvent.member_id, StoredEvent.time).where(
                    pair_in(session, StoredEvent.source, StoredEvent.event_id, unread[start : start + UNREAD_CHUNK]),
                    StoredEvent.retracted.is_(False),
                )
            ):
                contributions[f"{source}:{event_id}"] = (member_id, posted)
        for row in approvals:
            assert row.target is not None
            found = contributions.get(row.target)
            if found is not None and found[0] in histories:
                author, posted = found
                event = event_from_row(row)
                histories[author].append(HistoryItem(event, Position.approval(event, posted), row.member_id))
    return {member_id: sorted(items, key=lambda item: item.position) for member_id, items in histories.items()}


@dataclass
class Replayed:
    """Rule states after a replay; when each achievement was (last) met; what each has seen."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    met_at: dict[str, datetime] = field(default_factory=dict)
    seen: dict[str, Position] = field(default_factory=dict)


def replay(history: list[HistoryItem], achievements: list[Achievement], base: RuleContext) -> Replayed:
    """Apply ``history`` in order to fresh states (no side effects).

    ``met_at`` holds, for each achievement met at the end, the time it became met: the moment
    of the event that completed it, in event time, which is what an award's date is.
    """
    result = Replayed()
    for item in history:
        event = item.event
        if item.actor_member_id is None:
            candidates, ctx = [a for a in achievements if event.type in a.triggers], base
        else:
            candidates = [a for a in achievements if event.type in a.target_triggers]
            ctx = replace(base, actor_member_id=item.actor_member_id)
        for achievement in candidates:
            if not achievement.accepts(event):
                continue
            state = result.states.get(achievement.id) or achievement.rule.initial_state(achievement.params)
            try:
                new_state = achievement.rule.apply(achievement.params, state, event, ctx)
                if new_state is None:
                    continue
                met = achievement.standing(new_state, ctx).met
            except Exception as exc:  # a faulty rule skips the event, as in a live ingest
                rule_failed(achievement, event, exc)
                continue
            result.seen[achievement.id] = item.position
            result.states[achievement.id] = new_state
            if met and achievement.id not in result.met_at:
                result.met_at[achievement.id] = item.position.time
            elif not met:
                result.met_at.pop(achievement.id, None)
    return result
