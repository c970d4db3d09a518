"""Vouchers: a redeemable code an achievement issues, claimable within its window (e.g. 72 h)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from smallwins.core.identity import CODE_ALPHABET, normalize_code
from smallwins.core.store import Voucher


class VoucherError(ValueError):
    """A voucher that cannot be claimed; the message says why."""


def issue(session: Session, *, member_id: int, achievement_id: str, hours: float, at: datetime) -> Voucher | None:
    """Issue the member's voucher for an achievement, once (a re-award issues no second one)."""
    session.flush()  # a voucher issued earlier in this batch is otherwise invisible (no autoflush)
    existing = session.scalar(
        select(Voucher).where(Voucher.member_id == member_id, Voucher.achievement_id == achievement_id)
    )
    if existing is not None:
        return None
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
    voucher = Voucher(
        code=code,
        member_id=member_id,
        home_member_id=member_id,
        achievement_id=achievement_id,
        issued_at=at,
        expires_at=at + timedelta(hours=hours),
    )
    session.add(voucher)
    return voucher


def display_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def claim(session: Session, code: str, *, at: datetime) -> Voucher:
    """Mark a voucher claimed; refuses unknown, already claimed and expired ones."""
    voucher = session.execute(
        select(Voucher).where(Voucher.code == normalize_code(code)).with_for_update()
    ).scalar_one_or_none()
    if voucher is None:
        raise VoucherError(f"voucher '{code}' is unknown")
    if voucher.claimed_at is not None:
        raise VoucherError(f"voucher '{code}' was already claimed at {voucher.claimed_at.isoformat()}")
    if at >= voucher.expires_at:
        raise VoucherError(f"voucher '{code}' expired at {voucher.expires_at.isoformat()}")
    voucher.claimed_at = at
    return voucher


@dataclass(frozen=True)
class ClaimStats:
    achievement_id: str
    issued: int
    claimed: int
    expired: int

    @property
    def claim_rate(self) -> float:
        return self.claimed / self.issued if self.issued else 0.0


def claim_stats(session: Session, *, now: datetime) -> list[ClaimStats]:
    """Issued, claimed and expired-unclaimed vouchers per achievement."""
    rows = session.execute(
        select(
            Voucher.achievement_id,
            func.count(),
            func.count(Voucher.claimed_at),
            func.sum(case((and_(Voucher.claimed_at.is_(None), Voucher.expires_at <= now), 1), else_=0)),
        ).group_by(Voucher.achievement_id)
    )
    return [ClaimStats(a, issued, claimed, int(expired or 0)) for a, issued, claimed, expired in rows]
