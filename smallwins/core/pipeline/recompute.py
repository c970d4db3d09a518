"""Recompute a member from history: what the catalogue says they earned versus what they hold.

Used after a merge, an unlink, a time-zone change, staff status, and by backfill (dry run first).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, leaderboards, rule_states
from smallwins.core.pipeline.evaluate import Evaluation
from smallwins.core.pipeline.outcomes import (
    SYSTEM_ACTOR,
    MemberPlan,
)
from smallwins.core.replay import HistoryItem, member_history, replay
from smallwins.core.rule_states import SavedState
from smallwins.core.store import (
    Award,
    Member,
    StoredEvent,
)


class Recomputation(Evaluation):
    """Recompute a member from history: what the catalogue says they earned versus what they hold."""

    def plan(self, session: Session, member: Member, history: list[HistoryItem] | None = None) -> MemberPlan:
        """What the member's history earns under the current catalogue versus what they hold.

        ``history``: the member's, already read with :func:`member_histories` (staff: none).
        """
        chosen = [] if member.staff else list(self.catalogue.achievements.values())
        ctx = self._context(member)
        if history is None or member.staff:
            history = member_history(session, member.id, chosen)
        result = replay(history, chosen, ctx)
        earned: dict[str, tuple[datetime, str | None]] = {}
        for achievement_id, met_at in result.met_at.items():
            achievement = self.catalogue.achievements[achievement_id]
            tier = achievement.standing(result.states[achievement_id], ctx).tier
            earned[achievement_id] = (met_at, tier)
        awards.sync(session)  # the awards this transaction made or changed, before reading the table
        held = {
            row.achievement_id: row
            for row in session.execute(
                select(Award.achievement_id, Award.status, Award.origin, Award.tier, Award.awarded_at).where(
                    Award.member_id == member.id
                )
            )
        }
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
            if row.status == "active" and achievement_id not in self.catalogue.achievements:
                plan.retired.append(achievement_id)
            elif row.status == "active" and row.origin == awards.RULE and achievement_id not in earned:
                plan.revoke.append(achievement_id)
        return plan

    def apply_plan(
        self, session: Session, member: Member, plan: MemberPlan, *, reason: str, rebuild_points: bool = True
    ) -> None:
        """Write a plan: fresh rule states, the awards, revocations and tier moves it lists, points.

        ``rebuild_points=False``: the caller rebuilds points afterwards for a batch of members
        (:meth:`rebuild_points_of`).
        """
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
        if rebuild_points:
            self._rebuild_points(session, member)
        awards.enqueue(session, member_id=member.id, kind="member.updated", at=self.clock(), payload={"reason": reason})
        session.flush()
        awards.sync(session)  # later queries of the batch (a replay, a revocation) see these awards

    def _rebuild_points(self, session: Session, member: Member) -> None:
        """All-time and per-period points from the stored events and the active awards."""
        self.rebuild_points_of(session, [member])

    def rebuild_points_of(self, session: Session, members: list[Member]) -> None:
        """:meth:`_rebuild_points` for several members, in three statements (a backfill batch)."""
        session.flush()
        awards.sync(session)  # the awards just made are pending (ingest runs without autoflush)
        by_id = {member.id: member for member in members}
        leaderboards.forget_members(session, list(by_id))
        for member in members:
            member.points = 0
        for member_id, moment, event_type in session.execute(
            select(StoredEvent.member_id, StoredEvent.time, StoredEvent.type).where(
                StoredEvent.member_id.in_(by_id), StoredEvent.retracted.is_(False)
            )
        ):
            self._credit(session, by_id[member_id], moment, self.catalogue.event_points.get(event_type, 0))
        for member_id, awarded_at, achievement_id in session.execute(
            select(Award.member_id, Award.awarded_at, Award.achievement_id).where(
                Award.member_id.in_(by_id), Award.status == "active"
            )
        ):
            if achievement_id in self.catalogue.achievements:
                self._credit(session, by_id[member_id], awarded_at, self.catalogue.achievements[achievement_id].points)

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
