"""Stage 1, resolve identities: new members for first-seen accounts in one multi-row INSERT, then
every member the batch touches locked in id order, with their rule states and awards loaded in
a few queries.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, rule_states
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef
from smallwins.core.pipeline.linking import Linking
from smallwins.core.store import (
    Identity,
    StoredEvent,
    pair_in,
)


class Resolution(Linking):
    """Stage 1, resolve identities: new members for first-seen accounts in one multi-row INSERT, then"""

    def _create_members(self, batch: list[Event]) -> None:
        """Members for first-seen accounts, committed before the batch locks anything."""
        accounts: dict[AccountRef, str | None] = {}
        for event in batch:
            accounts.setdefault(AccountRef(event.source, event.subject), event.data.get("display_name"))
        with self.store.writes.begin() as session:
            for member_id in identity.create_missing_members(session, accounts):
                # presenters render every member, also one with nothing earned yet
                awards.enqueue(session, member_id=member_id, kind="member.joined", at=self.clock(), payload={})

    def _lock_batch_members(self, session: Session, batch: list[Event], also: set[int]) -> None:
        """Lock, in id order, every member the batch will touch (actors, the authors of what it
        approves or retracts, and ``also``), and load their accounts and rule states: a few
        queries per batch instead of a few per event. The author of an approved contribution in
        another worker's partition is not locked: that worker replays it (see the handoff stage)."""
        refs = {(e.source, e.subject) for e in batch}
        accounts = session.execute(
            select(Identity.platform, Identity.account, Identity.member_id).where(
                pair_in(session, Identity.platform, Identity.account, refs)
            )
        ).all()
        member_ids = {member_id for _, _, member_id in accounts} | also
        retracted = {tuple(e.retracts.split(":", 1)) for e in batch if e.retracts}
        named = retracted | {tuple(e.target.split(":", 1)) for e in batch if e.target}
        if named:
            for source, event_id, subject, member_id in session.execute(
                select(StoredEvent.source, StoredEvent.event_id, StoredEvent.subject, StoredEvent.member_id).where(
                    pair_in(session, StoredEvent.source, StoredEvent.event_id, named)
                )
            ):
                if (source, event_id) in retracted or not self._foreign(source, subject):
                    member_ids.add(member_id)
        identity.lock_members(session, member_ids)
        resolved = session.info.setdefault(identity.RESOLVED, {})
        for platform, account, member_id in accounts:
            resolved[AccountRef(platform, account)] = identity.lock_member(session, member_id)
        locked = {member.id for member in session.info.get(identity.LOCKED, {}).values()}
        rule_states.load(session, locked, self.catalogue.achievements)
        awards.preload_awards(session, locked, self.catalogue.achievements)
