"""Pure functions from the Data API's comment resources (as ``commentThreads.list`` and
``comments.list`` return them) to normalized events.

- A member's comment or reply is ``comment.posted``; the commenter's channel id is the identity.
  A reply names whom it answers in ``data.reply_to`` (the thread's comment, or the earlier reply
  whose author it @-mentions first, as YouTube writes replies to replies).
- The channel owner's reply to a member is a creator endorsement: ``comment.endorsed`` naming
  that comment in ``data.target`` (an approval). The Data API does not expose the creator's
  "heart" (no field of the comment resource says so), so a reply is the endorsement it can see.
- A comment with ``like_threshold`` likes or more is approved by peers: ``comment.upvoted``
  naming it. Likes are anonymous and undated, so it comes from the owner's channel (staff, as the
  community's voice) and is dated when seen, at most ``like_window_days`` after the comment.
- An edit is ``comment.edited`` (kept in the history; the comment still counts); a deletion is
  ``comment.deleted`` retracting it (``data.retracts``), and a deleted owner reply withdraws its
  endorsement. The owner's own events carry ``data.staff``: the creator holds no standing.
- A link code in a comment (``ABCD-EFGH``) links the channel to a member.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from smallwins.core.events import Event, InvalidEvent
from smallwins.core.identity import CODE_ALPHABET

SOURCE = "youtube"
POSTED = "comment.posted"
EDITED = "comment.edited"
DELETED = "comment.deleted"
ENDORSED = "comment.endorsed"
WITHDRAWN = "comment.endorsement_withdrawn"
UPVOTED = "comment.upvoted"
LINK = "link.code_presented"
EVENT_TYPES = frozenset({POSTED, EDITED, DELETED, ENDORSED, WITHDRAWN, UPVOTED})

LINK_CODE = re.compile(rf"(?<![A-Za-z0-9])([{CODE_ALPHABET}]{{4}}-[{CODE_ALPHABET}]{{4}})(?![A-Za-z0-9-])")
MENTION = re.compile(r"^\s*@([^\s]+)")


@dataclass(frozen=True)
class Comment:
    """The facts of one ``youtube#comment`` that count."""

    id: str
    video: str
    channel: str  # the channel the video belongs to (its owner)
    author: str  # the commenter's channel id
    name: str
    text: str
    published: datetime
    updated: datetime
    likes: int
    parent: str | None = None  # the thread's top-level comment id, for a reply

    @property
    def key(self) -> str:
        return f"{SOURCE}:{self.id}"

    @property
    def by_owner(self) -> bool:
        return self.author == self.channel

    @property
    def proof(self) -> str:
        return f"https://www.youtube.com/watch?v={self.video}&lc={self.id}"

    @property
    def handle(self) -> str:
        """The display name without its ``@`` and case, as a mention writes it."""
        return self.name.lstrip("@").casefold()


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(f"comment {what} is missing")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"comment {what} '{value}' is not an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def comment_of(resource: Mapping[str, Any], *, channel: str | None = None, video: str | None = None) -> Comment | None:
    """A ``youtube#comment`` resource; ``None`` when it names no author channel (nobody to credit)."""
    if not isinstance(resource, Mapping) or not isinstance(resource.get("id"), str):
        raise InvalidEvent("a comment resource needs an 'id'")
    snippet = resource.get("snippet")
    if not isinstance(snippet, Mapping):
        raise InvalidEvent(f"comment {resource['id']} has no 'snippet'")
    author = snippet.get("authorChannelId")
    author_id = author.get("value") if isinstance(author, Mapping) else None
    if not isinstance(author_id, str) or not author_id:
        return None
    owner = channel or snippet.get("channelId")
    video_id = video or snippet.get("videoId")
    if not isinstance(owner, str) or not isinstance(video_id, str):
        raise InvalidEvent(f"comment {resource['id']} names no channelId or videoId")
    published = parse_time(snippet.get("publishedAt"), "publishedAt")
    text = snippet.get("textDisplay") or snippet.get("textOriginal") or ""  # textOriginal: the author's eyes only
    likes = snippet.get("likeCount")
    return Comment(
        id=resource["id"],
        video=video_id,
        channel=owner,
        author=author_id,
        name=str(snippet.get("authorDisplayName") or author_id)[:100],
        text=str(text),
        published=published,
        updated=parse_time(snippet.get("updatedAt") or snippet.get("publishedAt"), "updatedAt"),
        likes=likes if isinstance(likes, int) and likes >= 0 else 0,
        parent=snippet.get("parentId") if isinstance(snippet.get("parentId"), str) else None,
    )


def addressee(reply: Comment, top: Comment | None, earlier: Sequence[Comment]) -> Comment | None:
    """Whom a reply answers: the earlier reply whose author it @-mentions first (latest such
    reply), else the thread's top-level comment."""
    mention = MENTION.match(reply.text)
    if mention:
        handle = mention.group(1).rstrip(",:;.!?").casefold()
        for other in reversed(earlier):
            if other.id != reply.id and other.author != reply.author and other.handle == handle:
                return other
    return top


def link_codes(text: str) -> list[str]:
    found: list[str] = []
    for code in LINK_CODE.findall(text.upper()):
        if code not in found:
            found.append(code)
    return found[:3]


def _base(comment: Comment) -> dict[str, Any]:
    data: dict[str, Any] = {"display_name": comment.name, "video": comment.video}
    if comment.by_owner:
        data["staff"] = True
    return data


def code_events(comment: Comment, *, at: datetime | None = None) -> list[Event]:
    """``link.code_presented`` for each code in the text; one id per comment and code."""
    return [
        Event(
            id=f"{comment.id}:link:{code}",
            source=SOURCE,
            type=LINK,
            subject=comment.author,
            time=at or comment.published,
            proof=comment.proof,
            data={"code": code, "display_name": comment.name},
        )
        for code in link_codes(comment.text)
    ]


def posted(comment: Comment, *, answers: Comment | None = None, codes: bool = True) -> list[Event]:
    """A new comment: ``comment.posted`` (and link codes); an owner's reply to a member also
    endorses that member's comment."""
    data = _base(comment)
    if comment.parent:
        data["thread"] = f"{SOURCE}:{comment.parent}"
    if answers is not None:
        data["reply_to"] = answers.key
    events = [
        Event(
            id=comment.id,
            source=SOURCE,
            type=POSTED,
            subject=comment.author,
            time=comment.published,
            proof=comment.proof,
            data=data,
        )
    ]
    if codes and not comment.by_owner:
        events += code_events(comment)
    if comment.by_owner and answers is not None and not answers.by_owner:
        events.append(endorsement(comment, answers))
    return events


def endorsement(reply: Comment, target: Comment) -> Event:
    return Event(
        id=f"{reply.id}:endorses",
        source=SOURCE,
        type=ENDORSED,
        subject=reply.author,
        time=reply.published,
        proof=reply.proof,
        data={"target": target.key, "display_name": reply.name, "via": "owner_reply", "staff": True},
    )


def edited(comment: Comment, *, codes: bool = True) -> list[Event]:
    """An edit seen (its ``updatedAt`` moved): recorded; a link code it added links."""
    stamp = comment.updated.strftime("%Y%m%dT%H%M%S")
    events = [
        Event(
            id=f"{comment.id}:edit:{stamp}",
            source=SOURCE,
            type=EDITED,
            subject=comment.author,
            time=comment.updated,
            proof=comment.proof,
            data=_base(comment) | {"edits": comment.key},
        )
    ]
    if codes and not comment.by_owner:
        events += code_events(comment, at=comment.updated)
    return events


def upvoted(comment: Comment, *, threshold: int, seen_at: datetime, window_days: float) -> Event | None:
    """Peer approval once a member's comment has ``threshold`` likes; ``None`` below it."""
    if comment.by_owner or comment.likes < threshold:
        return None
    when = min(seen_at, comment.published + timedelta(days=window_days))
    return Event(
        id=f"{comment.id}:likes",
        source=SOURCE,
        type=UPVOTED,
        subject=comment.channel,
        time=max(when, comment.published),
        proof=comment.proof,
        data={"target": comment.key, "likes": comment.likes, "threshold": threshold, "via": "likes", "staff": True},
    )


def deleted(comment_id: str, author: str, *, at: datetime, owner: bool = False) -> Event:
    data: dict[str, Any] = {"retracts": f"{SOURCE}:{comment_id}"}
    if owner:
        data["staff"] = True
    return Event(id=f"{comment_id}:deleted", source=SOURCE, type=DELETED, subject=author, time=at, data=data)


def withdrawn(reply_id: str, owner: str, *, at: datetime) -> Event:
    """A deleted owner reply takes its endorsement back."""
    return Event(
        id=f"{reply_id}:endorses:deleted",
        source=SOURCE,
        type=WITHDRAWN,
        subject=owner,
        time=at,
        data={"retracts": f"{SOURCE}:{reply_id}:endorses", "staff": True},
    )


def thread_events(
    thread: Mapping[str, Any],
    replies: Sequence[Mapping[str, Any]] | None = None,
    *,
    like_threshold: int = 10,
    like_window_days: float = 28,
    seen_at: datetime | None = None,
    codes: bool = True,
) -> list[Event]:
    """Everything a ``youtube#commentThread`` gives when seen for the first time: its comment,
    its replies (``replies`` from ``comments.list``, else the ones embedded in the thread),
    endorsements, like approvals and link codes."""
    snippet = thread.get("snippet")
    if not isinstance(snippet, Mapping) or not isinstance(snippet.get("topLevelComment"), Mapping):
        raise InvalidEvent("a commentThread needs snippet.topLevelComment")
    channel, video = snippet.get("channelId"), snippet.get("videoId")
    if not isinstance(channel, str) or not isinstance(video, str):
        raise InvalidEvent("a commentThread needs snippet.channelId and snippet.videoId")
    now = seen_at or datetime.now(UTC)
    top = comment_of(snippet["topLevelComment"], channel=channel, video=video)
    if replies is None:
        embedded = thread.get("replies")
        replies = embedded.get("comments", []) if isinstance(embedded, Mapping) else []
    answers = [c for r in replies if (c := comment_of(r, channel=channel, video=video)) is not None]
    answers.sort(key=lambda c: (c.published, c.id))
    events: list[Event] = []
    everyone = ([top] if top else []) + answers
    for position, comment in enumerate(everyone):
        earlier = answers[: position - (1 if top else 0)]
        answering = None if comment is top else addressee(comment, top, earlier)
        events += posted(comment, answers=answering, codes=codes)
        approval = upvoted(comment, threshold=like_threshold, seen_at=now, window_days=like_window_days)
        if approval is not None:
            events.append(approval)
    return events


def normalize(payload: Mapping[str, Any]) -> list[Event]:
    """A recorded payload (``smallwins ingest --source youtube``): a ``youtube#commentThread``
    resource as the API returned it, or ``{"thread": <commentThread>, "replies": [<comment>...],
    "like_threshold": 10, "seen_at": "<ISO time>"}``."""
    if payload.get("kind") == "youtube#commentThread":
        return thread_events(payload)
    thread = payload.get("thread")
    if not isinstance(thread, Mapping):
        raise InvalidEvent("payload must be a youtube#commentThread resource or have 'thread': one")
    replies = payload.get("replies")
    if replies is not None and not isinstance(replies, list):
        raise InvalidEvent("'replies' must be a list of youtube#comment resources")
    threshold = payload.get("like_threshold", 10)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise InvalidEvent("'like_threshold' must be a whole number of at least 1")
    seen = payload.get("seen_at")
    return thread_events(
        thread,
        replies,
        like_threshold=threshold,
        seen_at=parse_time(seen, "seen_at") if seen is not None else None,
    )
