"""What the ``youtube`` source keeps in its cursors, as JSON: the shapes, not the polling.

Kept apart from the poller so ``smallwins youtube status`` reads them without Google's client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass
class VideoInfo:
    """A followed video as the schedule sees it (kept in its channel's cursor)."""

    published: datetime
    scanned: datetime | None = None
    status: str = "ok"  # ok, or why it was skipped: commentsDisabled, videoNotFound, failed...
    pending: bool = False  # a read stopped part-way: continue it first

    def to_json(self) -> dict[str, Any]:
        return {"published": iso(self.published), "scanned": iso(self.scanned), "status": self.status,
                "pending": self.pending}  # fmt: skip

    @classmethod
    def of(cls, value: dict[str, Any]) -> VideoInfo:
        published = parse_time(value.get("published")) or datetime(1970, 1, 2, tzinfo=UTC)
        scanned = parse_time(value.get("scanned"))
        return cls(published, scanned, str(value.get("status", "ok")), bool(value.get("pending")))


@dataclass
class ChannelState:
    """One configured channel: its uploads playlist, the videos followed, the newest uploads seen."""

    id: str
    uploads: str | None = None
    checked: datetime | None = None
    status: str = "ok"
    videos: dict[str, VideoInfo] = field(default_factory=dict)
    known: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"channel:{self.id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "uploads": self.uploads,
            "checked": iso(self.checked),
            "status": self.status,
            "videos": {vid: info.to_json() for vid, info in self.videos.items()},
            "known": self.known,
        }

    @classmethod
    def of(cls, channel: str, value: dict[str, Any] | None) -> ChannelState:
        value = value or {}
        return cls(
            id=channel,
            uploads=value.get("uploads"),
            checked=parse_time(value.get("checked")),
            status=str(value.get("status", "ok")),
            videos={vid: VideoInfo.of(info) for vid, info in dict(value.get("videos", {})).items()},
            known=list(value.get("known", [])),
        )


@dataclass
class VideoState:
    """What is known of one video's comments (its ``video:ID`` cursor)."""

    id: str
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    reply_counts: dict[str, int] = field(default_factory=dict)
    page: str | None = None  # next page of a read under way
    seen: list[str] = field(default_factory=list)  # comments that read has met so far

    @property
    def key(self) -> str:
        return f"video:{self.id}"

    def to_json(self) -> dict[str, Any]:
        scan = {"page": self.page, "seen": self.seen} if self.page else None
        return {"comments": self.comments, "reply_counts": self.reply_counts, "scan": scan}

    @classmethod
    def of(cls, video: str, value: dict[str, Any] | None) -> VideoState:
        value = value or {}
        scan = value.get("scan") or {}
        return cls(
            id=video,
            comments={k: dict(v) for k, v in dict(value.get("comments", {})).items()},
            reply_counts={k: int(v) for k, v in dict(value.get("reply_counts", {})).items()},
            page=scan.get("page"),
            seen=list(scan.get("seen", [])),
        )
