"""Read models: finding a member, their standing and progress, and the leaderboard.

The CLI and every presenter read through here, so "3 of 5 helpful replies" is computed once.
"""

from __future__ import annotations

import time
import weakref
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smallwins.core import awards, rule_states
from smallwins.core.contract import MemberSnapshot
from smallwins.core.events import MAX_STORED_INT
from smallwins.core.holdout import hidden_from
from smallwins.core.leaderboards import ranks_of
from smallwins.core.rules import Catalogue, RuleContext
from smallwins.core.store import Award, Identity, Member, Voucher
from smallwins.core.vouchers import display_code


class MemberNotFound(LookupError):
    """No member matches what was asked for."""


def find_member(session: Session, ref: str) -> Member:
    """A member by id (``42``), platform account (``discord:1234``) or exact display name.

    A merged member's id leads to the member it was merged into.
    """
    member: Member | None = None
    if ref.isascii() and ref.isdigit() and int(ref) <= MAX_STORED_INT:  # ids are 64-bit: a bigger number is no id
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
    shares: dict[str, float] | None = None,
) -> MemberSnapshot:
    """Everything shown about one member: identities, points, rank, awards (with tier, rarity,
    role), vouchers, and progress on every achievement (streak details, next tier).

    Achievements the member is held out of (a holdout experiment) are left out entirely: every
    presenter reads members through here, so none can show them.
    """
    found = member_snapshots(session, catalogue, [member_id], default_timezone=default_timezone, now=now, shares=shares)
    if member_id not in found:
        raise MemberNotFound(f"no member {member_id}")
    return found[member_id]


def member_snapshots(
    session: Session,
    catalogue: Catalogue,
    member_ids: Iterable[int],
    *,
    default_timezone: str = "UTC",
    now: datetime | None = None,
    shares: dict[str, float] | None = None,
) -> dict[int, MemberSnapshot]:
    """Snapshots of several members in a few queries (one per table, rarity once), by member id.

    Presenters are fed a batch of changed members at a time; reading them one by one cost a
    handful of queries each. Ids of members that do not exist are left out.
    """
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    members = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_(ids)))}
    identities: dict[int, dict[str, list[str]]] = defaultdict(dict)
    for row in session.scalars(select(Identity).where(Identity.member_id.in_(ids)).order_by(Identity.id)):
        identities[row.member_id].setdefault(row.platform, []).append(row.account)
    award_rows: dict[int, list[Award]] = defaultdict(list)
    for award in session.scalars(select(Award).where(Award.member_id.in_(ids)).order_by(Award.awarded_at, Award.id)):
        award_rows[award.member_id].append(award)
    states = {
        member_id: {achievement_id: saved.state for achievement_id, saved in saved_states.items()}
        for member_id, saved_states in rule_states.read(session, ids).items()
    }
    vouchers: dict[int, list[Voucher]] = defaultdict(list)
    for voucher in session.scalars(select(Voucher).where(Voucher.member_id.in_(ids)).order_by(Voucher.issued_at)):
        vouchers[voucher.member_id].append(voucher)
    ranks = ranks_of(session, list(members.values()))
    shares = rarity(session) if shares is None else shares
    moment = now or datetime.now(UTC)
    return {
        member.id: _snapshot(
            catalogue,
            member,
            identities=identities.get(member.id, {}),
            award_rows=award_rows.get(member.id, []),
            states=states.get(member.id, {}),
            voucher_rows=vouchers.get(member.id, []),
            rank=ranks.get(member.id),
            shares=shares,
            ctx=RuleContext(member_id=member.id, timezone=ZoneInfo(member.timezone or default_timezone), now=moment),
        )
        for member in members.values()
    }


def _snapshot(
    catalogue: Catalogue,
    member: Member,
    *,
    identities: dict[str, list[str]],
    award_rows: list[Award],
    states: dict[str, Any],
    voucher_rows: list[Voucher],
    rank: int | None,
    shares: dict[str, float],
    ctx: RuleContext,
) -> MemberSnapshot:
    """One member's snapshot from rows already read."""
    hidden = hidden_from(catalogue, member.id)
    rows = [row for row in award_rows if row.achievement_id not in hidden]
    held = [row for row in rows if row.status == "active"]
    revoked = [row for row in rows if row.status == "revoked"]  # a moderator's "no": shown as such
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
                # a season that has ended can no longer be earned: shown, but never "what is next"
                "closed": achievement.window is not None and ctx.now is not None and ctx.now >= achievement.window.end,
            }
        )
    return MemberSnapshot(
        member_id=member.id,
        display_name=member.display_name,
        identities=identities,
        points=member.points,
        rank=rank,
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
        if (item["earned"] and not item["next_tier"]) or item.get("revoked") or item.get("closed"):
            continue  # done, revoked by a moderator, or its season over: not something to work toward
        group = str(item["ladder"] or item["id"])
        current = best.get(group)
        if current is None or item["target"] < current["target"]:
            best[group] = item
    return sorted(best.values(), key=lambda i: -(i["current"] / max(i["target"], 1)))


#: Seconds a rarity count is reused for (by this process; its own changes recount at once).
RARITY_TTL_S = 60.0
_rarity_counted: weakref.WeakKeyDictionary[Any, tuple[float, int, dict[str, float]]] = weakref.WeakKeyDictionary()


def rarity(session: Session) -> dict[str, float]:
    """Share of members (not merged away, not staff) holding each achievement, 0..1.

    A count over every award and member: at a million members it costs far more than the rest
    of a widget document. It is shown as "held by 12%", so it is reused for up to
    :data:`RARITY_TTL_S` per database, and recounted as soon as this process commits a change
    of standing (another process's changes show within the TTL).
    """
    pool = session.get_bind().engine.pool
    cached = _rarity_counted.get(pool)
    now, changes = time.monotonic(), awards.committed_changes()
    if cached is not None and cached[1] == changes and now - cached[0] < RARITY_TTL_S:
        return cached[2]
    shares = _count_rarity(session)
    _rarity_counted[pool] = (now, changes, shares)
    return shares


def _count_rarity(session: Session) -> dict[str, float]:
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
