"""Stage 1, resolve identities: new members for first-seen accounts in one multi-row INSERT, then
every member the batch touches locked in id order, with their rule states and awards loaded in
a few queries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, rule_states
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef
from smallwins.core.pipeline.linking import Linking
from smallwins.core.store import (
    Member,
    StoredEvent,
    pair_in,
)


class Resolution(Linking):
    """Stage 1, resolve identities: new members for first-seen accounts in one multi-row INSERT, then"""

    def _create_members(self, batch: list[Event]) -> None:
        """PostgreSQL: members for first-seen accounts, committed before the batch locks anything
        (creating identities never waits inside a batch transaction that holds member locks)."""
        with self.store.writes.begin() as session:
            self._members_of_accounts(session, batch)

    def _members_of_accounts(self, session: Session, batch: list[Event]) -> dict[tuple[str, str], int]:
        """The member id of every account the batch's events come from, members created (and
        announced to presenters) for first-seen accounts: one lookup, two inserts."""
        accounts: dict[AccountRef, str | None] = {}
        for event in batch:
            accounts.setdefault(AccountRef(event.source, event.subject), event.data.get("display_name"))
        found = identity.members_of_accounts(session, [(ref.platform, ref.account) for ref in accounts])
        for ref, member_id in identity.create_missing_members(session, accounts, known=found).items():
            # presenters render every member, also one with nothing earned yet
            awards.enqueue(session, member_id=member_id, kind="member.joined", at=self.clock(), payload={})
            found[(ref.platform, ref.account)] = member_id
        return found

    def _lock_batch_members(self, session: Session, batch: list[Event], also: set[int]) -> None:
        """Lock, in id order, every member the batch will touch (actors, the authors of what it
        approves or retracts, and ``also``), and load their accounts and rule states: a few
        queries per batch instead of a few per event. The author of an approved contribution in
        another worker's partition is not locked: that worker replays it (see the handoff stage).

        On SQLite, which has one writer at a time, first-seen accounts get their members here, in
        the batch's transaction (on PostgreSQL that was done before it: :meth:`_create_members`).
        """
        if self.store.dialect == "sqlite":
            accounts = self._members_of_accounts(session, batch)
        else:
            accounts = identity.members_of_accounts(session, {(e.source, e.subject) for e in batch})
        member_ids = set(accounts.values()) | also
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
        for (platform, account), member_id in accounts.items():
            resolved[AccountRef(platform, account)] = identity.lock_member(session, member_id)
        self._name_members(session, batch, resolved)
        locked = {member.id for member in session.info.get(identity.LOCKED, {}).values()}
        rule_states.load(session, locked, self.catalogue.achievements)
        awards.preload_awards(session, locked)

    @staticmethod
    def _name_members(session: Session, batch: list[Event], resolved: dict[AccountRef, Member]) -> None:
        """Members take the display name of their latest event (in event time) that carries one."""
        latest: dict[Member, tuple[datetime, str]] = {}
        for event in batch:
            name = event.data.get("display_name")
            if isinstance(name, str) and name.strip():
                member = resolved[AccountRef(event.source, event.subject)]
                named = (event.time, name.strip())
                if member not in latest or named > latest[member]:
                    latest[member] = named
        identity.name_members(session, latest)
