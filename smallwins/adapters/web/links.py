"""Tracked links, the member behind a web account, and what clicks add up to (store access)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smallwins.adapters.web.models import LinkClick, TrackedLink
from smallwins.adapters.web.normalize import SOURCE, member_account
from smallwins.adapters.web.settings import CreditPeriod
from smallwins.core.events import EVENT_TYPE_PATTERN
from smallwins.core.store import Identity, Member, Store, insert_ignoring_conflict, utcnow

#: Short codes people may type from a poster: no 0/O, 1/I/L.
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_LENGTH = 7


class LinkError(ValueError):
    """A link that cannot be created or found; the message says why."""


def check_target(url: str) -> str:
    """Only absolute http(s) URLs with a host may be targets (no ``javascript:``, no relative)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LinkError(f"target '{url}' must be an absolute http(s) URL, e.g. https://club.example/file.zip")
    if any(ch in url for ch in "\r\n\t ") or len(url) > 2000:
        raise LinkError(f"target '{url[:80]}' contains whitespace or is longer than 2000 characters")
    return url.strip()


def create_link(
    store: Store,
    *,
    url: str,
    campaign: str,
    event_type: str,
    credit_period: CreditPeriod,
    note: str | None = None,
) -> TrackedLink:
    """Register a short link to ``url`` whose member clicks count as ``event_type``."""
    target = check_target(url)
    if not re.match(EVENT_TYPE_PATTERN, event_type) or len(event_type) > 80:
        raise LinkError(f"event type '{event_type}' must be a dotted verb such as download.completed")
    if not campaign.strip() or len(campaign) > 120:
        raise LinkError("campaign must be 1 to 120 characters")
    with store.writes.begin() as session:
        for _ in range(10):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if session.get(TrackedLink, code) is None:
                break
        link = TrackedLink(
            code=code,
            target_url=target,
            campaign=campaign.strip(),
            event_type=event_type,
            credit_period=credit_period,
            note=note,
            active=True,
            created_at=utcnow(),
        )
        session.add(link)
    return link


def find_link(session: Session, code: str) -> TrackedLink | None:
    if len(code) > 32:
        return None
    return session.get(TrackedLink, code)


def all_links(session: Session) -> list[TrackedLink]:
    return list(session.scalars(select(TrackedLink).order_by(TrackedLink.created_at)))


def web_account_of(store: Store, member_id: int) -> str:
    """The web account a member's personal token signs: one they already have, or ``m{id}``.

    The identity is created the way the core creates one (insert, ignoring a concurrent twin),
    so a click credits this member, and a later merge carries the account along.
    """
    with store.writes.begin() as session:
        member = session.get(Member, member_id)
        if member is None:
            raise LinkError(f"no member {member_id}")
        while member.merged_into_id is not None:
            member = session.get_one(Member, member.merged_into_id)
        existing = session.scalar(
            select(Identity.account)
            .where(Identity.member_id == member.id, Identity.platform == SOURCE)
            .order_by(Identity.id)
            .limit(1)
        )
        if existing is not None:
            return existing
        account = member_account(member.id)
        insert_ignoring_conflict(
            session,
            Identity,
            {"platform": SOURCE, "account": account, "member_id": member.id, "home_member_id": member.id},
            ["platform", "account"],
        )
        return account


def member_of_account(session: Session, account: str) -> int | None:
    """The (surviving) member behind a web account, or ``None`` if no such account exists."""
    member_id = session.scalar(
        select(Identity.member_id).where(Identity.platform == SOURCE, Identity.account == account)
    )
    while member_id is not None:
        merged = session.scalar(select(Member.merged_into_id).where(Member.id == member_id))
        if merged is None:
            return member_id
        member_id = merged
    return None


def record_click(
    session: Session, link: TrackedLink, *, outcome: str, at: datetime, **fields: str | int | None
) -> None:
    session.add(LinkClick(link_code=link.code, clicked_at=at, outcome=outcome, **fields))


@dataclass(frozen=True)
class CampaignCount:
    campaign: str
    links: int
    fetches: int
    credited: int
    repeats: int
    anonymous: int
    automated: int
    #: Fetches whose member token was altered, expired or signed by another server.
    bad_tokens: int = 0


def campaign_counts(session: Session) -> list[CampaignCount]:
    """Fetches of tracked links by campaign and outcome, for the operator page and CLI."""
    rows = session.execute(
        select(TrackedLink.campaign, LinkClick.outcome, func.count())
        .join(TrackedLink, TrackedLink.code == LinkClick.link_code)
        .group_by(TrackedLink.campaign, LinkClick.outcome)
    ).all()
    links = {
        campaign: int(count)
        for campaign, count in session.execute(
            select(TrackedLink.campaign, func.count()).group_by(TrackedLink.campaign)
        )
    }
    by: dict[str, dict[str, int]] = {campaign: {} for campaign in links}
    for campaign, outcome, count in rows:
        by.setdefault(campaign, {})[outcome] = int(count)
    return [
        CampaignCount(
            campaign=campaign,
            links=int(links.get(campaign, 0)),
            fetches=sum(counts.values()),
            credited=counts.get("credited", 0),
            repeats=counts.get("repeat", 0),
            anonymous=counts.get("anonymous", 0),
            automated=sum(n for outcome, n in counts.items() if outcome in ("bot", "head", "prefetch")),
            bad_tokens=counts.get("bad_token", 0),
        )
        for campaign, counts in sorted(by.items())
    ]
