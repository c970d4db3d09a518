"""Linking accounts: link codes, merging two members into one, and unlinking an account again.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, leaderboards, rule_states
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef, IdentityError
from smallwins.core.pipeline.outcomes import (
    SYSTEM_ACTOR,
    stored_events,
)
from smallwins.core.pipeline.settle import Settlement
from smallwins.core.store import (
    Award,
    Member,
    StoredEvent,
)

log = structlog.get_logger(__name__)


class Linking(Settlement):
    """Linking accounts: link codes, merging two members into one, and unlinking an account again."""

    def issue_link_code(self, ref: AccountRef) -> str:
        """A one-time code for the member behind ``ref`` to present on another platform."""
        with self.store.writes.begin() as session:
            member = identity.resolve_member(session, ref)
            return identity.issue_link_code(session, member.id, now=self.clock(), ttl=self.link_code_ttl)

    def redeem_link_code(self, code: str, ref: AccountRef) -> int:
        """Present ``code`` as ``ref``: merge ``ref``'s member into the code's. The survivor's id."""
        with self.store.writes.begin() as session:
            presenter = identity.resolve_member(session, ref)
            owner_id = identity.redeem_link_code(session, code, now=self.clock(), presenter_id=presenter.id)
            survivor_id = self._merge(session, owner_id, presenter.id, reason=f"link code presented by {ref}")
            self._settle(session)  # the authors whose approvers the merge joined (an ingest settles its batch)
            return survivor_id

    def _present_link_code(self, session: Session, member: Member, event: Event) -> str | None:
        code = str(event.data.get("code", ""))
        try:
            with session.begin_nested():
                owner_id = identity.redeem_link_code(session, code, now=event.time, presenter_id=member.id)
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
        # before the loser's events move: which of them approved someone's contribution
        self._replay_approvals_given(session, StoredEvent.member_id == loser.id, besides={survivor.id, loser.id},
                                     cause=reason)
        now = self.clock()
        awards.sync(session)  # the batch's award changes, before award rows move in SQL
        self._merge_awards(session, survivor.id, loser.id)
        awards.forget_awards(session)
        identity.move_member_data(session, from_id=loser.id, to_id=survivor.id)
        identity.forget_resolved(session)
        rule_states.forget_member(session, loser.id)
        leaderboards.forget_member(session, loser.id)
        loser.merged_into_id, loser.points = survivor.id, 0
        identity.keep_latest_name(survivor, loser)
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

    def _replay_approvals_given(self, session: Session, given_by: Any, *, besides: set[int], cause: str) -> None:
        """Have the authors of contributions approved by events matching ``given_by`` replayed
        when the transaction settles.

        A merge or an unlink changes who gave those approvals (two reactions from one person's
        two accounts are one person's, and an unlinked account's are someone else's again), and
        the authors' saved states remember the approvers. Replayed, their standing is what it
        would be had the link been there from the start (or never). ``besides``: the members
        the caller recomputes whole anyway.
        """
        named = session.scalars(select(StoredEvent.target).where(given_by, StoredEvent.target.is_not(None)))
        targets = {target for target in named if target is not None}
        for contribution in stored_events(session, targets).values():
            if contribution.member_id in besides:
                continue
            targeted = [a for a in self.catalogue.triggered_by(contribution.type) if a.target_triggers]
            if targeted:
                self._mark_stale(session, contribution.member_id, targeted, cause=cause)

    @staticmethod
    def _merge_awards(session: Session, survivor_id: int, loser_id: int) -> None:
        """One award per achievement for the survivor: the earliest active one wins; a moderator's
        'no' holds. Awards only the merged member held move to the survivor."""
        fresh = {"populate_existing": True}  # the rows as synced, not as an earlier load of them saw them
        mine = {
            a.achievement_id: a
            for a in session.scalars(select(Award).where(Award.member_id == survivor_id), execution_options=fresh)
        }
        for theirs in list(session.scalars(select(Award).where(Award.member_id == loser_id), execution_options=fresh)):
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
            given_by = (StoredEvent.source == ref.platform) & (StoredEvent.subject == ref.account)
            awards.sync(session)
            detached = identity.detach_identity(session, found)  # award rows may move back, in SQL
            for member in (original, detached):  # each keeps only the names its own events gave
                identity.name_from_history(session, member)
            awards.forget_awards(session)
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
            besides = {original.id, detached.id}
            self._replay_approvals_given(session, given_by, besides=besides, cause=f"unlink of {ref}")
            self._settle(session)
            return original.id, detached.id
