"""Apply rules in memory: one event to a member's saved rule states, then award, revoke or move a tier.

A state that has already seen a later event is not touched: it is marked stale, and the batch
replays it from history when it settles (:mod:`smallwins.core.pipeline.settle`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from smallwins.core import awards, rule_states
from smallwins.core.awards import HeldAward
from smallwins.core.events import Event
from smallwins.core.pipeline.base import EngineCore
from smallwins.core.pipeline.outcomes import (
    RULE_FAILURES,
    STALE,
    SYSTEM_ACTOR,
)
from smallwins.core.replay import Position
from smallwins.core.rule_states import SavedState
from smallwins.core.rules import Achievement, RuleContext, rule_failed
from smallwins.core.store import Member


class Evaluation(EngineCore):
    """Apply rules in memory: one event to a member's saved rule states, then award, revoke or move a tier."""

    def _apply(
        self,
        session: Session,
        member: Member,
        event: Event,
        achievements: list[Achievement],
        ctx: RuleContext,
        position: Position,
        *,
        may_be_seen: bool = False,
    ) -> list[str]:
        """Apply one event to the member's saved state of each achievement; award and upgrade.

        A state that has already seen a later event is not touched: it is marked stale and
        replayed from history when the batch settles. So is one that has seen this very event,
        when it ``may_be_seen`` already (a handoff applied after a replay that read it).
        """
        achievements = [a for a in achievements if a.accepts(event)]
        if not achievements:
            return []
        # Hot: once per event. Positions are compared as plain tuples, and only a member that
        # has stale states gets an entry in the batch's stale marks (settle walks them all).
        stale = session.info.get(STALE, {}).get(member.id, ())
        saved = self._rule_states(session, member.id, [a.id for a in achievements])
        here = (position.time, position.token)
        earned = []
        for achievement in achievements:
            if achievement.id in stale:
                continue
            row = saved.get(achievement.id)
            if row is not None and row.seen_time is not None:
                seen = (row.seen_time, row.seen_key or "")
                if seen > here or (may_be_seen and seen == here):
                    self._mark_stale(session, member.id, [achievement], cause=event.key)
                    stale = session.info[STALE][member.id]
                    continue
            state = row.state if row is not None else achievement.rule.initial_state(achievement.params)
            # Once met, a final rule's progress cannot change: not asked again.
            final = row is not None and row.met and getattr(achievement.rule, "final_once_met", False)
            try:
                new_state = achievement.rule.apply(achievement.params, state, event, ctx)
                if new_state is None:  # by the rule contract, changes nothing in any order: no write
                    continue
                after = None if final else achievement.standing(new_state, ctx)
            except Exception as exc:  # a faulty rule skips the event; the rest of the batch goes on
                session.info.setdefault(RULE_FAILURES, {}).setdefault(event.key, rule_failed(achievement, event, exc))
                continue
            if row is None:
                row = saved[achievement.id] = rule_states.put(session, SavedState(member.id, achievement.id, state))
            row.dirty = True
            row.seen_time, row.seen_key = here
            row.state = new_state
            if after is None:
                continue  # nothing this event can change in standing
            if after.met and not row.met:
                row.met = True
                if self._award_by_rule(
                    session, member, achievement, new_state, tier=after.tier, earned_at=position.time,
                    reason=f"rule met by {event.key}",
                ):
                    earned.append(achievement.id)
            elif row.met and not after.met:
                # Only a rule whose state can shrink gets here (a welcome-back whose gap a later
                # event filled): the standing follows the history.
                row.met = False
                self._revoke_by_rule(session, member, achievement, reason=f"no longer met after {event.key}")
            elif (
                row.met
                and after.tier
                and after.tier_rank > achievement.standing(state, ctx).tier_rank
            ):
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

    def _redate(
        self, session: Session, member: Member, achievement: Achievement, held: HeldAward, when: datetime, *,
        reason: str
    ) -> None:
        """Move an award to the moment it was really earned, and its points to that period."""
        if held.awarded_at == when:
            return
        previous = held.awarded_at
        self._credit(session, member, previous, -achievement.points)
        self._credit(session, member, when, achievement.points)
        awards.change(session, held, awarded_at=when, updated_at=self.clock())
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
