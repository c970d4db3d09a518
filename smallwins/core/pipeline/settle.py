"""Late events and retractions: replay stale rule states when a batch settles, and close the gap
between concurrent writers on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, rule_states
from smallwins.core.events import Event
from smallwins.core.pipeline.outcomes import (
    FULL_REPLAY,
    RETRACTED_KEYS,
    RETRACTION_TOUCHED,
    STALE,
    STALE_CAUSE,
    SYSTEM_ACTOR,
    Unresolved,
    stored_events,
    unresolved,
)
from smallwins.core.pipeline.recompute import Recomputation
from smallwins.core.replay import HistoryItem, event_from_row, member_histories, replay
from smallwins.core.rule_states import SavedState
from smallwins.core.rules import Achievement
from smallwins.core.store import (
    Member,
    StoredEvent,
    one_of,
)

#: Members whose histories are read in one pair of queries when a batch settles.
HISTORY_CHUNK = 500


class Settlement(Recomputation):
    """Late events and retractions: replay stale rule states when a batch settles, and close the gap"""

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

    def _settle(self, session: Session) -> dict[int, list[str]]:
        """Replay every stale rule state of the batch from history; what that newly awarded."""
        full: set[int] = session.info.pop(FULL_REPLAY, set())
        stale: dict[int, set[str]] = session.info.pop(STALE, {})
        retraction: set[int] = session.info.pop(RETRACTION_TOUCHED, set())
        causes: dict[int, str] = session.info.pop(STALE_CAUSE, {})
        earned: dict[int, list[str]] = {}
        identity.lock_members(session, full | set(stale))  # one statement; the loops below find them locked
        for member_id in sorted(full):
            member = identity.lock_member(session, member_id)
            self._recompute(session, member, reason="became staff: moderators and bots hold no standing")
        replaying = []
        for member_id, achievement_ids in sorted(stale.items()):
            member = identity.lock_member(session, member_id)
            if achievement_ids and member.id not in full and not member.staff:
                replaying.append((member_id, member, achievement_ids))
        histories = self._histories(session, [(member, ids) for _, member, ids in replaying])
        for member_id, member, achievement_ids in replaying:
            keep = member_id in retraction and self.retraction_policy == "keep"
            history = histories[(member.id, frozenset(achievement_ids))]
            cause = causes[member_id]
            replayed = self._replay_some(session, member, achievement_ids, history, keep=keep, cause=cause)
            earned.setdefault(member.id, []).extend(replayed)
        return earned

    def _histories(
        self, session: Session, wanted: list[tuple[Member, set[str]]]
    ) -> dict[tuple[int, frozenset[str]], list[HistoryItem]]:
        """The histories the replays need, ``(member id, achievement ids) -> history``: read
        together for the members that replay the same achievements (two queries per chunk of
        members instead of two per member), their rule states and awards preloaded too."""
        if not wanted:
            return {}
        session.flush()
        groups: dict[frozenset[str], set[int]] = {}
        for member, achievement_ids in wanted:
            groups.setdefault(frozenset(achievement_ids), set()).add(member.id)
        everyone = {member.id for member, _ in wanted}
        rule_states.load(session, everyone, self.catalogue.achievements)
        awards.preload_awards(session, everyone)
        histories: dict[tuple[int, frozenset[str]], list[HistoryItem]] = {}
        for group, member_ids in groups.items():
            chosen = self._chosen(group)
            ordered = sorted(member_ids)
            for start in range(0, len(ordered), HISTORY_CHUNK):
                found = member_histories(session, ordered[start : start + HISTORY_CHUNK], chosen)
                histories.update({(member_id, group): items for member_id, items in found.items()})
        return histories

    def _chosen(self, achievement_ids: Iterable[str]) -> list[Achievement]:
        """The catalogue's achievements among ``achievement_ids``, in a stable order."""
        return [self.catalogue.achievements[a] for a in sorted(achievement_ids) if a in self.catalogue.achievements]

    def _replay_some(
        self,
        session: Session,
        member: Member,
        achievement_ids: set[str],
        history: list[HistoryItem],
        *,
        keep: bool,
        cause: str,
    ) -> list[str]:
        """Replace some of a member's rule states with a replay of their ``history``, and make
        awards, award dates, tiers and period points agree with it."""
        chosen = self._chosen(achievement_ids)
        ctx = self._context(member)
        result = replay(history, chosen, ctx)
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
                tier = achievement.standing(state, ctx).tier
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

    def _reconcile_concurrent(self, batch: list[Event], pending: Unresolved) -> None:
        """Close the one gap left between concurrent writers (PostgreSQL, READ COMMITTED).

        An approval and the contribution it names (or a retraction and its event), committed by
        two processes at once, may each miss the other. After our commit, at least one of the
        two sees both: look again at what this batch could not connect, and replay whatever
        was committed meanwhile.
        """
        keys = {e.key for e in batch}
        with self.store.writes.begin() as session, session.no_autoflush:
            retractions = select(StoredEvent).where(one_of(session, StoredEvent.retracts, keys))
            for retraction in session.scalars(retractions).all():
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
                if contribution is None:
                    continue
                if self._foreign(contribution.source, contribution.subject):
                    account = (contribution.source, contribution.subject)
                    self._hand_off(session, contribution.member_id, account, approval_key)
                else:
                    approvals_of = self.catalogue.target_triggered_by(approval.type)
                    self._mark_stale(session, contribution.member_id, approvals_of, cause=approval_key)
            arrived: dict[str, set[str]] = {}
            for row in session.scalars(
                select(StoredEvent).where(one_of(session, StoredEvent.target, set(pending.approvals_seen)))
            ).all():
                assert row.target is not None
                arrived.setdefault(row.target, set()).add(row.key)
            missed = {key for key, keys in arrived.items() if keys - pending.approvals_seen.get(key, set())}
            for contribution_key, contribution in stored_events(session, missed).items():
                targeted = [a for a in self.catalogue.triggered_by(contribution.type) if a.target_triggers]
                self._mark_stale(session, contribution.member_id, targeted, cause=contribution_key)
            self._settle(session)
