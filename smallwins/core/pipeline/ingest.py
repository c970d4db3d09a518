"""The ingest pipeline, batch by batch: resolve, store, route, apply rules, settle, then one commit
that writes rule states, awards, audit, outbox and points in bulk.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator, Iterable

import structlog
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from smallwins.core import identity
from smallwins.core.events import Event
from smallwins.core.gc_pacing import fewer_full_collections
from smallwins.core.identity import AccountRef
from smallwins.core.pipeline.handoff import Handoffs
from smallwins.core.pipeline.outcomes import (
    DEADLOCK_RETRIES,
    FULL_REPLAY,
    LINK_EVENT,
    RETRACTED_KEYS,
    RULE_FAILURES,
    IngestOutcome,
    is_deadlock,
    unresolved,
)
from smallwins.core.replay import OWN, Position
from smallwins.core.rules import RuleContext
from smallwins.core.store import (
    Member,
    StoredEvent,
    insert_ignoring_conflict,
    one_of,
)

log = structlog.get_logger(__name__)

#: Events per transaction when a whole file or a history is ingested. Rule states are loaded
#: and written once per member per batch, so larger batches cost less per event (1M events over
#: 100k members on SQLite: 10,000 per batch 3.7k ev/s, 25,000 4.0k, 50,000 4.3k; 50,000 peaked
#: about 190 MB above 10,000 and holds the write lock twice as long as 25,000); live sources
#: deliver in the small batches they arrive in.
BULK_BATCH_SIZE = 25_000
#: An ingest of at least this many events changes the tables' shape enough to re-sample them.
LARGE_INGEST = 10_000


class Ingestion(Handoffs):
    """The ingest pipeline, batch by batch: resolve, store, route, apply rules, settle, then one commit"""

    def ingest(self, event: Event) -> IngestOutcome:
        """Ingest one event in its own transaction."""
        return self._ingest_batch([event])[0]

    def ingest_many(
        self, events: Iterable[Event], *, batch_size: int = BULK_BATCH_SIZE
    ) -> Generator[IngestOutcome, None, None]:
        """Ingest events in transactions of ``batch_size`` (see :meth:`_ingest_batch`).

        Yields one outcome per event, in the order given, so a caller can show progress. Full
        garbage collections are paced while it runs (:mod:`smallwins.core.gc_pacing`).
        """
        batch: list[Event] = []
        seen = 0
        with fewer_full_collections():
            for event in events:
                batch.append(event)
                seen += 1
                if len(batch) >= batch_size:
                    yield from self._ingest_batch(batch)
                    batch = []
            if batch:
                yield from self._ingest_batch(batch)
        if seen >= LARGE_INGEST:  # a large ingest changes the tables' shape: the planner should know
            self.store.refresh_statistics()

    def _ingest_batch(self, batch: list[Event]) -> list[IngestOutcome]:
        """One transaction for the batch, retried when PostgreSQL picked it as a deadlock victim;
        if it still fails, one transaction per event, so that every event that can land does
        (re-ingesting the ones already stored is a no-op)."""
        if self.store.dialect != "sqlite":  # SQLite: in the batch's transaction (see _lock_batch_members)
            self._create_members(batch)
        for attempt in range(DEADLOCK_RETRIES):
            try:
                with self.store.writes.begin() as session:
                    outcomes = self._ingest_in(session, batch)
                    pending = unresolved(session)
                break
            except OperationalError as exc:
                if attempt + 1 == DEADLOCK_RETRIES or not is_deadlock(exc):
                    return self._ingest_singly(batch, exc)
                log.info("ingest.deadlock_retrying", size=len(batch), attempt=attempt + 1)
                time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
            except SQLAlchemyError as exc:
                return self._ingest_singly(batch, exc)
        if self.store.dialect == "postgresql":
            for attempt in range(DEADLOCK_RETRIES):
                try:
                    self._reconcile_concurrent(batch, pending)
                    break
                except OperationalError as exc:
                    if attempt + 1 == DEADLOCK_RETRIES or not is_deadlock(exc):
                        raise
                    time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
        return outcomes

    def _ingest_singly(self, batch: list[Event], exc: SQLAlchemyError) -> list[IngestOutcome]:
        if len(batch) == 1:
            raise exc
        log.warning("ingest.batch_failed_retrying_singly", size=len(batch), error=str(exc))
        return [outcome for event in batch for outcome in self._ingest_batch([event])]

    def _ingest_in(self, session: Session, batch: list[Event]) -> list[IngestOutcome]:
        """Ingest a batch in event-time order, then replay what arrived late, in one transaction.

        Most events go through the set-based path (:meth:`_ingest_plain`: one INSERT for the
        batch, one lookup for what its approvals name, one for approvals waiting on its
        contributions). Retractions and link codes change other rows or merge members; they
        follow one by one. Standing does not depend on that order (see the module docstring).
        """
        claimed = self._claim_handoffs(session)
        self._lock_batch_members(session, batch, also={row.member_id for row in claimed})
        handed_over = self._apply_handoffs(session, claimed) if claimed else {}
        session.info[RETRACTED_KEYS] = set(
            session.scalars(
                select(StoredEvent.retracts).where(one_of(session, StoredEvent.retracts, {e.key for e in batch}))
            )
        )
        # Position.own's order, (time, own token), compared as plain tuples (no object per event)
        order = sorted(range(len(batch)), key=lambda i: (batch[i].time, OWN + batch[i].key))
        special = [i for i in order if batch[i].type == LINK_EVENT or batch[i].retracts is not None]
        plain = [i for i in order if batch[i].type != LINK_EVENT and batch[i].retracts is None]
        outcomes: dict[int, IngestOutcome] = {}
        # Changes of a batch are written in one flush at commit (state lookups go through the
        # per-transaction caches); operations that query across members flush first.
        with session.no_autoflush:
            outcomes.update(self._ingest_plain(session, batch, plain))
            for index in special:
                outcomes[index] = self._ingest_unflushed(session, batch[index])
            ordered = [outcomes[i] for i in range(len(batch))]
            for member_id, earned in [*handed_over.items(), *self._settle(session).items()]:
                mine = [o for o in ordered if o.member_id == member_id] or ordered
                mine[-1].awarded += earned
        failures: dict[str, str] = session.info.get(RULE_FAILURES, {})
        for outcome in ordered if failures else ():
            if outcome.key in failures:
                outcome.warn(failures[outcome.key])
        return ordered

    def _ingest_plain(self, session: Session, batch: list[Event], indices: list[int]) -> dict[int, IngestOutcome]:
        """Store and evaluate events that neither retract nor link, in event-time order
        (``indices``), with a fixed number of statements for the whole batch."""
        if not indices:
            return {}
        members: dict[int, Member] = {}
        for index in indices:
            event = batch[index]
            member = identity.resolve_member(
                session, AccountRef(event.source, event.subject), display_name=event.data.get("display_name")
            )
            if event.by_staff and not member.staff:
                member.staff = True  # moderators and bots act, but hold no standing of their own
                session.info.setdefault(FULL_REPLAY, set()).add(member.id)
            members[index] = member
        retracted_keys: set[str] = session.info.get(RETRACTED_KEYS, set())
        fresh = self._store_events(session, [(batch[i], members[i].id) for i in indices], retracted_keys)
        stored: set[int] = set()
        claimed: set[str] = set()
        for index in indices:  # a key given twice in the batch: its first occurrence was stored
            key = batch[index].key
            if key in fresh and key not in claimed:
                stored.add(index)
                claimed.add(key)
        targets = self._find_targets(session, [batch[i] for i in indices if i in stored])
        waiting = self._find_waiting_approvals(session, [batch[i] for i in indices if i in stored])
        outcomes: dict[int, IngestOutcome] = {}
        # An approval reaches its contribution's author only once the contribution is in the
        # author's state: one stored in this batch but later in event time waits for it (the
        # contribution then takes it from ``waiting``), as one from an earlier batch would.
        processed: set[str] = set()
        contexts: dict[int, RuleContext] = {}  # one per member for the batch (its "now": the batch's)

        def later_in_batch(key: str) -> bool:
            return key in fresh and key not in processed

        for index in indices:
            event, member = batch[index], members[index]
            if index not in stored:
                outcomes[index] = IngestOutcome(key=event.key, stored=False, member_id=member.id)
                continue
            processed.add(event.key)
            outcome = outcomes[index] = IngestOutcome(key=event.key, stored=True, member_id=member.id)
            if self.known_sources and event.source not in self.known_sources:
                outcome.warn(self._unknown_source(event.source))
            if event.key in retracted_keys:
                continue  # its retraction came first: stored for the record, counts for nothing
            self._credit(session, member, event.time, self.catalogue.event_points.get(event.type, 0))
            if event.type not in self.known_event_types:
                outcome.warn(f"unknown event type '{event.type}': stored, triggers no rule")
                continue
            if not member.staff:
                ctx = contexts.get(member.id) or contexts.setdefault(member.id, self._context(member))
                outcome.awarded = self._apply(
                    session, member, event, self.catalogue.triggered_by(event.type), ctx, Position.own(event)
                )
                if self._collects_approvals(event.type):
                    found = waiting.get(event.key, [])
                    outcome.awarded += self._apply_approvals(session, member, event, found, later_in_batch)
            routed = event.target is not None and self.catalogue.target_triggered_by(event.type)
            if routed and event.target is not None and not later_in_batch(event.target):
                outcome.awarded += self._route_found(session, member, event, targets.get(event.target))
        return outcomes

    def _unknown_source(self, source: str) -> str:
        """The warning for an event whose source no installed plugin or catalogue scope names:
        most likely a typo, which would otherwise count as a separate account without a word."""
        known = ", ".join(sorted(self.known_sources))
        return f"unknown source '{source}' (known: {known}): stored, its account is a member of its own"

    def _ingest_unflushed(self, session: Session, event: Event) -> IngestOutcome:
        ref = AccountRef(event.source, event.subject)
        member = identity.resolve_member(session, ref, display_name=event.data.get("display_name"))
        if event.by_staff and not member.staff:
            member.staff = True  # moderators and bots act, but hold no standing of their own
            session.info.setdefault(FULL_REPLAY, set()).add(member.id)
        retracts = event.retracts if event.retracts and event.retracts.partition(":")[0] == event.source else None
        retracted = event.key in session.info.get(RETRACTED_KEYS, ())
        row_id = insert_ignoring_conflict(
            session,
            StoredEvent,
            {
                "source": event.source,
                "event_id": event.id,
                "type": event.type,
                "subject": event.subject,
                "member_id": member.id,
                "time": event.time,
                "proof": event.proof,
                "data": event.data,
                "target": event.target,
                "retracts": retracts,
                "retracted": retracted,
                "ingested_at": self.clock(),
            },
            ["source", "event_id"],
        )
        if row_id is None:
            return IngestOutcome(key=event.key, stored=False, member_id=member.id)
        outcome = IngestOutcome(key=event.key, stored=True, member_id=member.id)
        if self.known_sources and event.source not in self.known_sources:
            outcome.warn(self._unknown_source(event.source))
        if event.retracts and retracts is None:
            outcome.warn(f"retracts '{event.retracts}', an event of another source: ignored")
        if retracts is not None:
            self._retract(session, event, retracts)
        if not retracted:  # a retraction that came first: stored for the record, counts for nothing
            self._credit(session, member, event.time, self.catalogue.event_points.get(event.type, 0))
        if event.type == LINK_EVENT:
            # A link acts on identities, not standing: deleting the message that carried the code
            # does not undo it (``smallwins unlink`` does), so it links whether its retraction
            # came first or later.
            if refused := self._present_link_code(session, member, event):
                outcome.warn(refused)
            return outcome
        if retracted:
            return outcome
        if event.type not in self.known_event_types:
            if event.retracts is None:  # a retraction is known whatever its type is called
                outcome.warn(f"unknown event type '{event.type}': stored, triggers no rule")
            return outcome
        if not member.staff:
            ctx = self._context(member)
            outcome.awarded = self._apply(
                session, member, event, self.catalogue.triggered_by(event.type), ctx, Position.own(event)
            )
            outcome.awarded += self._apply_waiting_approvals(session, member, event)
        outcome.awarded += self._route_to_target(session, member, event)
        return outcome
