"""The ingest pipeline and the operations that change standings.

validate -> resolve identity -> dedup -> store -> evaluate incrementally -> award -> outbox.

Standing depends only on what happened and when, never on delivery order (see
:mod:`smallwins.core.replay`). Each saved rule state remembers the latest event, in event-time
order, it has seen. An event that comes after it (the common case) is applied incrementally: no
rescan. One that comes before it marks that rule state stale, and at the end of the batch the
member's stale rules are replayed from stored history, so awards, their dates, tiers and period
points come out as if everything had arrived in time order. Full replays happen only when a
member's history itself changes (merge, unlink, time zone) or a moderator asks for one.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Row, select, tuple_, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, leaderboards, rule_states, vouchers
from smallwins.core.events import CORE_EVENT_TYPES, Event
from smallwins.core.identity import AccountRef, IdentityError
from smallwins.core.replay import Position, event_from_row, member_history, replay
from smallwins.core.rule_states import SavedState
from smallwins.core.rules import Achievement, Catalogue, RuleContext
from smallwins.core.store import (
    Award,
    Identity,
    Member,
    Store,
    StoredEvent,
    Voucher,
    dialect_insert,
    insert_ignoring_conflict,
)

log = structlog.get_logger(__name__)

SYSTEM_ACTOR = "smallwins"
LINK_EVENT = "link.code_presented"
#: ``session.info`` keys of per-transaction work (rule states live in
#: :mod:`smallwins.core.rule_states`): rule states found stale (an earlier event arrived late),
#: by member; members whose stale rules follow a retraction; members to replay in full; keys
#: retracted before their event arrived.
STALE = "smallwins.stale_rule_states"
STALE_CAUSE = "smallwins.stale_cause"
RETRACTION_TOUCHED = "smallwins.retraction_touched"
FULL_REPLAY = "smallwins.full_replay"
RETRACTED_KEYS = "smallwins.retracted_keys"
UNRESOLVED = "smallwins.unresolved"
#: Attempts of a batch PostgreSQL aborted to break a deadlock, before going one event at a time.
DEADLOCK_RETRIES = 4

#: What happens to an award whose evidence was retracted (a deleted message): by default it is
#: revoked (audited) when the rule is no longer met; ``keep`` leaves awards already made alone.
RetractionPolicy = Literal["revoke", "keep"]


@dataclass
class IngestOutcome:
    """What happened to one event."""

    key: str
    stored: bool
    member_id: int | None
    awarded: list[str] = field(default_factory=list)
    warning: str | None = None


@dataclass
class IngestReport:
    """Totals of a batch of events, plus per-event warnings worth showing an operator."""

    stored: int = 0
    duplicates: int = 0
    awarded: int = 0
    warnings: list[str] = field(default_factory=list)

    def add(self, outcome: IngestOutcome) -> None:
        if outcome.stored:
            self.stored += 1
        else:
            self.duplicates += 1
        self.awarded += len(outcome.awarded)
        if outcome.warning:
            self.warnings.append(f"{outcome.key}: {outcome.warning}")


@dataclass
class MemberPlan:
    """What a recomputation would change for one member (shown by a dry run, applied as is)."""

    member_id: int
    display_name: str
    states: dict[str, dict[str, Any]]
    earned: dict[str, tuple[datetime, str | None]]
    seen: dict[str, Position] = field(default_factory=dict)
    award: list[str] = field(default_factory=list)
    revoke: list[str] = field(default_factory=list)
    tiers: list[tuple[str, str | None, str]] = field(default_factory=list)
    redate: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.award or self.revoke or self.tiers or self.redate)


@dataclass
class Unresolved:
    """What a transaction could not connect because the other half was not visible to it."""

    approvals: set[str] = field(default_factory=set)  # approvals whose contribution was not found
    approvals_seen: dict[str, set[str]] = field(default_factory=dict)  # contribution -> approvals found
    retracted: set[str] = field(default_factory=set)  # events named by a retraction, not found


def unresolved(session: Session) -> Unresolved:
    found: Unresolved = session.info.setdefault(UNRESOLVED, Unresolved())
    return found


def is_deadlock(exc: OperationalError) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock or a serialization conflict."""
    return getattr(exc.orig, "sqlstate", None) in {"40P01", "40001"}


#: Events per multi-row INSERT (12 bound values each: under SQLite's limit of 32,766).
STORE_CHUNK = 2000


@functools.cache
def _store_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (source, event_id) DO NOTHING RETURNING the keys stored; built once."""
    table = StoredEvent.__table__
    return (
        dialect_insert(dialect, table)  # type: ignore[arg-type]
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(table.c.source, table.c.event_id)
    )


def stored_events(session: Session, keys: set[str]) -> dict[str, StoredEvent]:
    """Stored events by ``source:id`` key, in one query (the unique index answers it)."""
    pairs = [tuple(key.split(":", 1)) for key in keys if ":" in key]
    if not pairs:
        return {}
    rows = session.scalars(select(StoredEvent).where(tuple_(StoredEvent.source, StoredEvent.event_id).in_(pairs)))
    return {row.key: row for row in rows}


class Engine:
    """Ingests events and applies moderator and identity operations against one store."""

    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        *,
        known_event_types: Iterable[str] = (),
        link_code_ttl: timedelta = timedelta(minutes=30),
        default_timezone: str = "UTC",
        retraction_policy: RetractionPolicy = "revoke",
        voucher_horizon: timedelta | None = timedelta(days=7),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        for writer in (rule_states.write_pending, leaderboards.write_pending):
            if writer not in store.before_commit:
                store.before_commit.append(writer)
        self.catalogue = catalogue
        self.known_event_types = frozenset(known_event_types) | catalogue.known_event_types | CORE_EVENT_TYPES
        self.link_code_ttl = link_code_ttl
        self.default_timezone = ZoneInfo(default_timezone)
        self.retraction_policy = retraction_policy
        self.voucher_horizon = voucher_horizon
        self.clock = clock

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, event: Event) -> IngestOutcome:
        """Ingest one event in its own transaction."""
        return self._ingest_batch([event])[0]

    def ingest_many(self, events: Iterable[Event], *, batch_size: int = 500) -> Iterator[IngestOutcome]:
        """Ingest events in transactions of ``batch_size`` (see :meth:`_ingest_batch`).

        Yields one outcome per event, in the order given, so a caller can show progress.
        """
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) >= batch_size:
                yield from self._ingest_batch(batch)
                batch = []
        if batch:
            yield from self._ingest_batch(batch)

    def _ingest_batch(self, batch: list[Event]) -> list[IngestOutcome]:
        """One transaction for the batch, retried when PostgreSQL picked it as a deadlock victim;
        if it still fails, one transaction per event, so that every event that can land does
        (re-ingesting the ones already stored is a no-op)."""
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

    def _create_members(self, batch: list[Event]) -> None:
        """Members for first-seen accounts, committed before the batch locks anything."""
        accounts: dict[AccountRef, str | None] = {}
        for event in batch:
            accounts.setdefault(AccountRef(event.source, event.subject), event.data.get("display_name"))
        with self.store.writes.begin() as session:
            for member_id in identity.create_missing_members(session, accounts):
                # presenters render every member, also one with nothing earned yet
                awards.enqueue(session, member_id=member_id, kind="member.joined", at=self.clock(), payload={})

    def _lock_batch_members(self, session: Session, batch: list[Event]) -> None:
        """Lock, in id order, every member the batch will touch (actors, and the authors of what
        it approves or retracts), and load their accounts and rule states: a few queries per
        batch instead of a few per event."""
        refs = {(e.source, e.subject) for e in batch}
        accounts = session.execute(
            select(Identity.platform, Identity.account, Identity.member_id).where(
                tuple_(Identity.platform, Identity.account).in_(refs)
            )
        ).all()
        member_ids = {member_id for _, _, member_id in accounts}
        named = {tuple(key.split(":", 1)) for e in batch for key in (e.target, e.retracts) if key}
        if named:
            member_ids.update(
                session.scalars(
                    select(StoredEvent.member_id).where(tuple_(StoredEvent.source, StoredEvent.event_id).in_(named))
                )
            )
        identity.lock_members(session, member_ids)
        resolved = session.info.setdefault(identity.RESOLVED, {})
        for platform, account, member_id in accounts:
            resolved[AccountRef(platform, account)] = identity.lock_member(session, member_id)
        locked = {member.id for member in session.info.get(identity.LOCKED, {}).values()}
        rule_states.load(session, locked, self.catalogue.achievements)
        held: dict[tuple[int, str], Award | None] = session.info.setdefault(awards.AWARDS, {})
        for member_id in locked:
            for achievement_id in self.catalogue.achievements:
                held.setdefault((member_id, achievement_id), None)
        for award in session.scalars(select(Award).where(Award.member_id.in_(locked))):
            held[(award.member_id, award.achievement_id)] = award

    def _ingest_in(self, session: Session, batch: list[Event]) -> list[IngestOutcome]:
        """Ingest a batch in event-time order, then replay what arrived late, in one transaction.

        Most events go through the set-based path (:meth:`_ingest_plain`: one INSERT for the
        batch, one lookup for what its approvals name, one for approvals waiting on its
        contributions). Retractions and link codes change other rows or merge members; they
        follow one by one. Standing does not depend on that order (see the module docstring).
        """
        self._lock_batch_members(session, batch)
        session.info[RETRACTED_KEYS] = set(
            session.scalars(select(StoredEvent.retracts).where(StoredEvent.retracts.in_({e.key for e in batch})))
        )
        order = sorted(range(len(batch)), key=lambda i: Position.own(batch[i]))
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
            for member_id, earned in self._settle(session).items():
                mine = [o for o in ordered if o.member_id == member_id] or ordered
                mine[-1].awarded += earned
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

        def later_in_batch(key: str) -> bool:
            return key in fresh and key not in processed

        for index in indices:
            event, member = batch[index], members[index]
            if index not in stored:
                outcomes[index] = IngestOutcome(key=event.key, stored=False, member_id=member.id)
                continue
            processed.add(event.key)
            outcome = outcomes[index] = IngestOutcome(key=event.key, stored=True, member_id=member.id)
            if event.key in retracted_keys:
                continue  # its retraction came first: stored for the record, counts for nothing
            self._credit(session, member, event.time, self.catalogue.event_points.get(event.type, 0))
            if event.type not in self.known_event_types:
                outcome.warning = f"unknown event type '{event.type}': stored, triggers no rule"
                continue
            if not member.staff:
                ctx = self._context(member)
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

    def _store_events(self, session: Session, items: list[tuple[Event, int]], retracted_keys: set[str]) -> set[str]:
        """One multi-row INSERT ... ON CONFLICT DO NOTHING for ``(event, member id)`` pairs, in
        the order given; the keys stored now (the database decides, so across processes too)."""
        rows: dict[str, dict[str, Any]] = {}
        for event, member_id in items:
            if event.key not in rows:
                rows[event.key] = {
                    "source": event.source,
                    "event_id": event.id,
                    "type": event.type,
                    "subject": event.subject,
                    "member_id": member_id,
                    "time": event.time,
                    "proof": event.proof,
                    "data": event.data,
                    "target": event.target,
                    "retracts": None,
                    "retracted": event.key in retracted_keys,
                    "ingested_at": self.clock(),
                }
        statement = _store_statement(self.store.dialect)
        values = list(rows.values())
        stored: set[str] = set()
        for start in range(0, len(values), STORE_CHUNK):
            chunk = values[start : start + STORE_CHUNK]
            stored.update(f"{source}:{event_id}" for source, event_id in session.execute(statement, chunk))
        return stored

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
        if event.retracts and retracts is None:
            outcome.warning = f"retracts '{event.retracts}', an event of another source: ignored"
        if retracts is not None:
            self._retract(session, event, retracts)
        if retracted:
            return outcome  # its retraction came first: stored for the record, counts for nothing
        self._credit(session, member, event.time, self.catalogue.event_points.get(event.type, 0))
        if event.type == LINK_EVENT:
            outcome.warning = self._present_link_code(session, member, event)
            return outcome
        if event.type not in self.known_event_types:
            if event.retracts is None:  # a retraction is known whatever its type is called
                outcome.warning = f"unknown event type '{event.type}': stored, triggers no rule"
            return outcome
        if not member.staff:
            ctx = self._context(member)
            outcome.awarded = self._apply(
                session, member, event, self.catalogue.triggered_by(event.type), ctx, Position.own(event)
            )
            outcome.awarded += self._apply_waiting_approvals(session, member, event)
        outcome.awarded += self._route_to_target(session, member, event)
        return outcome

    def _credit(self, session: Session, member: Member, moment: datetime, points: int) -> None:
        """Add points to the all-time total and to every time-boxed board's period (not staff's)."""
        if points and not member.staff:
            member.points += points
            leaderboards.add_points(
                session,
                self.catalogue.leaderboards,
                self.default_timezone,
                member_id=member.id,
                moment=moment,
                points=points,
            )

    def _find_targets(self, session: Session, events: list[Event]) -> dict[str, Row[Any]]:
        """What the batch's approvals and reactions name, found in one query per chunk:
        ``key -> (member_id, time, retracted)`` (contributions stored in this batch included)."""
        keys = {e.target for e in events if e.target is not None and self.catalogue.target_triggered_by(e.type)}
        pairs = [tuple(key.split(":", 1)) for key in keys if ":" in key]
        found: dict[str, Row[Any]] = {}
        columns = (StoredEvent.source, StoredEvent.event_id, StoredEvent.member_id, StoredEvent.time,
                   StoredEvent.retracted)
        for start in range(0, len(pairs), identity.LOOKUP_CHUNK):
            chunk = pairs[start : start + identity.LOOKUP_CHUNK]
            named = tuple_(StoredEvent.source, StoredEvent.event_id).in_(chunk)
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
            for row in session.scalars(
                select(StoredEvent).where(
                    StoredEvent.target.in_(keys[start : start + identity.LOOKUP_CHUNK]),
                    StoredEvent.retracted.is_(False),
                )
            ):
                assert row.target is not None
                waiting.setdefault(row.target, []).append((row.member_id, event_from_row(row)))
        return waiting

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
        author = identity.lock_member(session, found.member_id)
        if author.staff:
            return []
        achievements = self.catalogue.target_triggered_by(event.type)
        ctx = replace(self._context(author), actor_member_id=actor.id)
        return self._apply(session, author, event, achievements, ctx, Position.approval(event, found.time))

    def _collects_approvals(self, event_type: str) -> bool:
        """Whether events of this type are contributions that others' approvals count for."""
        return self.catalogue.has_target_rules and any(
            a.target_triggers for a in self.catalogue.triggered_by(event_type)
        )

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

    def _context(self, member: Member) -> RuleContext:
        return RuleContext(
            member_id=member.id,
            timezone=ZoneInfo(member.timezone) if member.timezone else self.default_timezone,
            now=self.clock(),
        )

    def _apply(
        self,
        session: Session,
        member: Member,
        event: Event,
        achievements: list[Achievement],
        ctx: RuleContext,
        position: Position,
    ) -> list[str]:
        """Apply one event to the member's saved state of each achievement; award and upgrade.

        A state that has already seen a later event is not touched: it is marked stale and
        replayed from history when the batch settles.
        """
        achievements = [a for a in achievements if a.accepts(event)]
        if not achievements:
            return []
        stale = session.info.setdefault(STALE, {}).setdefault(member.id, set())
        saved = self._rule_states(session, member.id, [a.id for a in achievements])
        earned = []
        for achievement in achievements:
            row = saved.get(achievement.id)
            if achievement.id in stale:
                continue
            if row is not None and row.seen_time is not None and Position(row.seen_time, row.seen_key or "") > position:
                self._mark_stale(session, member.id, [achievement], cause=event.key)
                continue
            state = row.state if row is not None else achievement.rule.initial_state(achievement.params)
            new_state = achievement.rule.apply(achievement.params, state, event, ctx)
            if new_state is None:  # by the rule contract, changes nothing in any order: no write
                continue
            if row is None:
                row = saved[achievement.id] = rule_states.put(session, SavedState(member.id, achievement.id, state))
            row.dirty = True
            row.seen_time, row.seen_key = position.time, position.token
            before = achievement.rule.progress(achievement.params, state, ctx)
            row.state = new_state
            after = achievement.rule.progress(achievement.params, new_state, ctx)
            reason = f"rule met by {event.key}"
            if after.met and not row.met:
                row.met = True
                if self._award_by_rule(
                    session, member, achievement, new_state, tier=after.tier, earned_at=position.time, reason=reason
                ):
                    earned.append(achievement.id)
            elif row.met and not after.met:
                # Only a rule whose state can shrink gets here (a welcome-back whose gap a later
                # event filled): the standing follows the history.
                row.met = False
                self._revoke_by_rule(session, member, achievement, reason=f"no longer met after {event.key}")
            elif row.met and after.tier_rank > before.tier_rank and after.tier:
                awards.change_tier(
                    session,
                    member,
                    achievement,
                    tier=after.tier,
                    actor=SYSTEM_ACTOR,
                    reason=f"tier {after.tier} reached by {event.key}",
                    at=self.clock(),
                    event_keys=[event.key],
                )
        return earned

    @staticmethod
    def _rule_states(session: Session, member_id: int, achievement_ids: list[str]) -> dict[str, SavedState | None]:
        """The member's saved states for these achievements, loaded once per transaction
        (see :mod:`smallwins.core.rule_states`: changes are written in one statement at commit)."""
        return rule_states.of(session, member_id, achievement_ids)

    def _award_by_rule(
        self,
        session: Session,
        member: Member,
        achievement: Achievement,
        state: dict[str, Any],
        *,
        tier: str | None,
        earned_at: datetime,
        reason: str,
    ) -> bool:
        """Award from a rule, its points in the period it was earned in.

        A voucher's claim window opens now, when the member can first see the award; an award
        older than the voucher horizon (imported history) issues none, so no voucher is born dead.
        """
        now = self.clock()
        fresh = self.voucher_horizon is None or now - earned_at <= self.voucher_horizon
        awarded = awards.award(
            session,
            member,
            achievement,
            origin=awards.RULE,
            actor=SYSTEM_ACTOR,
            reason=reason,
            at=now,
            earned_at=earned_at,
            tier=tier,
            voucher_from=now,
            issue_voucher=fresh,
            event_keys=state.get("evidence") or [],
        )
        if awarded:
            self._credit(session, member, earned_at, achievement.points)
        return awarded

    def _revoke_by_rule(
        self, session: Session, member: Member, achievement: Achievement, *, reason: str
    ) -> None:
        """A rule no longer met: revoke (audited) and take its points back from their period."""
        revoked = awards.revoke(
            session, member, achievement, origin=awards.RULE, actor=SYSTEM_ACTOR, reason=reason, at=self.clock()
        )
        if revoked is not None:
            self._credit(session, member, revoked.awarded_at, -achievement.points)

    # -- late events and retractions ------------------------------------------------------

    def _retract(self, session: Session, retraction: Event, key: str) -> None:
        """Stop counting the event ``key`` names; its member's affected rules replay at settle."""
        source, _, event_id = key.partition(":")
        found = session.execute(
            select(StoredEvent.id, StoredEvent.member_id, StoredEvent.type, StoredEvent.time, StoredEvent.target,
                   StoredEvent.retracted).where(StoredEvent.source == source, StoredEvent.event_id == event_id)
        ).first()
        if found is None:  # it has not arrived yet: it will be stored as retracted
            session.info.setdefault(RETRACTED_KEYS, set()).add(key)
            unresolved(session).retracted.add(key)
            return
        if found.retracted:
            return
        session.execute(update(StoredEvent).where(StoredEvent.id == found.id).values(retracted=True))
        owner = identity.lock_member(session, found.member_id)
        self._credit(session, owner, found.time, -self.catalogue.event_points.get(found.type, 0))
        awards.audit(
            session,
            action="retract",
            member_id=owner.id,
            actor=SYSTEM_ACTOR,
            reason=f"{key} retracted by {retraction.key}",
            at=self.clock(),
            event_keys=[key, retraction.key],
        )
        self._mark_stale(
            session, owner.id, self.catalogue.triggered_by(found.type), cause=retraction.key, retraction=True
        )
        if found.target is not None and self.catalogue.target_triggered_by(found.type):
            target_source, _, target_id = found.target.partition(":")
            author_id = session.scalar(
                select(StoredEvent.member_id).where(
                    StoredEvent.source == target_source, StoredEvent.event_id == target_id
                )
            )
            if author_id is not None:
                author = identity.lock_member(session, author_id)
                approvals = self.catalogue.target_triggered_by(found.type)
                self._mark_stale(session, author.id, approvals, cause=retraction.key, retraction=True)

    @staticmethod
    def _mark_stale(
        session: Session, member_id: int, achievements: Iterable[Achievement], *, cause: str, retraction: bool = False
    ) -> None:
        """Have the member's rule states for ``achievements`` replayed when the batch settles."""
        session.info.setdefault(STALE, {}).setdefault(member_id, set()).update(a.id for a in achievements)
        session.info.setdefault(STALE_CAUSE, {}).setdefault(member_id, cause)
        if retraction:
            session.info.setdefault(RETRACTION_TOUCHED, set()).add(member_id)

    def _settle(self, session: Session) -> dict[int, list[str]]:
        """Replay every stale rule state of the batch from history; what that newly awarded."""
        full: set[int] = session.info.pop(FULL_REPLAY, set())
        stale: dict[int, set[str]] = session.info.pop(STALE, {})
        retraction: set[int] = session.info.pop(RETRACTION_TOUCHED, set())
        causes: dict[int, str] = session.info.pop(STALE_CAUSE, {})
        earned: dict[int, list[str]] = {}
        for member_id in sorted(full):
            member = identity.lock_member(session, member_id)
            self._recompute(session, member, reason="became staff: moderators and bots hold no standing")
        for member_id, achievement_ids in sorted(stale.items()):
            member = identity.lock_member(session, member_id)
            if not achievement_ids or member.id in full or member.staff:
                continue
            keep = member_id in retraction and self.retraction_policy == "keep"
            replayed = self._replay_some(session, member, achievement_ids, keep=keep, cause=causes[member_id])
            earned.setdefault(member.id, []).extend(replayed)
        return earned

    def _replay_some(
        self, session: Session, member: Member, achievement_ids: set[str], *, keep: bool, cause: str
    ) -> list[str]:
        """Replace some of a member's rule states with a replay of their history, and make
        awards, award dates, tiers and period points agree with it."""
        session.flush()
        chosen = [self.catalogue.achievements[a] for a in sorted(achievement_ids) if a in self.catalogue.achievements]
        ctx = self._context(member)
        result = replay(member_history(session, member.id, chosen), chosen, ctx)
        saved = self._rule_states(session, member.id, [a.id for a in chosen])
        earned = []
        for achievement in chosen:
            state = result.states.get(achievement.id) or achievement.rule.initial_state(achievement.params)
            met_at = result.met_at.get(achievement.id)
            row = saved.get(achievement.id)
            if row is None:
                row = saved[achievement.id] = rule_states.put(session, SavedState(member.id, achievement.id, state))
            row.dirty = True
            seen = result.seen.get(achievement.id)
            row.state, row.met = state, met_at is not None
            row.seen_time, row.seen_key = (seen.time, seen.token) if seen else (None, None)
            held = awards.find_award(session, member.id, achievement.id)
            reason = f"replayed in event-time order after {cause}"
            if met_at is not None:
                tier = achievement.rule.progress(achievement.params, state, ctx).tier
                if held is None or (held.status == "revoked" and held.origin == awards.RULE):
                    if self._award_by_rule(session, member, achievement, state, tier=tier, earned_at=met_at,
                                           reason=reason):
                        earned.append(achievement.id)
                elif held.status == "active" and held.origin == awards.RULE:
                    self._redate(session, member, achievement, held, met_at, reason=reason)
                    if tier and held.tier != tier:
                        awards.change_tier(
                            session, member, achievement, tier=tier, actor=SYSTEM_ACTOR, reason=reason, at=self.clock()
                        )
            elif held is not None and held.status == "active" and held.origin == awards.RULE and not keep:
                self._revoke_by_rule(session, member, achievement, reason=f"no longer met after {cause}")
        return earned

    def _redate(
        self, session: Session, member: Member, achievement: Achievement, held: Award, when: datetime, *, reason: str
    ) -> None:
        """Move an award to the moment it was really earned, and its points to that period."""
        if held.awarded_at == when:
            return
        previous = held.awarded_at
        self._credit(session, member, previous, -achievement.points)
        self._credit(session, member, when, achievement.points)
        held.awarded_at = when
        awards.record(
            session,
            member,
            achievement,
            action="redate",
            actor=SYSTEM_ACTOR,
            reason=reason,
            at=self.clock(),
            event_keys=[],
            details={"from": previous.isoformat(), "to": when.isoformat()},
            payload={"name": achievement.name, "earned_at": when.isoformat()},
        )

    def _reconcile_concurrent(self, batch: list[Event], pending: Unresolved) -> None:
        """Close the one gap left between concurrent writers (PostgreSQL, READ COMMITTED).

        An approval and the contribution it names (or a retraction and its event), committed by
        two processes at once, may each miss the other. After our commit, at least one of the
        two sees both: look again at what this batch could not connect, and replay whatever
        was committed meanwhile.
        """
        keys = {e.key for e in batch}
        with self.store.writes.begin() as session, session.no_autoflush:
            for retraction in session.scalars(select(StoredEvent).where(StoredEvent.retracts.in_(keys))).all():
                assert retraction.retracts is not None
                self._retract(session, event_from_row(retraction), retraction.retracts)
            for key in pending.retracted:
                found = session.scalar(select(StoredEvent).where(StoredEvent.retracts == key).limit(1))
                if found is not None:
                    self._retract(session, event_from_row(found), key)
            approvals = stored_events(session, pending.approvals)
            contributions = stored_events(session, {a.target for a in approvals.values() if a.target})
            for approval_key, approval in approvals.items():
                contribution = contributions.get(approval.target or "")
                if contribution is not None:
                    approvals_of = self.catalogue.target_triggered_by(approval.type)
                    self._mark_stale(session, contribution.member_id, approvals_of, cause=approval_key)
            arrived: dict[str, set[str]] = {}
            for row in session.scalars(
                select(StoredEvent).where(StoredEvent.target.in_(set(pending.approvals_seen)))
            ).all():
                assert row.target is not None
                arrived.setdefault(row.target, set()).add(row.key)
            missed = {key for key, keys in arrived.items() if keys - pending.approvals_seen.get(key, set())}
            for contribution_key, contribution in stored_events(session, missed).items():
                targeted = [a for a in self.catalogue.triggered_by(contribution.type) if a.target_triggers]
                self._mark_stale(session, contribution.member_id, targeted, cause=contribution_key)
            self._settle(session)

    # -- identity -------------------------------------------------------------------------

    def issue_link_code(self, ref: AccountRef) -> str:
        """A one-time code for the member behind ``ref`` to present on another platform."""
        with self.store.writes.begin() as session:
            member = identity.resolve_member(session, ref)
            return identity.issue_link_code(session, member.id, now=self.clock(), ttl=self.link_code_ttl)

    def redeem_link_code(self, code: str, ref: AccountRef) -> int:
        """Present ``code`` as ``ref``: merge ``ref``'s member into the code's. The survivor's id."""
        with self.store.writes.begin() as session:
            presenter = identity.resolve_member(session, ref)
            owner_id = identity.redeem_link_code(session, code, now=self.clock())
            return self._merge(session, owner_id, presenter.id, reason=f"link code presented by {ref}")

    def _present_link_code(self, session: Session, member: Member, event: Event) -> str | None:
        code = str(event.data.get("code", ""))
        try:
            with session.begin_nested():
                owner_id = identity.redeem_link_code(session, code, now=event.time)
        except IdentityError as exc:
            return str(exc)
        self._merge(session, owner_id, member.id, reason=f"link code presented in {event.key}")
        return None

    def _merge(self, session: Session, survivor_id: int, loser_id: int, *, reason: str) -> int:
        session.flush()
        survivor = identity.lock_member(session, survivor_id)
        loser = identity.lock_member(session, loser_id)
        if survivor.id == loser.id:
            return survivor.id
        now = self.clock()
        self._merge_awards(session, survivor.id, loser.id)
        awards.forget_awards(session)
        identity.move_member_data(session, from_id=loser.id, to_id=survivor.id)
        identity.forget_resolved(session)
        rule_states.forget_member(session, loser.id)
        leaderboards.forget_member(session, loser.id)
        loser.merged_into_id, loser.points = survivor.id, 0
        for member_id, other in ((survivor.id, loser.id), (loser.id, survivor.id)):
            awards.audit(
                session,
                action="merge",
                member_id=member_id,
                actor=SYSTEM_ACTOR,
                reason=reason,
                at=now,
                details={"survivor": survivor.id, "merged": loser.id, "other": other},
            )
        awards.enqueue(session, member_id=loser.id, kind="member.merged", at=now, payload={"into": survivor.id})
        self._recompute(session, survivor, reason=f"merge of member {loser.id}")
        log.info("identity.merged", survivor=survivor.id, merged=loser.id)
        return survivor.id

    @staticmethod
    def _merge_awards(session: Session, survivor_id: int, loser_id: int) -> None:
        """One award per achievement for the survivor: the earliest active one wins; a moderator's
        'no' holds. Awards only the merged member held move to the survivor."""
        mine = {a.achievement_id: a for a in session.scalars(select(Award).where(Award.member_id == survivor_id))}
        for theirs in list(session.scalars(select(Award).where(Award.member_id == loser_id))):
            kept = mine.get(theirs.achievement_id)
            if kept is None:
                theirs.member_id = survivor_id
                continue
            moderator_revoked = kept.status == "revoked" and kept.origin == awards.MANUAL
            if theirs.status == "active" and not moderator_revoked:
                if kept.status != "active" or theirs.awarded_at < kept.awarded_at:
                    kept.awarded_at = theirs.awarded_at
                kept.status = "active"
                if theirs.origin == awards.MANUAL:
                    kept.origin = awards.MANUAL
            # theirs stays parked with the merged member: an unlink gives it back
        session.flush()

    def unlink(self, ref: AccountRef) -> tuple[int, int]:
        """Detach ``ref`` into a member of its own; both members' standings are recomputed."""
        with self.store.writes.begin() as session:
            found = identity.find_identity(session, ref)
            if found is None:
                raise IdentityError(f"no member has the identity {ref}")
            original = identity.lock_member(session, found.member_id)
            detached = identity.detach_identity(session, found)
            identity.forget_resolved(session)
            now = self.clock()
            for member_id in (original.id, detached.id):
                awards.audit(
                    session,
                    action="unlink",
                    member_id=member_id,
                    actor=SYSTEM_ACTOR,
                    reason=f"{ref} unlinked",
                    at=now,
                    details={"from": original.id, "to": detached.id},
                )
            self._recompute(session, original, reason=f"unlink of {ref}")
            self._recompute(session, detached, reason=f"unlink of {ref}")
            return original.id, detached.id

    # -- recomputation --------------------------------------------------------------------

    def plan(self, session: Session, member: Member) -> MemberPlan:
        """What the member's history earns under the current catalogue versus what they hold."""
        chosen = [] if member.staff else list(self.catalogue.achievements.values())
        ctx = self._context(member)
        result = replay(member_history(session, member.id, chosen), chosen, ctx)
        earned: dict[str, tuple[datetime, str | None]] = {}
        for achievement_id, met_at in result.met_at.items():
            achievement = self.catalogue.achievements[achievement_id]
            tier = achievement.rule.progress(achievement.params, result.states[achievement_id], ctx).tier
            earned[achievement_id] = (met_at, tier)
        held = {a.achievement_id: a for a in session.scalars(select(Award).where(Award.member_id == member.id))}
        plan = MemberPlan(
            member_id=member.id, display_name=member.display_name, states=result.states, earned=earned, seen=result.seen
        )
        for achievement_id, (met_at, tier) in earned.items():
            row = held.get(achievement_id)
            if row is None or (row.status == "revoked" and row.origin == awards.RULE):
                plan.award.append(achievement_id)
            elif row.status == "active" and row.origin == awards.RULE:
                if tier and row.tier != tier:
                    plan.tiers.append((achievement_id, row.tier, tier))
                if row.awarded_at != met_at:
                    plan.redate.append((achievement_id, row.awarded_at, met_at))
        for achievement_id, row in held.items():
            rule_held = row.status == "active" and row.origin == awards.RULE
            if rule_held and achievement_id in self.catalogue.achievements and achievement_id not in earned:
                plan.revoke.append(achievement_id)
        return plan

    def apply_plan(self, session: Session, member: Member, plan: MemberPlan, *, reason: str) -> None:
        """Write a plan: fresh rule states, the awards, revocations and tier moves it lists, points."""
        session.flush()
        fresh = {}
        for achievement_id, state in plan.states.items():
            seen = plan.seen.get(achievement_id)
            fresh[achievement_id] = SavedState(
                member.id,
                achievement_id,
                state,
                met=achievement_id in plan.earned,
                seen_time=seen.time if seen else None,
                seen_key=seen.token if seen else None,
            )
        rule_states.replace_member(session, member.id, fresh, self.catalogue.achievements)
        for achievement_id in plan.award:
            earned_at, tier = plan.earned[achievement_id]
            achievement = self.catalogue.achievements[achievement_id]
            self._award_by_rule(
                session, member, achievement, plan.states[achievement_id], tier=tier, earned_at=earned_at, reason=reason
            )
        for achievement_id in plan.revoke:
            awards.revoke(
                session,
                member,
                self.catalogue.achievements[achievement_id],
                origin=awards.RULE,
                actor=SYSTEM_ACTOR,
                reason=reason,
                at=self.clock(),
            )
        for achievement_id, _, tier in plan.tiers:
            awards.change_tier(
                session,
                member,
                self.catalogue.achievements[achievement_id],
                tier=tier,
                actor=SYSTEM_ACTOR,
                reason=reason,
                at=self.clock(),
            )
        for achievement_id, _, when in plan.redate:
            held = awards.find_award(session, member.id, achievement_id)
            if held is not None:
                self._redate(session, member, self.catalogue.achievements[achievement_id], held, when, reason=reason)
        self._rebuild_points(session, member)
        awards.enqueue(session, member_id=member.id, kind="member.updated", at=self.clock(), payload={"reason": reason})
        session.flush()  # later queries of the batch (a replay, a revocation) see these awards

    def _rebuild_points(self, session: Session, member: Member) -> None:
        """All-time and per-period points from the stored events and the active awards."""
        session.flush()  # the awards just made are pending (ingest runs without autoflush)
        leaderboards.forget_member(session, member.id)
        member.points = 0
        for moment, event_type in session.execute(
            select(StoredEvent.time, StoredEvent.type).where(
                StoredEvent.member_id == member.id, StoredEvent.retracted.is_(False)
            )
        ):
            self._credit(session, member, moment, self.catalogue.event_points.get(event_type, 0))
        for awarded_at, achievement_id in session.execute(
            select(Award.awarded_at, Award.achievement_id).where(Award.member_id == member.id, Award.status == "active")
        ):
            if achievement_id in self.catalogue.achievements:
                self._credit(session, member, awarded_at, self.catalogue.achievements[achievement_id].points)

    def _recompute(self, session: Session, member: Member, *, reason: str) -> None:
        """Replace the member's rule states and rule awards with what their history earns."""
        session.flush()
        self.apply_plan(session, member, self.plan(session, member), reason=reason)

    def recompute(self, member_id: int, *, reason: str) -> None:
        with self.store.writes.begin() as session:
            self._recompute(session, identity.lock_member(session, member_id), reason=reason)

    def set_profile(self, member_id: int, *, timezone: str | None = None, private: bool | None = None) -> None:
        """Change a member's time zone (their streaks are recounted in it) or privacy."""
        with self.store.writes.begin() as session:
            member = identity.lock_member(session, member_id)
            if private is not None and private != member.private:
                member.private = private  # presenters show (or hide) the member from public boards
                awards.enqueue(
                    session, member_id=member.id, kind="member.updated", at=self.clock(), payload={"reason": "privacy"}
                )
            if timezone is not None and timezone != member.timezone:
                ZoneInfo(timezone)  # raises on an unknown zone name
                member.timezone = timezone
                self._recompute(session, member, reason=f"time zone set to {timezone}")

    def claim_voucher(self, code: str) -> Voucher:
        with self.store.writes.begin() as session:
            voucher = vouchers.claim(session, code, at=self.clock())
            awards.audit(
                session,
                action="voucher.claimed",
                member_id=voucher.member_id,
                actor=SYSTEM_ACTOR,
                reason=f"voucher {vouchers.display_code(voucher.code)} claimed",
                at=self.clock(),
                achievement_id=voucher.achievement_id,
            )
            return voucher

    # -- moderator actions ----------------------------------------------------------------

    def grant(self, member_id: int, achievement_id: str, *, actor: str, reason: str) -> bool:
        """A moderator grants an achievement; ``False`` if the member already holds it."""
        achievement = self._moderated(achievement_id, reason)
        with self.store.writes.begin() as session:
            member, now = identity.lock_member(session, member_id), self.clock()
            granted = awards.award(
                session, member, achievement, origin=awards.MANUAL, actor=actor, reason=reason, at=now
            )
            if granted:
                self._credit(session, member, now, achievement.points)
            return granted

    def revoke(self, member_id: int, achievement_id: str, *, actor: str, reason: str) -> bool:
        """A moderator revokes an achievement; ``False`` if the member does not hold it."""
        achievement = self._moderated(achievement_id, reason)
        with self.store.writes.begin() as session:
            member = identity.lock_member(session, member_id)
            revoked = awards.revoke(
                session, member, achievement, origin=awards.MANUAL, actor=actor, reason=reason, at=self.clock()
            )
            if revoked is not None:
                self._credit(session, member, revoked.awarded_at, -achievement.points)
            return revoked is not None

    def _moderated(self, achievement_id: str, reason: str) -> Achievement:
        """The achievement a moderator names; a moderator action always needs a reason."""
        if not reason.strip():
            raise ValueError("a moderator action needs a reason")
        return self.catalogue.get(achievement_id)
