"""Partitioned ingest: an approval whose author another worker owns is handed to that worker.

Several workers on one PostgreSQL each ingest the accounts of one partition
(:mod:`smallwins.core.partitions`). An approval or reaction is ingested by its actor's worker,
but it counts for the author of the contribution it names, often in another partition. Locking
that author would make each worker wait for the other's whole batch (measured: two workers at
0.6x the throughput of one). Instead, in the transaction that stores the approval, the worker
writes a :class:`~smallwins.core.store.Handoff` (``EngineCore._hand_off``); the author's worker claims
it with its next batch and applies the approval there, in event-time order like any other. The
command drains what is left once its workers are done (:meth:`Handoffs.drain_handoffs`).

A handoff is applied at most once: it is deleted in the transaction that applies it. The author's
state may already hold the approval (a replay from history after it was stored reads it too):
then the state has seen the approval's position, and the rules replay instead of counting it
twice. An engine without a partition applies approvals in place, and claims any handoff left
over, whoever wrote it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session

from smallwins.core import awards, identity, rule_states
from smallwins.core.pipeline.outcomes import stored_events
from smallwins.core.pipeline.route import Routing
from smallwins.core.replay import Position, event_from_row
from smallwins.core.store import Handoff

#: Handoffs claimed per transaction.
CLAIM_LIMIT = 2_000


class Handoffs(Routing):
    """Partitioned ingest: claim the approvals other workers handed to this one, and apply them."""

    def _claim_handoffs(self, session: Session, *, everything: bool = False) -> list[Row[Any]]:
        """Take this worker's handoffs (all of them unpartitioned, or with ``everything``),
        deleted in this transaction: ``(member_id, cause)`` rows."""
        query = select(Handoff.id, Handoff.member_id, Handoff.cause)
        if self.partition is not None and not everything:
            query = query.where(
                Handoff.partition_count == self.partition.count, Handoff.partition_index == self.partition.index
            )
        query = query.order_by(Handoff.id).limit(CLAIM_LIMIT)
        if self.store.dialect == "postgresql":  # another worker's claim is left to it, not waited for
            query = query.with_for_update(skip_locked=True)
        rows: list[Row[Any]] = [cast("Row[Any]", row) for row in session.execute(query)]
        if rows:
            session.execute(delete(Handoff).where(Handoff.id.in_([row.id for row in rows])))
        return rows

    def _apply_handoffs(self, session: Session, claimed: list[Row[Any]]) -> dict[int, list[str]]:
        """Apply the claimed approvals to their authors (locked by the caller), in event-time
        order; what that awarded, by member. A retracted approval or contribution counts for
        nothing (its retraction replayed the author already)."""
        stored = [row for row in stored_events(session, {r.cause for r in claimed}).values() if not row.retracted]
        actors = {row.key: row.member_id for row in stored}
        approvals = [event_from_row(row) for row in stored]
        contributions = self._find_targets(session, approvals)
        waiting = []
        for approval in approvals:
            found = contributions.get(approval.target or "")
            if found is not None and not found.retracted:
                waiting.append((Position.approval(approval, found.time), found.member_id, approval))
        authors = {author_id for _, author_id, _ in waiting}
        rule_states.load(session, authors, self.catalogue.achievements)  # no-op for those already read
        awards.preload_awards(session, authors)
        earned: dict[int, list[str]] = {}
        for position, author_id, approval in sorted(waiting, key=lambda item: item[0]):
            author = identity.lock_member(session, author_id)
            if author.staff:
                continue
            ctx = replace(self._context(author), actor_member_id=actors[approval.key])
            achievements = self.catalogue.target_triggered_by(approval.type)
            earned.setdefault(author.id, []).extend(
                self._apply(session, author, approval, achievements, ctx, position, may_be_seen=True)
            )
        return earned

    def drain_handoffs(self) -> int:
        """Apply every handoff still waiting, whichever partition it was left for: run when a
        parallel ingest's workers are done (or one died). How many achievements that awarded."""
        awarded = 0
        while True:
            with self.store.writes.begin() as session, session.no_autoflush:
                claimed = self._claim_handoffs(session, everything=True)
                if not claimed:
                    return awarded
                identity.lock_members(session, {row.member_id for row in claimed})
                for earned in self._apply_handoffs(session, claimed).values():
                    awarded += len(earned)
                for earned in self._settle(session).values():
                    awarded += len(earned)
