"""Members and their linked platform identities; one-time link codes.

First sight of an unknown platform account creates a member. A member asks for a link code on
one platform and presents it on another; the engine then merges the two members.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from smallwins.core import member_columns
from smallwins.core.bulk import DriverWrite
from smallwins.core.store import (
    Award,
    Identity,
    LinkCode,
    Member,
    StoredEvent,
    Voucher,
    insert_ignoring_conflict,
    next_ids,
    one_of,
    pair_in,
    utcnow,
)

#: No 0/O, 1/I/L: a code people read on one screen and type on another.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


class IdentityError(ValueError):
    """A link code or identity operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class AccountRef:
    platform: str
    account: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.account}"


#: ``session.info`` keys of the accounts resolved and the members locked in this transaction.
RESOLVED = "smallwins.resolved_members"
LOCKED = "smallwins.locked_members"


def lock_member(session: Session, member_id: int) -> Member:
    """Load a member, row-locked on PostgreSQL, following merges to the surviving member.

    A member is locked (and read) once per transaction; the lock holds until it ends. An
    object already in the session keeps its unflushed changes (no ``populate_existing``): within
    the transaction, memory is the truth.
    """
    locked: dict[int, Member] = session.info.setdefault(LOCKED, {})
    if member_id in locked:
        return locked[member_id]
    requested = member_id
    while True:
        member = session.execute(select(Member).where(Member.id == member_id).with_for_update()).scalar_one()
        if member.merged_into_id is None:
            locked[requested] = locked[member_id] = member
            return member
        member_id = member.merged_into_id


def lock_members(session: Session, member_ids: set[int]) -> None:
    """Row-lock several members at once, in id order, before a batch touches them.

    Two writers that lock the members they share in the same order wait for each other instead
    of deadlocking (PostgreSQL; SQLite has one writer at a time anyway).
    """
    locked: dict[int, Member] = session.info.setdefault(LOCKED, {})
    wanted = sorted(member_ids - set(locked))
    if not wanted:
        return
    locking = select(Member).where(one_of(session, Member.id, wanted)).order_by(Member.id).with_for_update()
    rows = session.execute(locking)
    for member in rows.scalars():
        if member.merged_into_id is None:
            locked[member.id] = member
    for member_id in wanted:
        if member_id not in locked:
            lock_member(session, member_id)  # merged: follow to the survivor


def members_of_accounts(session: Session, refs: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The member id behind each known ``(platform, account)`` of ``refs``, in one lookup (the
    pairs are bound as one parameter, see :func:`~smallwins.core.store.pair_in`)."""
    if not refs:
        return {}
    rows = session.execute(
        select(Identity.platform, Identity.account, Identity.member_id).where(
            pair_in(session, Identity.platform, Identity.account, refs)
        )
    )
    return {(platform, account): member_id for platform, account, member_id in rows}


def name_members(session: Session, names: dict[Member, tuple[datetime, str]]) -> None:
    """Give members the display name of the latest event (in event time) that carried one,
    ``member -> (event time, name)`` being the latest of a batch's events; equal times are
    settled by the name, so the name never depends on delivery order. Written at commit, with the
    batch's points (:mod:`smallwins.core.member_columns`)."""
    for member, (at, name) in names.items():
        if member.named_at is None or (at, name) > (member.named_at, member.display_name):
            loaded = member.__dict__
            if "display_name" in loaded and "named_at" in loaded:  # hot: thousands a batch
                loaded["display_name"], loaded["named_at"] = name, at  # as set_committed_value does
            else:
                set_committed_value(member, "display_name", name)
                set_committed_value(member, "named_at", at)
            member_columns.mark(session, member)


def keep_latest_name(survivor: Member, merged: Member) -> None:
    """On a merge, the survivor keeps whichever of the two names an event gave later."""
    if merged.named_at is not None and (
        survivor.named_at is None or (merged.named_at, merged.display_name) > (survivor.named_at, survivor.display_name)
    ):
        survivor.display_name, survivor.named_at = merged.display_name, merged.named_at


def create_missing_members(
    session: Session,
    accounts: dict[AccountRef, str | None],
    *,
    known: Collection[tuple[str, str]] | None = None,
) -> dict[AccountRef, int]:
    """Create members for the accounts not seen before (``account -> display name``), unlocked;
    the accounts created and their new member ids.

    On PostgreSQL run in a short transaction of its own before a batch, so that creating
    identities never waits inside a long batch transaction that holds member locks. A handful of
    statements whatever the batch size: one lookup (none when the caller looked the accounts up
    already: ``known``), one multi-row INSERT of members, one of identities (ON CONFLICT DO
    NOTHING: another process may create the same account at the same moment; the members made
    for accounts it won are deleted again).
    """
    if known is None:
        known = members_of_accounts(session, [(r.platform, r.account) for r in accounts])
    missing = {ref: name for ref, name in accounts.items() if (ref.platform, ref.account) not in known}
    if not missing:
        return {}
    ordered = sorted(missing, key=str)
    now = utcnow()
    members = [
        {"display_name": (missing[ref] or str(ref))[:200], "points": 0, "private": False, "staff": False,
         "created_at": now}
        for ref in ordered
    ]
    member_table = cast(Table, Member.__table__)
    if session.get_bind().dialect.name == "sqlite":  # ids chosen here let the INSERT be one statement
        member_ids = next_ids(session, member_table, len(members))
    else:  # drawn from the sequence first, so the rows can go in by COPY (no RETURNING needed)
        member_ids = sorted(session.scalars(
            text("SELECT nextval(pg_get_serial_sequence('members', 'id')) FROM generate_series(1, :n)"),
            {"n": len(members)},
        ))
    for row, member_id in zip(members, member_ids, strict=True):
        row["id"] = member_id
    _NEW_MEMBERS.execute(session, members)
    rows = [
        {"platform": ref.platform, "account": ref.account, "member_id": member_id, "home_member_id": member_id,
         "created_at": now}
        for ref, member_id in zip(ordered, member_ids, strict=True)
    ]
    _NEW_IDENTITIES.execute(session, rows)
    # The members are new: an identity that names one is one this INSERT made, not another process.
    created = set(session.scalars(select(Identity.member_id).where(one_of(session, Identity.member_id, member_ids))))
    lost = [member_id for member_id in member_ids if member_id not in created]
    if lost:  # another process created these accounts between our read and write
        session.execute(delete(Member).where(one_of(session, Member.id, lost)))
    return {ref: int(member_id) for ref, member_id in zip(ordered, member_ids, strict=True) if member_id in created}


_NEW_MEMBERS = DriverWrite(
    cast(Table, Member.__table__), ("id", "display_name", "points", "private", "staff", "created_at")
)
_NEW_IDENTITIES = DriverWrite(
    cast(Table, Identity.__table__),
    ("platform", "account", "member_id", "home_member_id", "created_at"),
    lambda insert: insert.on_conflict_do_nothing(index_elements=["platform", "account"]),
)

#: Accounts or keys per ``IN (...)`` lookup: well under SQLite's limit of bound parameters.
LOOKUP_CHUNK = 2000


def forget_resolved(session: Session) -> None:
    """Drop the per-transaction caches; needed after identities move (merge, unlink)."""
    session.info.pop(RESOLVED, None)
    session.info.pop(LOCKED, None)


def resolve_member(session: Session, ref: AccountRef, *, display_name: str | None = None) -> Member:
    """The member behind a platform account, created on first sight (safe across processes).

    Within one transaction an account is looked up (and its member row-locked) once.
    """
    resolved: dict[AccountRef, Member] = session.info.setdefault(RESOLVED, {})
    if ref in resolved:
        return resolved[ref]
    member = _lookup_or_create(session, ref, display_name=display_name)
    resolved[ref] = member
    return member


def _lookup_or_create(session: Session, ref: AccountRef, *, display_name: str | None) -> Member:
    member_id = session.scalar(
        select(Identity.member_id).where(Identity.platform == ref.platform, Identity.account == ref.account)
    )
    if member_id is None:
        member_id = _create_member(session, ref, display_name=display_name)
        if member_id is None:  # another process created it between our read and write
            return _lookup_or_create(session, ref, display_name=display_name)
    return lock_member(session, member_id)


def _create_member(session: Session, ref: AccountRef, *, display_name: str | None) -> int | None:
    """A new member with the account ``ref``; ``None`` if another process created it first."""
    # Plain INSERTs, no ORM flush: creating a member must not write out the whole batch.
    member_id = session.execute(
        insert(Member)
        .values(display_name=(display_name or str(ref))[:200], points=0, private=False, created_at=utcnow())
        .returning(Member.id)
    ).scalar_one()
    inserted = insert_ignoring_conflict(
        session,
        Identity,
        {"platform": ref.platform, "account": ref.account, "member_id": member_id, "home_member_id": member_id},
        ["platform", "account"],
    )
    if inserted is None:
        session.execute(delete(Member).where(Member.id == member_id))
        return None
    return int(member_id)


def find_identity(session: Session, ref: AccountRef) -> Identity | None:
    return session.scalar(select(Identity).where(Identity.platform == ref.platform, Identity.account == ref.account))


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def issue_link_code(session: Session, member_id: int, *, now: datetime, ttl: timedelta) -> str:
    """A fresh one-time code for ``member_id``, shown as ``ABCD-EFGH``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    session.add(LinkCode(code=raw, member_id=member_id, created_at=now, expires_at=now + ttl))
    session.flush()
    return f"{raw[:4]}-{raw[4:]}"


def redeem_link_code(session: Session, code: str, *, now: datetime, presenter_id: int) -> int:
    """Use up a link code presented by member ``presenter_id``; the member who asked for it.
    Raises :class:`IdentityError` (a code presented by its own member is not used up)."""
    raw = normalize_code(code)
    link = session.execute(select(LinkCode).where(LinkCode.code == raw).with_for_update()).scalar_one_or_none()
    if link is None:
        raise IdentityError(f"link code '{code}' is unknown")
    if link.redeemed_at is not None:
        raise IdentityError(f"link code '{code}' was already used")
    if now > link.expires_at:
        raise IdentityError(f"link code '{code}' expired at {link.expires_at.isoformat()}")
    if link.member_id == presenter_id:
        raise IdentityError(
            f"link code '{code}' was asked for by this same member: present it from the account to link"
        )
    link.redeemed_at = now
    return link.member_id


def move_member_data(session: Session, *, from_id: int, to_id: int) -> None:
    """Hand identities, events and vouchers of one member to another; drop its open link codes.

    Where both hold a voucher for the same achievement, the claimed one (else the older) is the
    survivor's and the other stays parked with the merged member (an unlink sorts them back);
    nothing is deleted, so nothing can be issued twice.
    """
    session.execute(update(Identity).where(Identity.member_id == from_id).values(member_id=to_id))
    session.execute(update(StoredEvent).where(StoredEvent.member_id == from_id).values(member_id=to_id))
    session.execute(delete(LinkCode).where(LinkCode.member_id == from_id))
    kept = {v.achievement_id: v for v in session.scalars(select(Voucher).where(Voucher.member_id == to_id))}
    for theirs in session.scalars(select(Voucher).where(Voucher.member_id == from_id)).all():
        mine = kept.get(theirs.achievement_id)
        if mine is None:
            theirs.member_id = to_id
        elif (theirs.claimed_at is not None, -theirs.issued_at.timestamp()) > (
            mine.claimed_at is not None,
            -mine.issued_at.timestamp(),
        ):  # the claimed (else the older) one is shown; the other waits with the merged member
            swap_vouchers(session, theirs, mine)
    session.flush()


def swap_vouchers(session: Session, first: Voucher, second: Voucher) -> None:
    """Exchange the holders of two vouchers for the same achievement.

    ``(member, achievement)`` is unique and checked row by row, so the first one steps aside
    under a placeholder achievement for a moment.
    """
    achievement_id = first.achievement_id
    first_member, second_member = first.member_id, second.member_id
    first.achievement_id = f"{achievement_id}~swap"
    session.flush()
    second.member_id = first_member
    session.flush()
    first.member_id, first.achievement_id = second_member, achievement_id
    session.flush()


def name_from_history(session: Session, member: Member) -> None:
    """Name a member whose accounts changed (an unlink) as if they had always been its own: the
    display name of its latest event (in event time) that carries one, as the ingest names it,
    or its first account when none does."""
    latest: tuple[datetime, str] | None = None
    for at, data in session.execute(
        select(StoredEvent.time, StoredEvent.data).where(StoredEvent.member_id == member.id)
    ):
        name = data.get("display_name") if isinstance(data, dict) else None
        if isinstance(name, str) and name.strip() and (latest is None or (at, name.strip()) > latest):
            latest = (at, name.strip())
    if latest is not None:
        member.named_at, member.display_name = latest
        return
    first = session.execute(
        select(Identity.platform, Identity.account).where(Identity.member_id == member.id).order_by(Identity.id)
    ).first()
    member.named_at = None
    member.display_name = f"{first[0]}:{first[1]}"[:200] if first else member.display_name


def detach_identity(session: Session, identity: Identity) -> Member:
    """Give ``identity`` and the events it produced a member of their own.

    When the account came with a member that was merged away, that member comes back, with its
    name and with the awards and vouchers that were first its own: what moved on merge moves back.
    """
    remaining = session.scalar(
        select(Identity.id).where(Identity.member_id == identity.member_id, Identity.id != identity.id).limit(1)
    )
    if remaining is None:
        raise IdentityError(f"{identity.platform}:{identity.account} is the member's only identity; nothing to unlink")
    old_member_id = identity.member_id
    home = session.get(Member, identity.home_member_id) if identity.home_member_id else None
    if home is not None and home.id != old_member_id and home.merged_into_id is not None:
        home.merged_into_id = None
        member = home
        session.execute(
            update(Award)
            .where(Award.member_id == old_member_id, Award.home_member_id == home.id)
            .values(member_id=home.id)
        )
        # The survivor's own vouchers parked here (the merge showed ours instead) trade places back.
        for parked in session.scalars(
            select(Voucher).where(Voucher.member_id == home.id, Voucher.home_member_id != home.id)
        ).all():
            ours = session.scalar(
                select(Voucher).where(
                    Voucher.member_id == old_member_id,
                    Voucher.achievement_id == parked.achievement_id,
                    Voucher.home_member_id == home.id,
                )
            )
            if ours is not None:
                swap_vouchers(session, ours, parked)
        session.execute(
            update(Voucher)
            .where(Voucher.member_id == old_member_id, Voucher.home_member_id == home.id)
            .values(member_id=home.id)
        )
    else:
        member = Member(display_name=f"{identity.platform}:{identity.account}"[:200], points=0, private=False)
        session.add(member)
    session.flush()
    identity.member_id = member.id
    session.execute(
        update(StoredEvent)
        .where(
            StoredEvent.member_id == old_member_id,
            StoredEvent.source == identity.platform,
            StoredEvent.subject == identity.account,
        )
        .values(member_id=member.id)
    )
    return member
