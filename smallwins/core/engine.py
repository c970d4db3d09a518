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

from smallwins.core import awards, identity, vouchers
from smallwins.core.pipeline.ingest import BULK_BATCH_SIZE, Ingestion
from smallwins.core.pipeline.outcomes import (
    LINK_EVENT,
    SYSTEM_ACTOR,
    IngestOutcome,
    IngestReport,
    MemberPlan,
    RetractionPolicy,
    Unresolved,
    is_deadlock,
    stored_events,
    unresolved,
)
from smallwins.core.rules import Achievement
from smallwins.core.store import (
    Voucher,
)

__all__ = [
    "BULK_BATCH_SIZE",
    "LINK_EVENT",
    "SYSTEM_ACTOR",
    "Engine",
    "IngestOutcome",
    "IngestReport",
    "MemberPlan",
    "RetractionPolicy",
    "Unresolved",
    "is_deadlock",
    "stored_events",
    "unresolved",
]


class Engine(Ingestion):
    """Ingests events and applies moderator and identity operations against one store.

    A facade: each stage of the pipeline lives in its own module of :mod:`smallwins.core.pipeline`.
    """

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

    def grant(self, member_id: int, achievement_id: str, *, actor: str, reason: str) -> bool:
        """A moderator grants an achievement; ``False`` if the member already holds it."""
        achievement = self._moderated(achievement_id, reason)
        with self.store.writes.begin() as session:
            member, now = identity.lock_member(session, member_id), self.clock()
            if member.staff:  # it would be stored and shown nowhere: staff hold no standing
                raise ValueError(
                    f"member {member.id} is staff (a moderator or bot: they act, but hold no achievements)"
                )
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
