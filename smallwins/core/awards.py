"""Awarding and revoking achievements: every change audited and queued for presenters.

Points are the engine's business (all-time and per period); this module records standing.

Who decided matters: a moderator's revocation holds against the rules (a rule never re-awards
it), and a moderator's grant holds against a recomputation (it is never revoked by one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, event, insert, select
from sqlalchemy.orm import Session

from smallwins.core import vouchers
from smallwins.core.bulk import DriverWrite
from smallwins.core.rules import Achievement
from smallwins.core.store import AuditEntry, Award, Member, OutboxItem, one_of

RULE = "rule"
MANUAL = "manual"


#: ``session.info`` keys of audit entries and outbox items waiting for the commit.
AUDIT_ROWS = "smallwins.audit_rows"
OUTBOX_ROWS = "smallwins.outbox_rows"


def audit(
    session: Session,
    *,
    action: str,
    member_id: int,
    actor: str,
    reason: str,
    at: datetime,
    achievement_id: str | None = None,
    event_keys: Sequence[str] = (),
    details: dict[str, Any] | None = None,
) -> None:
    """Record an audit entry; written (in order) with the transaction's other entries at commit."""
    session.info.setdefault(AUDIT_ROWS, []).append(
        {
            "at": at,
            "action": action,
            "member_id": member_id,
            "achievement_id": achievement_id,
            "actor": actor,
            "reason": reason,
            "event_keys": list(event_keys),
            "details": details or {},
        }
    )


def enqueue(session: Session, *, member_id: int, kind: str, at: datetime, payload: dict[str, Any]) -> None:
    """Queue a change for presenters; written (in order) at commit, like audit entries."""
    session.info.setdefault(OUTBOX_ROWS, []).append(
        {"member_id": member_id, "kind": kind, "created_at": at, "payload": payload}
    )


@event.listens_for(Session, "before_commit")
def write_pending(session: Session) -> None:
    """Insert the transaction's audit entries and outbox items, each with one multi-row INSERT.

    Listens on every session: whatever session recorded them writes them when it commits (a
    rolled-back transaction drops them with everything else).
    """
    for key, write in ((AUDIT_ROWS, _AUDIT_INSERT), (OUTBOX_ROWS, _OUTBOX_INSERT)):
        rows = session.info.pop(key, None)
        if rows:
            write.execute(session, rows)
            session.info[STANDING_CHANGED] = True


def _plain_insert(table: Table) -> DriverWrite:
    """An INSERT of the columns recorded below (ids and nothing else from the database)."""
    columns = [c.name for c in table.columns if not c.primary_key]
    return DriverWrite(table, columns, lambda _dialect: insert(table).inline())


_AUDIT_INSERT = _plain_insert(cast(Table, AuditEntry.__table__))
_OUTBOX_INSERT = _plain_insert(cast(Table, OutboxItem.__table__))


#: ``session.info`` key: this transaction changed someone's standing (it audited or queued).
STANDING_CHANGED = "smallwins.standing_changed"
_committed_changes = 0


@event.listens_for(Session, "after_commit")
def _count_committed_change(session: Session) -> None:
    global _committed_changes
    if session.info.pop(STANDING_CHANGED, False):
        _committed_changes += 1


def committed_changes() -> int:
    """How many transactions of this process have committed a change of standing: read models
    that cache (rarity) compare it to know that what they hold is out of date."""
    return _committed_changes


def record(
    session: Session,
    member: Member,
    achievement: Achievement,
    *,
    action: str,
    actor: str,
    reason: str,
    at: datetime,
    event_keys: Sequence[str],
    details: dict[str, Any],
    payload: dict[str, Any],
) -> None:
    """Every change of standing is audited and queued for presenters, together."""
    audit(
        session,
        action=action,
        member_id=member.id,
        achievement_id=achievement.id,
        actor=actor,
        reason=reason,
        at=at,
        event_keys=event_keys,
        details=details,
    )
    kind = {"grant": "award", "redate": "award.redated"}.get(action, action)
    enqueue(session, member_id=member.id, kind=kind, at=at, payload={"achievement_id": achievement.id, **payload})


#: ``session.info`` key of the award rows read or created in this transaction.
AWARDS = "smallwins.awards"
#: Members per award lookup when preloading.
PRELOAD_CHUNK = 5_000


def find_award(session: Session, member_id: int, achievement_id: str) -> Award | None:
    """The member's award row for an achievement, read once per transaction.

    Ingest runs without autoflush, so an award made earlier in the same batch is only in
    memory: this cache is what lets a later event of the batch upgrade or revoke it.
    """
    cache: dict[tuple[int, str], Award | None] = session.info.setdefault(AWARDS, {})
    key = (member_id, achievement_id)
    if key not in cache:
        cache[key] = session.scalar(
            select(Award).where(Award.member_id == member_id, Award.achievement_id == achievement_id)
        )
    return cache[key]


def preload_awards(session: Session, member_ids: Iterable[int], achievement_ids: Iterable[str]) -> None:
    """Read the award rows of many members at once into :func:`find_award`'s cache (one query
    per chunk instead of one per member and achievement); what is cached already stays."""
    cache: dict[tuple[int, str], Award | None] = session.info.setdefault(AWARDS, {})
    achievement_ids = list(achievement_ids)
    wanted = sorted({m for m in member_ids if any((m, a) not in cache for a in achievement_ids)})
    found: dict[tuple[int, str], Award] = {}
    for start in range(0, len(wanted), PRELOAD_CHUNK):
        chunk = wanted[start : start + PRELOAD_CHUNK]
        for award in session.scalars(select(Award).where(one_of(session, Award.member_id, chunk))):
            found[(award.member_id, award.achievement_id)] = award
    for member_id in wanted:
        for achievement_id in achievement_ids:
            key = (member_id, achievement_id)
            if key not in cache:
                cache[key] = found.get(key)


def forget_awards(session: Session) -> None:
    """Drop the award cache; needed when award rows move between members (merge)."""
    session.info.pop(AWARDS, None)


def award(
    session: Session,
    member: Member,
    achievement: Achievement,
    *,
    origin: str,
    actor: str,
    reason: str,
    at: datetime,
    earned_at: datetime | None = None,
    tier: str | None = None,
    voucher_from: datetime | None = None,
    issue_voucher: bool = True,
    event_keys: Sequence[str] = (),
) -> bool:
    """Make ``achievement`` active for ``member``; ``False`` if it already is or a moderator said no.

    ``at`` is when smallwins acted (audit, outbox); ``earned_at`` when the member earned it
    (the time of the event that met the rule), which differs when history is ingested late.
    A voucher's claim window opens at ``voucher_from`` (default ``at``); ``issue_voucher`` is
    false for an award too old to come with one (see ``Engine.voucher_horizon``).
    """
    earned_at = earned_at or at
    tier = tier or achievement.tier
    existing = find_award(session, member.id, achievement.id)
    if existing is not None:
        if existing.status == "active":
            return False
        if origin == RULE and existing.origin == MANUAL:
            return False
        existing.status, existing.origin, existing.awarded_at, existing.tier = "active", origin, earned_at, tier
    else:
        row = Award(
            member_id=member.id,
            achievement_id=achievement.id,
            tier=tier,
            status="active",
            origin=origin,
            home_member_id=member.id,
            awarded_at=earned_at,
            updated_at=at,
        )
        session.add(row)
        session.info.setdefault(AWARDS, {})[(member.id, achievement.id)] = row
    payload: dict[str, Any] = {"name": achievement.name, "tier": tier}
    if achievement.role:
        payload["role"] = achievement.role
    if achievement.voucher_hours and issue_voucher:
        voucher = vouchers.issue(
            session,
            member_id=member.id,
            achievement_id=achievement.id,
            hours=achievement.voucher_hours,
            at=voucher_from or at,
        )
        if voucher is not None:
            payload["voucher"] = {
                "code": vouchers.display_code(voucher.code),
                "expires_at": voucher.expires_at.isoformat(),
            }
    record(
        session,
        member,
        achievement,
        action="grant" if origin == MANUAL else "award",
        actor=actor,
        reason=reason,
        at=at,
        event_keys=event_keys,
        details={"points": achievement.points, "tier": tier},
        payload=payload,
    )
    return True


def change_tier(
    session: Session,
    member: Member,
    achievement: Achievement,
    *,
    tier: str,
    actor: str,
    reason: str,
    at: datetime,
    event_keys: Sequence[str] = (),
) -> bool:
    """Move a living trophy to another tier (audited, re-presented); ``False`` if already there."""
    existing = find_award(session, member.id, achievement.id)
    if existing is None or existing.status != "active" or existing.tier == tier:
        return False
    previous, existing.tier, existing.updated_at = existing.tier, tier, at
    record(
        session,
        member,
        achievement,
        action="tier",
        actor=actor,
        reason=reason,
        at=at,
        event_keys=event_keys,
        details={"from": previous, "to": tier},
        payload={"name": achievement.name, "from": previous, "tier": tier},
    )
    return True


def revoke(
    session: Session,
    member: Member,
    achievement: Achievement,
    *,
    origin: str,
    actor: str,
    reason: str,
    at: datetime,
    event_keys: Sequence[str] = (),
) -> Award | None:
    """Revoke an active award; ``None`` if there is none (or a rule tries to undo a grant).

    A moderator's revocation stays on record as a revoked award (a rule never re-awards it); a
    rule's removes the award row. Either way the returned row says when it had been earned.
    """
    existing = find_award(session, member.id, achievement.id)
    if existing is None or existing.status != "active":
        return None
    if origin == RULE and existing.origin == MANUAL:
        return None
    existing.status, existing.origin, existing.updated_at = "revoked", origin, at
    if origin == RULE:
        # A rule that stops being met (a retraction, a late event) leaves no "revoked" badge
        # behind: the member's card reads as if it had never been earned. The audit keeps it.
        session.delete(existing)
        session.flush()  # before a re-award in the same batch inserts the row again
        session.info.setdefault(AWARDS, {})[(member.id, achievement.id)] = None
    record(
        session,
        member,
        achievement,
        action="revoke",
        actor=actor,
        reason=reason,
        at=at,
        event_keys=event_keys,
        details={"points": -achievement.points},
        payload={"role": achievement.role} if achievement.role else {},
    )
    return existing
