"""Stage 3, route approvals: what the batch's approvals name and the approvals already waiting for
its contributions, each found with one query, and applied to the contribution's author.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from smallwins.core import identity
from smallwins.core.events import Event
from smallwins.core.pipeline.outcomes import (
    unresolved,
)
from smallwins.core.pipeline.store_events import Storage
from smallwins.core.replay import EVENT_COLUMNS, Position, event_from_row
from smallwins.core.store import (
    Member,
    StoredEvent,
    one_of,
    pair_in,
)


class Routing(Storage):
    """Stage 3, route approvals: what the batch's approvals name and the approvals already waiting for"""

    def _find_targets(self, session: Session, events: list[Event]) -> dict[str, Row[Any]]:
        """What the batch's approvals and reactions name, found in one query per chunk:
        ``key -> (source, event_id, subject, member_id, time, retracted)`` (contributions stored
        in this batch included)."""
        keys = {e.target for e in events if e.target is not None and self.catalogue.target_triggered_by(e.type)}
        pairs = [tuple(key.split(":", 1)) for key in keys if ":" in key]
        found: dict[str, Row[Any]] = {}
        columns = (StoredEvent.source, StoredEvent.event_id, StoredEvent.subject, StoredEvent.member_id,
                   StoredEvent.time, StoredEvent.retracted)
        for start in range(0, len(pairs), identity.LOOKUP_CHUNK):
            chunk = pairs[start : start + identity.LOOKUP_CHUNK]
            named = pair_in(session, StoredEvent.source, StoredEvent.event_id, chunk)
            for row in session.execute(select(*columns).where(named)):
                found[f"{row.source}:{row.event_id}"] = cast("Row[Any]", row)
        return found

    def _find_waiting_approvals(self, session: Session, events: list[Event]) -> dict[str, list[tuple[int, Event]]]:
        """Approvals already stored that name the batch's contributions, in one query per chunk:
        ``contribution key -> [(actor member id, approval)]``."""
        if not self.catalogue.has_target_rules:
            return {}
        keys = [e.key for e in events if self._collects_approvals(e.type)]
        waiting: dict[str, list[tuple[int, Event]]] = {}
        for start in range(0, len(keys), identity.LOOKUP_CHUNK):
            for row in session.execute(
                select(*EVENT_COLUMNS, StoredEvent.member_id, StoredEvent.target).where(
                    one_of(session, StoredEvent.target, keys[start : start + identity.LOOKUP_CHUNK]),
                    StoredEvent.retracted.is_(False),
                )
            ):
                assert row.target is not None
                waiting.setdefault(row.target, []).append((row.member_id, event_from_row(row)))
        return waiting

    def _collects_approvals(self, event_type: str) -> bool:
        """Whether events of this type are contributions that others' approvals count for."""
        return event_type in self.catalogue.collecting_approvals

    def _route_to_target(self, session: Session, actor: Member, event: Event) -> list[str]:
        """An approval or reaction concerns the author of the event it names."""
        if not self.catalogue.target_triggered_by(event.type) or event.target is None:
            return []
        return self._route_found(session, actor, event, self._find_targets(session, [event]).get(event.target))

    def _route_found(self, session: Session, actor: Member, event: Event, found: Row[Any] | None) -> list[str]:
        """Apply an approval to the author of the contribution it names (``found``), if stored."""
        if found is None:  # not arrived yet: it picks this up when it does
            unresolved(session).approvals.add(event.key)
            return []
        if found.retracted:
            return []
        if self._foreign(found.source, found.subject):  # another worker's member: its worker replays
            self._hand_off(session, found.member_id, (found.source, found.subject), event.key)
            return []
        author = identity.lock_member(session, found.member_id)
        if author.staff:
            return []
        achievements = self.catalogue.target_triggered_by(event.type)
        ctx = replace(self._context(author), actor_member_id=actor.id)
        return self._apply(session, author, event, achievements, ctx, Position.approval(event, found.time))

    def _apply_waiting_approvals(self, session: Session, author: Member, event: Event) -> list[str]:
        """Approvals that arrived before this contribution are applied now, in event-time order."""
        if not self._collects_approvals(event.type):
            return []
        waiting = self._find_waiting_approvals(session, [event]).get(event.key, [])
        return self._apply_approvals(session, author, event, waiting, lambda key: False)

    def _apply_approvals(
        self,
        session: Session,
        author: Member,
        event: Event,
        found: list[tuple[int, Event]],
        routes_itself: Callable[[str], bool],
    ) -> list[str]:
        """Apply the approvals ``found`` naming the contribution ``event``, in event-time order,
        except those that reach the author on their own (later in the same batch)."""
        unresolved(session).approvals_seen.setdefault(event.key, set()).update(a.key for _, a in found)
        waiting = sorted(
            ((Position.approval(approval, event.time), actor_id, approval) for actor_id, approval in found
             if not routes_itself(approval.key)),
            key=lambda item: item[0],
        )
        earned = []
        for position, actor_id, approval in waiting:
            ctx = replace(self._context(author), actor_member_id=actor_id)
            achievements = self.catalogue.target_triggered_by(approval.type)
            earned += self._apply(session, author, approval, achievements, ctx, position)
        return earned
