"""The ingest pipeline and the operations that change standings.

validate -> resolve identity -> dedup -> store -> evaluate incrementally -> award -> outbox.

Evaluation touches only the achievements an event type triggers and only that member's saved
rule state: no rescan of history per event. Full replays happen only when a member's history
itself changes (merge, unlink) or a moderator asks for one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, leaderboards, vouchers
from smallwins.core.events import CORE_EVENT_TYPES, Event
from smallwins.core.identity import AccountRef, IdentityError
from smallwins.core.rules import Achievement, Catalogue, RuleContext
from smallwins.core.store import Award, Member, RuleState, Store, StoredEvent, Voucher, insert_ignoring_conflict

log = structlog.get_logger(__name__)

SYSTEM_ACTOR = "smallwins"
LINK_EVENT = "link.code_presented"
#: ``session.info`` key of the rule states loaded in this transaction, by member.
RULE_STATES = "smallwins.rule_states"


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
    award: list[str] = field(default_factory=list)
    revoke: list[str] = field(default_factory=list)
    tiers: list[tuple[str, str | None, str]] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.award or self.revoke or self.tiers)


def event_from_row(row: StoredEvent) -> Event:
    """Rebuild a stored event without re-validating it (it was validated on the way in)."""
    return Event.model_construct(
        id=row.event_id,
        source=row.source,
        type=row.type,
        subject=row.subject,
        time=row.time,
        proof=row.proof,
        data=row.data or {},
    )


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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        if leaderboards.write_pending not in store.before_commit:
            store.before_commit.append(leaderboards.write_pending)
        self.catalogue = catalogue
        self.known_event_types = frozenset(known_event_types) | catalogue.known_event_types | CORE_EVENT_TYPES
        self.link_code_ttl = link_code_ttl
        self.default_timezone = ZoneInfo(default_timezone)
        self.clock = clock

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, event: Event) -> IngestOutcome:
        """Ingest one event in its own transaction."""
        with self.store.writes.begin() as session:
            return self._ingest(session, event)

    def ingest_many(self, events: Iterable[Event], *, batch_size: int = 500) -> Iterator[IngestOutcome]:
        """Ingest events in transactions of ``batch_size`` (see :meth:`_ingest_batch`).

        Yields one outcome per event, so a caller can show progress.
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
        """One transaction for the batch; if it fails, one transaction per event, so that every
        event that can land does (re-ingesting the ones already stored is a no-op)."""
        try:
            with self.store.writes.begin() as session:
                return [self._ingest(session, event) for event in batch]
        except SQLAlchemyError as exc:
            if len(batch) == 1:
                raise
            log.warning("ingest.batch_failed_retrying_singly", size=len(batch), error=str(exc))
            return [self.ingest(event) for event in batch]

    def _ingest(self, session: Session, event: Event) -> IngestOutcome:
        # Changes of a batch are written in one flush at commit (state lookups go through the
        # per-transaction caches); operations that query across members flush first.
        with session.no_autoflush:
            return self._ingest_unflushed(session, event)

    def _ingest_unflushed(self, session: Session, event: Event) -> IngestOutcome:
        ref = AccountRef(event.source, event.subject)
        member = identity.resolve_member(session, ref, display_name=event.data.get("display_name"))
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
                "ingested_at": self.clock(),
            },
            ["source", "event_id"],
        )
        if row_id is None:
            return IngestOutcome(key=event.key, stored=False, member_id=member.id)
        outcome = IngestOutcome(key=event.key, stored=True, member_id=member.id)
        self._credit(session, member, event.time, self.catalogue.event_points.get(event.type, 0))
        if event.type == LINK_EVENT:
            outcome.warning = self._present_link_code(session, member, event)
            return outcome
        if event.type not in self.known_event_types:
            outcome.warning = f"unknown event type '{event.type}': stored, triggers no rule"
            return outcome
        ctx = self._context(member)
        outcome.awarded = self._apply(session, member, event, self.catalogue.triggered_by(event.type), ctx)
        outcome.awarded += self._route_to_target(session, member, event)
        outcome.awarded += self._apply_waiting_approvals(session, member, event)
        return outcome

    def _credit(self, session: Session, member: Member, moment: datetime, points: int) -> None:
        """Add points to the all-time total and to every time-boxed board's period."""
        if points:
            member.points += points
            leaderboards.add_points(
                session,
                self.catalogue.leaderboards,
                self.default_timezone,
                member_id=member.id,
                moment=moment,
                points=points,
            )

    def _route_to_target(self, session: Session, actor: Member, event: Event) -> list[str]:
        """An approval or reaction concerns the author of the event it names."""
        achievements = self.catalogue.target_triggered_by(event.type)
        if not achievements or event.target is None:
            return []
        source, _, event_id = event.target.partition(":")
        author_id = session.scalar(
            select(StoredEvent.member_id).where(StoredEvent.source == source, StoredEvent.event_id == event_id)
        )
        if author_id is None:  # the contribution has not arrived yet; it will pick this up
            return []
        author = identity.lock_member(session, author_id)
        ctx = replace(self._context(author), actor_member_id=actor.id)
        return self._apply(session, author, event, achievements, ctx)

    def _apply_waiting_approvals(self, session: Session, author: Member, event: Event) -> list[str]:
        """Approvals that arrived before this contribution are applied now, in time order."""
        if not self.catalogue.has_target_rules or not any(
            a.target_triggers for a in self.catalogue.triggered_by(event.type)
        ):
            return []
        earlier = session.scalars(
            select(StoredEvent).where(StoredEvent.target == event.key).order_by(StoredEvent.time, StoredEvent.id)
        ).all()
        earned = []
        for row in earlier:
            ctx = replace(self._context(author), actor_member_id=row.member_id)
            approval = event_from_row(row)
            earned += self._apply(session, author, approval, self.catalogue.target_triggered_by(approval.type), ctx)
        return earned

    def _context(self, member: Member) -> RuleContext:
        return RuleContext(
            member_id=member.id,
            timezone=ZoneInfo(member.timezone) if member.timezone else self.default_timezone,
            now=self.clock(),
        )

    def _apply(
        self, session: Session, member: Member, event: Event, achievements: list[Achievement], ctx: RuleContext
    ) -> list[str]:
        """Apply one event to the member's saved state of each achievement; award and upgrade."""
        achievements = [a for a in achievements if a.accepts(event)]
        if not achievements:
            return []
        saved = self._rule_states(session, member.id, [a.id for a in achievements])
        earned = []
        for achievement in achievements:
            row = saved.get(achievement.id)
            state = row.state if row is not None else achievement.rule.initial_state(achievement.params)
            new_state = achievement.rule.apply(achievement.params, state, event, ctx)
            if new_state is None:
                continue
            if row is None:
                row = RuleState(member_id=member.id, achievement_id=achievement.id, met=False)
                session.add(row)
                saved[achievement.id] = row
            before = achievement.rule.progress(achievement.params, state, ctx)
            row.state = new_state
            after = achievement.rule.progress(achievement.params, new_state, ctx)
            reason = f"rule met by {event.key}"
            if after.met and not row.met:
                row.met = True
                if self._award_by_rule(
                    session,
                    member,
                    achievement,
                    new_state,
                    tier=after.tier,
                    earned_at=event.time,
                    reason=reason,
                    live=True,
                ):
                    earned.append(achievement.id)
            elif row.met and not after.met:
                # Only a rule whose state can shrink gets here (a late event filled the gap a
                # welcome-back was based on): the standing follows the history, in any order.
                row.met = False
                revoked = awards.revoke(
                    session,
                    member,
                    achievement,
                    origin=awards.RULE,
                    actor=SYSTEM_ACTOR,
                    reason=f"no longer met after {event.key}",
                    at=self.clock(),
                    event_keys=[event.key],
                )
                if revoked is not None:
                    self._credit(session, member, revoked.awarded_at, -achievement.points)
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
    def _rule_states(session: Session, member_id: int, achievement_ids: list[str]) -> dict[str, RuleState | None]:
        """The member's saved states for these achievements, loaded once per transaction.

        Rows created during the transaction are put into the same cache, so they are found
        before they are flushed; a batch then writes all its state changes in one flush.
        """
        cache: dict[int, dict[str, RuleState | None]] = session.info.setdefault(RULE_STATES, {})
        states = cache.setdefault(member_id, {})
        missing = [a for a in achievement_ids if a not in states]
        if missing:
            states.update(dict.fromkeys(missing))
            rows = session.scalars(
                select(RuleState).where(RuleState.member_id == member_id, RuleState.achievement_id.in_(missing))
            )
            states.update({row.achievement_id: row for row in rows})
        return states

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
        live: bool = False,
    ) -> bool:
        """Award from a rule; ``live`` (an event being ingested) opens a voucher window at the
        event, a recomputation opens it now."""
        awarded = awards.award(
            session,
            member,
            achievement,
            origin=awards.RULE,
            actor=SYSTEM_ACTOR,
            reason=reason,
            at=self.clock(),
            earned_at=earned_at,
            tier=tier,
            voucher_from=earned_at if live else None,
            event_keys=state.get("evidence") or [],
        )
        if awarded:
            self._credit(session, member, earned_at, achievement.points)
        return awarded

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
        session.execute(delete(RuleState).where(RuleState.member_id == loser.id))
        session.info.get(RULE_STATES, {}).pop(loser.id, None)
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
        """One award row per achievement: the earliest active one wins; a moderator's 'no' holds."""
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
            session.delete(theirs)
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

    def _history(self, session: Session, member: Member) -> list[tuple[StoredEvent, bool]]:
        """The member's events and the events that target them, in time order.

        Each row comes with whether it reaches this member as a target (someone's approval).
        """
        own = session.scalars(select(StoredEvent).where(StoredEvent.member_id == member.id)).all()
        if not self.catalogue.has_target_rules:
            return sorted(((row, False) for row in own), key=lambda pair: (pair[0].time, pair[0].id))
        mine = select(StoredEvent.source + ":" + StoredEvent.event_id).where(StoredEvent.member_id == member.id)
        targeting = session.scalars(select(StoredEvent).where(StoredEvent.target.in_(mine))).all()
        rows = [(row, False) for row in own] + [(row, True) for row in targeting]
        return sorted(rows, key=lambda pair: (pair[0].time, pair[0].id, pair[1]))

    def replay_states(self, session: Session, member: Member) -> tuple[dict[str, dict[str, Any]], dict[str, datetime]]:
        """Rule states from the member's stored history, in event-time order (no side effects),
        and when each achievement was first met during the replay."""
        base = self._context(member)
        states: dict[str, dict[str, Any]] = {}
        met_at: dict[str, datetime] = {}
        for row, as_target in self._history(session, member):
            event = event_from_row(row)
            if as_target:
                achievements = self.catalogue.target_triggered_by(event.type)
                ctx = replace(base, actor_member_id=row.member_id)
            else:
                achievements, ctx = self.catalogue.triggered_by(event.type), base
            for achievement in achievements:
                if not achievement.accepts(event):
                    continue
                state = states.get(achievement.id) or achievement.rule.initial_state(achievement.params)
                new_state = achievement.rule.apply(achievement.params, state, event, ctx)
                if new_state is None:
                    continue
                states[achievement.id] = new_state
                if achievement.id not in met_at and achievement.rule.progress(achievement.params, new_state, ctx).met:
                    met_at[achievement.id] = event.time
        return states, met_at

    def plan(self, session: Session, member: Member) -> MemberPlan:
        """What the member's history earns under the current catalogue versus what they hold."""
        states, met_at = self.replay_states(session, member)
        ctx = self._context(member)
        earned: dict[str, tuple[datetime, str | None]] = {}
        for achievement_id, state in states.items():
            achievement = self.catalogue.achievements[achievement_id]
            progress = achievement.rule.progress(achievement.params, state, ctx)
            if progress.met:
                earned[achievement_id] = (met_at.get(achievement_id, self.clock()), progress.tier)
        held = {a.achievement_id: a for a in session.scalars(select(Award).where(Award.member_id == member.id))}
        plan = MemberPlan(member_id=member.id, display_name=member.display_name, states=states, earned=earned)
        for achievement_id, (_, tier) in earned.items():
            row = held.get(achievement_id)
            if row is None or (row.status == "revoked" and row.origin == awards.RULE):
                plan.award.append(achievement_id)
            elif row.status == "active" and tier and row.tier != tier:
                plan.tiers.append((achievement_id, row.tier, tier))
        for achievement_id, row in held.items():
            rule_held = row.status == "active" and row.origin == awards.RULE
            if rule_held and achievement_id in self.catalogue.achievements and achievement_id not in earned:
                plan.revoke.append(achievement_id)
        return plan

    def apply_plan(self, session: Session, member: Member, plan: MemberPlan, *, reason: str) -> None:
        """Write a plan: fresh rule states, the awards, revocations and tier moves it lists, points."""
        session.flush()
        session.execute(delete(RuleState).where(RuleState.member_id == member.id))
        session.info.get(RULE_STATES, {}).pop(member.id, None)
        for achievement_id, state in plan.states.items():
            session.add(
                RuleState(
                    member_id=member.id, achievement_id=achievement_id, state=state, met=achievement_id in plan.earned
                )
            )
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
        self._rebuild_points(session, member)
        awards.enqueue(session, member_id=member.id, kind="member.updated", at=self.clock(), payload={"reason": reason})
        session.flush()  # later events of the same batch read these rule states from the database

    def _rebuild_points(self, session: Session, member: Member) -> None:
        """All-time and per-period points from the stored events and the active awards."""
        session.flush()  # the awards just made are pending (ingest runs without autoflush)
        leaderboards.forget_member(session, member.id)
        member.points = 0
        for moment, event_type in session.execute(
            select(StoredEvent.time, StoredEvent.type).where(StoredEvent.member_id == member.id)
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
            if private is not None:
                member.private = private
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
