"""Read models: finding a member, their standing and progress, and the leaderboard.

The CLI and every presenter read through here, so "3 of 5 helpful replies" is computed once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smallwins.core.contract import MemberSnapshot
from smallwins.core.holdout import hidden_from
from smallwins.core.identity import identities_of
from smallwins.core.leaderboards import rank_of
from smallwins.core.rules import Catalogue, RuleContext
from smallwins.core.store import Award, Identity, Member, RuleState, Voucher
from smallwins.core.vouchers import display_code


class MemberNotFound(LookupError):
    """No member matches what was asked for."""


def find_member(session: Session, ref: str) -> Member:
    """A member by id (``42``), platform account (``discord:1234``) or exact display name.

    A merged member's id leads to the member it was merged into.
    """
    member: Member | None = None
    if ref.isdigit():
        member = session.get(Member, int(ref))
    elif ":" in ref:
        platform, account = ref.split(":", 1)
        member_id = session.scalar(
            select(Identity.member_id).where(Identity.platform == platform, Identity.account == account)
        )
        member = session.get(Member, member_id) if member_id is not None else None
    if member is None:
        matches = list(
            session.scalars(select(Member).where(Member.display_name == ref, Member.merged_into_id.is_(None)))
        )
        if len(matches) > 1:
            raise MemberNotFound(f"{len(matches)} members are named '{ref}'; use an id or platform:account")
        member = matches[0] if matches else None
    if member is None:
        raise MemberNotFound(f"no member '{ref}' (give an id, platform:account, or display name)")
    while member.merged_into_id is not None:
        member = session.get_one(Member, member.merged_into_id)
    return member


def member_snapshot(
    session: Session,
    catalogue: Catalogue,
    member_id: int,
    *,
    default_timezone: str = "UTC",
    now: datetime | None = None,
) -> MemberSnapshot:
    """Everything shown about one member: identities, points, rank, awards (with tier, rarity,
    role), vouchers, and progress on every achievement (streak details, next tier).

    Achievements the member is held out of (a holdout experiment) are left out entirely: every
    presenter reads members through here, so none can show them.
    """
    member = session.get(Member, member_id)
    if member is None:
        raise MemberNotFound(f"no member {member_id}")
    hidden = hidden_from(catalogue, member.id)
    ctx = RuleContext(
        member_id=member.id, timezone=ZoneInfo(member.timezone or default_timezone), now=now or datetime.now(UTC)
    )
    identities: dict[str, list[str]] = {}
    for found in identities_of(session, member.id):
        identities.setdefault(found.platform, []).append(found.account)
    rows = [
        row
        for row in session.scalars(select(Award).where(Award.member_id == member.id).order_by(Award.awarded_at))
        if row.achievement_id not in hidden
    ]
    held = [row for row in rows if row.status == "active"]
    revoked = [row for row in rows if row.status == "revoked"]  # a moderator's "no": shown as such
    shares = rarity(session)
    awards = []
    for row in held:
        achievement = catalogue.achievements.get(row.achievement_id)
        awards.append(
            {
                "id": row.achievement_id,
                "name": achievement.name if achievement else row.achievement_id,
                "description": achievement.description if achievement else "",
                "tier": row.tier,
                "awarded_at": row.awarded_at.isoformat(),
                "origin": row.origin,
                "held_by": f"held by {shares.get(row.achievement_id, 0):.0%} of members",
            }
        )
    roles = sorted(
        {a.role for row in held if (a := catalogue.achievements.get(row.achievement_id)) and a.role is not None}
    )
    states = {
        row.achievement_id: row.state
        for row in session.scalars(select(RuleState).where(RuleState.member_id == member.id))
    }
    held_ids = {row.achievement_id for row in held}
    revoked_ids = {row.achievement_id for row in revoked}
    progress = []
    for achievement in catalogue.achievements.values():
        if achievement.id in hidden:
            continue
        state = states.get(achievement.id) or achievement.rule.initial_state(achievement.params)
        step = achievement.rule.progress(achievement.params, state, ctx)
        progress.append(
            {
                "id": achievement.id,
                "name": achievement.name,
                "ladder": achievement.ladder,
                "current": min(step.current, step.target),
                "target": step.target,
                "unit": step.unit,
                "text": step.text(),
                "earned": achievement.id in held_ids,
                "revoked": achievement.id in revoked_ids,
                "tier": step.tier,
                "next_tier": step.detail.get("next_tier"),
                "detail": dict(step.detail),
                "season": (
                    {"from": achievement.window.start.isoformat(), "until": achievement.window.end.isoformat()}
                    if achievement.window
                    else None
                ),
            }
        )
    voucher_rows = session.scalars(select(Voucher).where(Voucher.member_id == member.id).order_by(Voucher.issued_at))
    return MemberSnapshot(
        member_id=member.id,
        display_name=member.display_name,
        identities=identities,
        points=member.points,
        rank=rank_of(session, member),
        awards=awards,
        progress=progress,
        merged_into=member.merged_into_id,
        roles=roles,
        vouchers=[
            {
                "achievement_id": v.achievement_id,
                "code": display_code(v.code),
                "expires_at": v.expires_at.isoformat(),
                "status": "claimed" if v.claimed_at else ("expired" if ctx.now and ctx.now >= v.expires_at else "open"),
            }
            for v in voucher_rows
            if v.achievement_id not in hidden
        ],
        timezone=str(ctx.timezone),
        private=member.private,
        revoked=[
            {
                "id": row.achievement_id,
                "name": (a.name if (a := catalogue.achievements.get(row.achievement_id)) else row.achievement_id),
                "revoked_at": row.updated_at.isoformat(),
            }
            for row in revoked
        ],
    )


def next_targets(snapshot: MemberSnapshot) -> list[dict[str, Any]]:
    """Per ladder (or standalone achievement), the nearest step still to take: "what is next".

    Earned living trophies stay listed while a higher tier is open.
    """
    best: dict[str, dict[str, Any]] = {}
    for item in snapshot.progress:
        if (item["earned"] and not item["next_tier"]) or item.get("revoked"):
            continue  # done, or revoked by a moderator: not something to work toward
        group = str(item["ladder"] or item["id"])
        current = best.get(group)
        if current is None or item["target"] < current["target"]:
            best[group] = item
    return sorted(best.values(), key=lambda i: -(i["current"] / max(i["target"], 1)))


def rarity(session: Session) -> dict[str, float]:
    """Share of members (not merged away, not staff) holding each achievement, 0..1."""
    total = (
        session.scalar(
            select(func.count()).select_from(Member).where(Member.merged_into_id.is_(None), Member.staff.is_(False))
        )
        or 0
    )
    if not total:
        return {}
    counts = session.execute(
        select(Award.achievement_id, func.count())
        .join(Member, Member.id == Award.member_id)
        .where(Award.status == "active", Member.staff.is_(False), Member.merged_into_id.is_(None))
        .group_by(Award.achievement_id)
    )
    return {achievement_id: n / total for achievement_id, n in counts}


def most_decorated(session: Session, refs: list[str]) -> int | None:
    """Of the members behind ``refs``, the one holding the most achievements (ties: most points)."""
    best: tuple[int, int, int] | None = None
    for ref in refs:
        try:
            member = find_member(session, ref)
        except MemberNotFound:
            continue
        held = session.scalar(
            select(func.count()).select_from(Award).where(Award.member_id == member.id, Award.status == "active")
        )
        candidate = (int(held or 0), member.points, member.id)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None
