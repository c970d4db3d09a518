"""What goes into a newsletter issue's block, read from the store.

The community part (new badges since the last issue, top contributors of the month, the rarest
badge earned) lists only public members: private-mode members, staff and merged-away members
never appear. Each recipient (a member with an email identity) also gets their own progress,
whatever their privacy setting, because it is shown to them alone.

Which window "since the last issue" means is remembered per issue (``CursorStore`` of the
``newsletter`` presenter), so rendering the same issue again gives the same block.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smallwins.core import views
from smallwins.core.app import App
from smallwins.core.contract import MemberSnapshot
from smallwins.core.cursors import CursorStore
from smallwins.core.holdout import held_out
from smallwins.core.store import Award, Identity, Member, PeriodPoints, StoredEvent

PRESENTER = "newsletter"
EMAIL = "email"
ISSUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class IssueError(ValueError):
    """An issue that cannot be rendered as asked (bad id, window backwards)."""


@dataclass(frozen=True)
class BadgeEarned:
    member_id: int
    member_name: str
    achievement_id: str
    achievement_name: str
    description: str
    tier: str | None
    awarded_at: datetime
    held_by: float  # share of members holding it, 0..1

    @property
    def held_by_text(self) -> str:
        share = self.held_by * 100
        return f"{share:.0f}%" if share >= 1 or share == 0 else "under 1%"


@dataclass(frozen=True)
class BadgeGroup:
    """One achievement earned in the window, with who earned it (rarest groups first)."""

    achievement_id: str
    achievement_name: str
    description: str
    tier: str | None
    held_by_text: str
    earners: list[str]
    more: int  # earners beyond those named


def group_badges(badges: list[BadgeEarned], *, names: int = 5) -> list[BadgeGroup]:
    groups: dict[str, list[BadgeEarned]] = {}
    for badge in badges:
        groups.setdefault(badge.achievement_id, []).append(badge)
    ordered = sorted(groups.values(), key=lambda g: (g[0].held_by, g[0].awarded_at))
    result = []
    for group in ordered:
        unique = list(dict.fromkeys(b.member_name for b in group))
        first = group[0]
        result.append(
            BadgeGroup(
                achievement_id=first.achievement_id,
                achievement_name=first.achievement_name,
                description=first.description,
                tier=first.tier,
                held_by_text=first.held_by_text,
                earners=unique[:names],
                more=max(len(unique) - names, 0),
            )
        )
    return result


@dataclass(frozen=True)
class Contributor:
    rank: int
    member_id: int
    display_name: str
    points: int


@dataclass(frozen=True)
class ProgressLine:
    achievement_id: str
    achievement_name: str
    current: int
    target: int
    unit: str

    @property
    def text(self) -> str:
        """``2 of 3 replies to earn Pen Pal``."""
        return f"{self.current} of {self.target} {self.unit} to earn {self.achievement_name}"

    @property
    def percent(self) -> int:
        return round(100 * min(self.current, self.target) / max(self.target, 1))


@dataclass(frozen=True)
class Recipient:
    member_id: int
    address: str
    display_name: str
    private: bool
    points: int
    rank: int | None
    progress: list[ProgressLine]
    earned: list[BadgeEarned]  # their own badges in this issue's window (private members too)

    @property
    def merge_fields(self) -> dict[str, str]:
        first = self.progress[0] if self.progress else None
        return {
            "SW_NAME": self.display_name,
            "SW_POINTS": str(self.points),
            "SW_RANK": str(self.rank or ""),
            "SW_NEXT": first.text if first else "",
            "SW_NEXT_BADGE": first.achievement_name if first else "",
            "SW_PROGRESS": "; ".join(line.text for line in self.progress),
            "SW_NEW_BADGES": ", ".join(b.achievement_name for b in self.earned),
        }


@dataclass(frozen=True)
class IssueBlock:
    issue: str
    title: str
    since: datetime
    until: datetime
    month: str
    month_label: str
    new_badges: list[BadgeEarned]  # every public badge earned in the window, in time order
    badge_groups: list[BadgeGroup]  # the same by achievement, rarest first (what the block lists)
    badge_groups_more: int  # achievements beyond the block's limit
    top_contributors: list[Contributor]
    rarest: BadgeEarned | None
    recipients: list[Recipient] = field(default_factory=list)


def check_issue(issue: str) -> str:
    if not ISSUE.match(issue):
        raise IssueError(f"issue '{issue}' must be letters, digits, '.', '_' or '-' (at most 64), e.g. 2026-11")
    return issue


def month_bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=zone), datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)


def issue_window(
    cursors: CursorStore, issue: str, *, until: datetime | None, since: datetime | None, now: datetime, zone: ZoneInfo
) -> tuple[datetime, datetime]:
    """``[since, until)`` of an issue: as given, else as recorded when it was first rendered, else
    from the end of the previous issue to now. A monthly issue (``2026-11``) defaults to its month."""
    recorded = (cursors.get("issues") or {}).get("issues", {})
    if since is None and until is None and issue in recorded:
        return datetime.fromisoformat(recorded[issue]["since"]), datetime.fromisoformat(recorded[issue]["until"])
    month = month_bounds(issue, zone) if MONTH.match(issue) else None
    if until is None:
        until = min(now, month[1]) if month else now
    if since is None:
        earlier = [datetime.fromisoformat(v["until"]) for k, v in recorded.items() if k != issue]
        earlier = [moment for moment in earlier if moment < until]
        if earlier:
            since = max(earlier)
        elif month:
            since = month[0]
        else:
            since = until.astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if since >= until:
        raise IssueError(f"the issue's window is empty: since {since.isoformat()} is not before {until.isoformat()}")
    return since, until


def remember_issue(cursors: CursorStore, issue: str, since: datetime, until: datetime) -> None:
    value = cursors.get("issues") or {"issues": {}}
    value.setdefault("issues", {})[issue] = {"since": since.isoformat(), "until": until.isoformat()}
    cursors.set("issues", value)


def month_of(issue: str, until: datetime, zone: ZoneInfo) -> str:
    """The month whose top contributors the issue shows: the issue's own (``2026-11``) or its end's."""
    if MONTH.match(issue):
        return issue
    local = (until - timedelta(microseconds=1)).astimezone(zone)
    return f"{local.year}-{local.month:02d}"


def _public() -> tuple[Any, ...]:
    return Member.merged_into_id.is_(None), Member.private.is_(False), Member.staff.is_(False)


def new_badges(
    app: App, session: Session, since: datetime, until: datetime, *, member_id: int | None = None
) -> list[BadgeEarned]:
    """Badges earned in ``[since, until)`` by public members (or by one member, public or not)."""
    query = (
        select(Award, Member.display_name)
        .join(Member, Member.id == Award.member_id)
        .where(Award.status == "active", Award.awarded_at >= since, Award.awarded_at < until)
        .order_by(Award.awarded_at, Award.id)
    )
    query = query.where(Award.member_id == member_id) if member_id is not None else query.where(*_public())
    shares = views.rarity(session)
    found = []
    for award, name in session.execute(query):
        if held_out(app.catalogue, award.achievement_id, award.member_id):
            continue  # a holdout experiment: the badge is computed but never shown to anyone
        achievement = app.catalogue.achievements.get(award.achievement_id)
        found.append(
            BadgeEarned(
                member_id=award.member_id,
                member_name=name,
                achievement_id=award.achievement_id,
                achievement_name=achievement.name if achievement else award.achievement_id,
                description=achievement.description if achievement else "",
                tier=award.tier,
                awarded_at=award.awarded_at,
                held_by=shares.get(award.achievement_id, 0.0),
            )
        )
    return found


def top_contributors(app: App, session: Session, month: str, zone: ZoneInfo, *, limit: int) -> list[Contributor]:
    """Public members by points earned in ``month``: a monthly leaderboard of the catalogue when
    there is one, else the points of their events that month."""
    board = next((b for b in app.catalogue.leaderboards.values() if b.period == "month"), None)
    if board is not None:
        rows = session.execute(
            select(Member.id, Member.display_name, PeriodPoints.points)
            .join(Member, Member.id == PeriodPoints.member_id)
            .where(PeriodPoints.board == board.id, PeriodPoints.period == month, PeriodPoints.points > 0, *_public())
            .order_by(PeriodPoints.points.desc(), Member.id)
            .limit(limit)
        ).all()
        scored = [(member_id, name, int(points)) for member_id, name, points in rows]
    else:
        start, end = month_bounds(month, zone)
        counts = session.execute(
            select(Member.id, Member.display_name, StoredEvent.type, func.count())
            .join(Member, Member.id == StoredEvent.member_id)
            .where(StoredEvent.time >= start, StoredEvent.time < end, StoredEvent.retracted.is_(False), *_public())
            .group_by(Member.id, Member.display_name, StoredEvent.type)
        ).all()
        totals: dict[tuple[int, str], int] = {}
        for member_id, name, event_type, n in counts:
            points = app.catalogue.event_points.get(event_type, 0) * int(n)
            totals[(member_id, name)] = totals.get((member_id, name), 0) + points
        ordered = sorted(((k, v) for k, v in totals.items() if v > 0), key=lambda kv: (-kv[1], kv[0][0]))[:limit]
        scored = [(member_id, name, points) for (member_id, name), points in ordered]
    result: list[Contributor] = []
    for position, (member_id, name, points) in enumerate(scored, start=1):
        rank = result[-1].rank if result and result[-1].points == points else position
        result.append(Contributor(rank, member_id, name, points))
    return result


def progress_lines(snapshot: MemberSnapshot, *, limit: int = 3) -> list[ProgressLine]:
    """What is next for a member, nearest first (``2 of 3 replies to earn Pen Pal``)."""
    lines = []
    for item in views.next_targets(snapshot)[:limit]:
        lines.append(
            ProgressLine(
                achievement_id=str(item["id"]),
                achievement_name=str(item["name"]),
                current=int(item["current"]),
                target=int(item["target"]),
                unit=str(item["unit"]),
            )
        )
    return lines


def recipient_ids(session: Session) -> list[tuple[int, str]]:
    """``(member id, address)`` of every member with an email identity (one address each)."""
    rows = session.execute(
        select(Identity.member_id, func.min(Identity.account))
        .join(Member, Member.id == Identity.member_id)
        .where(Identity.platform == EMAIL, Member.merged_into_id.is_(None), Member.staff.is_(False))
        .group_by(Identity.member_id)
        .order_by(Identity.member_id)
    ).all()
    return [(int(member_id), str(address)) for member_id, address in rows]


def recipient(app: App, session: Session, member_id: int, address: str, since: datetime, until: datetime) -> Recipient:
    snapshot = app.snapshot(session, member_id)
    return Recipient(
        member_id=member_id,
        address=address,
        display_name=snapshot.display_name,
        private=snapshot.private,
        points=snapshot.points,
        rank=snapshot.rank,
        progress=progress_lines(snapshot),
        earned=new_badges(app, session, since, until, member_id=member_id),
    )


def iter_recipients(app: App, since: datetime, until: datetime) -> Iterator[Recipient]:
    with app.store.sessions() as session:
        everyone = recipient_ids(session)
    for member_id, address in everyone:
        with app.store.sessions() as session:
            yield recipient(app, session, member_id, address, since, until)


def community_block(
    app: App,
    *,
    issue: str,
    title: str,
    since: datetime,
    until: datetime,
    zone: ZoneInfo,
    top: int,
    badges_limit: int,
    names_per_badge: int = 5,
) -> IssueBlock:
    """The part of the block every reader sees."""
    month = month_of(issue, until, zone)
    with app.store.sessions() as session:
        badges = new_badges(app, session, since, until)
        contributors = top_contributors(app, session, month, zone, limit=top)
    rarest = min(badges, key=lambda b: (b.held_by, b.awarded_at)) if badges else None
    groups = group_badges(badges, names=names_per_badge)
    year, number = (int(part) for part in month.split("-"))
    return IssueBlock(
        issue=issue,
        title=title,
        since=since,
        until=until,
        month=month,
        month_label=datetime(year, number, 1).strftime("%B %Y"),
        new_badges=badges,
        badge_groups=groups[:badges_limit],
        badge_groups_more=max(len(groups) - badges_limit, 0),
        top_contributors=contributors,
        rarest=rarest,
    )
