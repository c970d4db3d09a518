"""Awarding and revoking achievements: every change audited and queued for presenters.

Points are the engine's business (all-time and per period); this module records standing.

Who decided matters: a moderator's revocation holds against the rules (a rule never re-awards
it), and a moderator's grant holds against a recomputation (it is never revoked by one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, event, select, update
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
    rolled-back transaction drops them with everything else). Award rows changed in the
    transaction are written first (:func:`sync`).
    """
    sync(session)
    for key, write in ((AUDIT_ROWS, _AUDIT_INSERT), (OUTBOX_ROWS, _OUTBOX_INSERT)):
        rows = session.info.pop(key, None)
        if rows:
            write.execute(session, rows)
            session.info[STANDING_CHANGED] = True


def _plain_insert(table: Table) -> DriverWrite:
    """An INSERT of the columns recorded below (ids and nothing else from the database)."""
    return DriverWrite(table, [c.name for c in table.columns if not c.primary_key])


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


#: ``session.info`` key of the award rows read or made in this transaction:
#: ``(member id, achievement id) -> HeldAward`` (``None``: the member holds none).
AWARDS = "smallwins.awards"
#: ``session.info`` key of the members whose award rows are all in :data:`AWARDS`: a pair of
#: theirs that is not there is an award they do not hold.
AWARDS_LOADED = "smallwins.awards_loaded"
#: ``session.info`` key of the ``(member id, achievement id)`` rows to delete at the next sync.
DELETED = "smallwins.awards_deleted"
#: ``session.info`` key of the award objects made or changed since the last sync.
CHANGED = "smallwins.awards_changed"
#: Members per award lookup when preloading.
PRELOAD_CHUNK = 5_000


@dataclass(slots=True, eq=False)
class HeldAward:
    """A member's award row as a transaction works on it: a plain object, not an ORM row.

    The ingest reads, makes and changes thousands of awards a batch; ORM rows cost an instrumented
    object each and a unit-of-work flush. These are written by :func:`sync` (at commit, and before
    any code reads the ``awards`` table or changes it through the ORM) with one statement per kind
    of change. ``stored``: the row exists in the table; ``changed``: it differs from the table.
    """

    member_id: int
    achievement_id: str
    tier: str | None
    status: str
    origin: str
    home_member_id: int | None
    awarded_at: datetime
    updated_at: datetime
    stored: bool = False
    changed: bool = False


def change(session: Session, held: HeldAward, **values: Any) -> None:
    """Change some columns of an award (or, with none given, note a new one): written at the next
    :func:`sync`."""
    for name, value in values.items():
        setattr(held, name, value)
    if not held.changed:
        held.changed = True
        session.info.setdefault(CHANGED, []).append(held)


_AWARD_TABLE = cast(Table, Award.__table__)
_HELD_COLUMNS = ("member_id", "achievement_id", "tier", "status", "origin", "home_member_id", "awarded_at",
                 "updated_at")


def _held(row: Any) -> HeldAward:
    """A row of ``_HELD_COLUMNS`` read from the table."""
    held = HeldAward(*row)
    held.stored = True
    return held


def find_award(session: Session, member_id: int, achievement_id: str) -> HeldAward | None:
    """The member's award for an achievement, read once per transaction.

    Ingest runs without autoflush, so an award made earlier in the same batch is only in
    memory: this cache is what lets a later event of the batch upgrade or revoke it.
    """
    cache: dict[tuple[int, str], HeldAward | None] = session.info.setdefault(AWARDS, {})
    key = (member_id, achievement_id)
    if key not in cache:
        if member_id in session.info.get(AWARDS_LOADED, ()):
            return None
        row = session.execute(
            select(*(_AWARD_TABLE.c[name] for name in _HELD_COLUMNS)).where(
                _AWARD_TABLE.c.member_id == member_id, _AWARD_TABLE.c.achievement_id == achievement_id
            )
        ).first()
        cache[key] = None if row is None else _held(row)
    return cache[key]


def preload_awards(session: Session, member_ids: Iterable[int]) -> None:
    """Read the award rows of many members at once into :func:`find_award`'s cache (one query
    per chunk instead of one per member and achievement); what is cached already stays."""
    cache: dict[tuple[int, str], HeldAward | None] = session.info.setdefault(AWARDS, {})
    loaded: set[int] = session.info.setdefault(AWARDS_LOADED, set())
    wanted = sorted(set(member_ids) - loaded)
    columns = [_AWARD_TABLE.c[name] for name in _HELD_COLUMNS]
    for start in range(0, len(wanted), PRELOAD_CHUNK):
        chunk = wanted[start : start + PRELOAD_CHUNK]
        for row in session.execute(select(*columns).where(one_of(session, _AWARD_TABLE.c.member_id, chunk))):
            cache.setdefault((row[0], row[1]), _held(row))
    loaded.update(wanted)


def forget_awards(session: Session) -> None:
    """Write what changed (:func:`sync`), then drop the award cache: needed when award rows move
    between members (merge, unlink) through SQL or the ORM."""
    sync(session)
    session.info.pop(AWARDS, None)
    session.info.pop(AWARDS_LOADED, None)


def sync(session: Session) -> None:
    """Write the transaction's award changes: deletions, then changed rows, then new rows.

    Run at commit and before anything reads the ``awards`` table in SQL or loads its rows through
    the ORM (a recompute, a merge, an unlink, points rebuilt from awards). Deleting first lets a
    rule revoke an award and award it again within one batch.
    """
    deleted: list[tuple[int, str]] = session.info.pop(DELETED, [])
    if deleted:
        session.connection().execute(_DELETE_AWARD, [{"m": m, "a": a} for m, a in deleted])
    noted: list[HeldAward] = session.info.pop(CHANGED, [])
    cache: dict[tuple[int, str], HeldAward | None] = session.info.get(AWARDS, {})
    # A rule's revocation dropped its award from the cache (and queued the row's deletion).
    changed = [held for held in noted if cache.get((held.member_id, held.achievement_id)) is held]
    for held in noted:
        held.changed = False
    if not changed:
        return
    updates = [held for held in changed if held.stored]
    if updates:
        session.connection().execute(
            _UPDATE_AWARD,
            [{"m": h.member_id, "a": h.achievement_id, "tier": h.tier, "status": h.status, "origin": h.origin,
              "awarded_at": h.awarded_at, "updated_at": h.updated_at} for h in updates],
        )
    # In member order (stable: a member's awards keep the order they were made in, which breaks
    # ties between awards of the same moment): the (member, achievement) index is then written
    # page after page instead of at random, as with period points.
    new_rows = sorted((held for held in changed if not held.stored), key=attrgetter("member_id"))
    _INSERT_AWARD.execute(session, [{name: getattr(held, name) for name in _HELD_COLUMNS} for held in new_rows])
    for held in changed:
        held.stored = True


_INSERT_AWARD = DriverWrite(_AWARD_TABLE, _HELD_COLUMNS)
_UPDATE_AWARD = (
    update(_AWARD_TABLE)
    .where(_AWARD_TABLE.c.member_id == bindparam("m"), _AWARD_TABLE.c.achievement_id == bindparam("a"))
    .values(tier=bindparam("tier"), status=bindparam("status"), origin=bindparam("origin"),
            awarded_at=bindparam("awarded_at"), updated_at=bindparam("updated_at"))
)
_DELETE_AWARD = delete(_AWARD_TABLE).where(
    _AWARD_TABLE.c.member_id == bindparam("m"), _AWARD_TABLE.c.achievement_id == bindparam("a")
)


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
        change(session, existing, status="active", origin=origin, awarded_at=earned_at, tier=tier, updated_at=at)
    else:
        made = HeldAward(
            member_id=member.id,
            achievement_id=achievement.id,
            tier=tier,
            status="active",
            origin=origin,
            home_member_id=member.id,
            awarded_at=earned_at,
            updated_at=at,
        )
        session.info.setdefault(AWARDS, {})[(member.id, achievement.id)] = made
        change(session, made)
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
    previous = existing.tier
    change(session, existing, tier=tier, updated_at=at)
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
) -> HeldAward | None:
    """Revoke an active award; ``None`` if there is none (or a rule tries to undo a grant).

    A moderator's revocation stays on record as a revoked award (a rule never re-awards it); a
    rule's removes the award row. Either way the returned row says when it had been earned.
    """
    existing = find_award(session, member.id, achievement.id)
    if existing is None or existing.status != "active":
        return None
    if origin == RULE and existing.origin == MANUAL:
        return None
    change(session, existing, status="revoked", origin=origin, updated_at=at)
    if origin == RULE:
        # A rule that stops being met (a retraction, a late event) leaves no "revoked" badge
        # behind: the member's card reads as if it had never been earned. The audit keeps it.
        if existing.stored:
            session.info.setdefault(DELETED, []).append((member.id, achievement.id))
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
