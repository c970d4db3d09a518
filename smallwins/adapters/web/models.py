"""Tables of the web adapter: tracked links and every fetch of one (migration 0004).

A click row is kept for every fetch, credited or not (bots, HEAD, anonymous visitors, repeats),
so campaign counts are honest; the credit itself is an event whose id names the member, link
and period, so the core's idempotent ingest gives one credit per member per link per period.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from smallwins.core.store import Base, BigId, UtcDateTime, utcnow


class TrackedLink(Base):
    """A short link ``/r/{code}`` that redirects to one registered target and credits an event."""

    __tablename__ = "web_links"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_url: Mapped[str] = mapped_column(Text)
    campaign: Mapped[str] = mapped_column(String(120), index=True)
    event_type: Mapped[str] = mapped_column(String(80))
    #: ``day``, ``week``, ``month`` or ``ever``: how often one member may be credited.
    credit_period: Mapped[str] = mapped_column(String(8))
    note: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LinkClick(Base):
    """One fetch of a tracked link and what came of it (``credited``, ``repeat``, ``bot``...)."""

    __tablename__ = "web_clicks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    link_code: Mapped[str] = mapped_column(ForeignKey("web_links.code"))
    clicked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))
    account: Mapped[str | None] = mapped_column(String(320))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[str | None] = mapped_column(String(200))
    utm_source: Mapped[str | None] = mapped_column(String(200))
    utm_medium: Mapped[str | None] = mapped_column(String(200))
    utm_campaign: Mapped[str | None] = mapped_column(String(200))
    utm_term: Mapped[str | None] = mapped_column(String(200))
    utm_content: Mapped[str | None] = mapped_column(String(200))
    referrer: Mapped[str | None] = mapped_column(String(500))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (Index("ix_web_clicks_link_time", "link_code", "clicked_at"),)
