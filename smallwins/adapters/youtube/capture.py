"""The ``youtube`` source's capture task: poll the channels' videos for comments, within the quota.

Where it stands is kept in the store (``CursorStore``), so a restart neither re-reads everything
nor misses a comment:

- ``channel:UC...``: the uploads playlist, the videos followed (published, last read, status, a
  read under way) and the newest uploads seen, so only new uploads are listed next time.
- ``video:ID``: every comment seen (its ``updatedAt``, author, thread, whether its likes already
  approved it, whether it is an owner's endorsing reply), the reply count per thread when its
  replies were last read in full, and a read under way: the next page token and the comments
  seen so far. A read stopped by the quota, an error or a restart continues from that page.
- ``quota``: the units spent today (see :mod:`smallwins.adapters.youtube.quota`).

Each video is read whole (``commentThreads.list`` page by page, ``comments.list`` for threads
whose replies changed and are not all embedded); comments known before but absent from a
complete read were deleted, and are retracted. Recent videos are read every
``recent_poll_seconds``, older ones every ``old_poll_seconds``, new uploads looked for every
``uploads_poll_seconds``. The cursor moves only after the runtime took a page's events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import structlog

from smallwins.adapters.youtube import normalize as yt
from smallwins.adapters.youtube.api import ApiFailure, InvalidPageToken, Sleep, Unavailable, YouTubeApi
from smallwins.adapters.youtube.quota import QuotaExhausted, QuotaLedger
from smallwins.adapters.youtube.settings import YouTubeSettings
from smallwins.adapters.youtube.state import ChannelState, VideoInfo, VideoState, parse_time
from smallwins.core.config import ConfigError, resolve_secret
from smallwins.core.contract import EventSink, PluginContext
from smallwins.core.cursors import CursorStore
from smallwins.core.events import Event, InvalidEvent

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]

#: Items per ``playlistItems.list`` page (the API's maximum).
PLAYLIST_PAGE = 50


def listing(resource: str, params: dict[str, Any]) -> Callable[[Any], Any]:
    """``client.RESOURCE().list(**params)``, built when the call is made."""
    return lambda client: getattr(client, resource)().list(**params)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Stats:
    """What this poller did (logged per round; tests and ``smallwins youtube`` read it)."""

    rounds: int = 0
    videos_read: int = 0
    pages: int = 0
    events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    quota_pauses: int = 0


class Poller:
    """Reads the configured channels' comments into events, on a schedule the quota can pay for."""

    def __init__(
        self,
        settings: YouTubeSettings,
        api: YouTubeApi,
        cursors: CursorStore,
        *,
        clock: Clock = _now,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.settings = settings
        self.api = api
        self.ledger = api.ledger
        self.cursors = cursors
        self.clock = clock
        self.sleep = sleep
        self.stats = Stats()
        self.channels: dict[str, ChannelState] = {}

    @classmethod
    def from_context(cls, context: PluginContext, *, clock: Clock = _now, sleep: Sleep = anyio.sleep) -> Poller:
        settings = context.settings
        assert isinstance(settings, YouTubeSettings)
        if not settings.channels:
            raise ConfigError(
                f"setting 'plugins.{context.plugin}.channels' is empty: name at least one channel id (UC...)"
            )
        key = resolve_secret(settings.api_key_env, setting=f"plugins.{context.plugin}.api_key_env")
        ledger = QuotaLedger(context.cursors, settings.daily_quota, clock=clock).load()
        api = YouTubeApi(settings, api_key=key, ledger=ledger, sleep=sleep)
        return cls(settings, api, context.cursors, clock=clock, sleep=sleep)

    async def _thread(self, function: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(function, *args)

    async def load(self) -> None:
        for channel in self.settings.channels:
            saved = await self._thread(self.cursors.get, f"channel:{channel}")
            self.channels[channel] = ChannelState.of(channel, saved)

    async def _save_channel(self, channel: ChannelState) -> None:
        await self._thread(self.cursors.set, channel.key, channel.to_json())

    async def _save_video(self, state: VideoState) -> None:
        await self._thread(self.cursors.set, state.key, state.to_json())

    # the loop -------------------------------------------------------------------------------------
    async def run(self, sink: EventSink) -> None:
        """Until cancelled: look for uploads, read what is due, sleep until the next thing is due.
        Out of quota, it sleeps until Google's reset (midnight Pacific) and goes on from its cursors."""
        await self.load()
        while True:
            try:
                await self.poll_once(sink)
            except QuotaExhausted as exc:
                self.stats.quota_pauses += 1
                log.warning("youtube.quota_paused", reason=exc.why, resume_at=exc.resume_at.isoformat(),
                            **self.ledger.report())  # fmt: skip
                await self.sleep_until(exc.resume_at)
                continue
            await self.sleep_until(self.next_due())

    async def sleep_until(self, moment: datetime) -> None:
        await self.sleep(max((moment - self.clock()).total_seconds(), 0.0))

    async def poll_once(
        self,
        sink: EventSink,
        *,
        videos: list[tuple[str, str]] | None = None,
        on_video: Callable[[str, str], Awaitable[None] | None] | None = None,
    ) -> int:
        """One round: uploads that are due, then the videos that are due (or ``videos``: pairs of
        channel and video, read whatever the schedule says). Returns the videos read."""
        if not self.channels:
            await self.load()
        self.stats.rounds += 1
        if videos is None:
            for channel in self.channels.values():
                if self._uploads_due(channel):
                    await self.refresh_uploads(channel)
            videos = self.due_videos()
        for channel_id, video in videos:
            await self.read_video(self.channels[channel_id], video, sink)
            if on_video is not None:
                done = on_video(channel_id, video)
                if done is not None:
                    await done
        report = self.ledger.report()
        log.info("youtube.polled", videos=len(videos), units_used=report["used"], units_left=report["left"],
                 budget=report["budget"], resets_at=report["resets_at"], events=self.stats.events)  # fmt: skip
        return len(videos)

    # the schedule ---------------------------------------------------------------------------------
    def interval(self, info: VideoInfo, now: datetime) -> float:
        if info.status == "ok" and now - info.published < timedelta(days=self.settings.recent_days):
            return self.settings.recent_poll_seconds
        return self.settings.old_poll_seconds

    def _uploads_due(self, channel: ChannelState) -> bool:
        return channel.checked is None or self.clock() - channel.checked >= timedelta(
            seconds=self.settings.uploads_poll_seconds
        )

    def due_at(self, info: VideoInfo) -> datetime:
        if info.pending or info.scanned is None:
            return datetime.min.replace(tzinfo=UTC)
        return info.scanned + timedelta(seconds=self.interval(info, self.clock()))

    def due_videos(self) -> list[tuple[str, str]]:
        """Videos to read now: unfinished and never-read ones first, then the newest."""
        now = self.clock()
        due = [
            (self.due_at(info), -info.published.timestamp(), channel.id, video)
            for channel in self.channels.values()
            for video, info in channel.videos.items()
            if self.due_at(info) <= now
        ]
        return [(channel, video) for _, _, channel, video in sorted(due)]

    def next_due(self) -> datetime:
        moments = [
            (channel.checked or self.clock()) + timedelta(seconds=self.settings.uploads_poll_seconds)
            for channel in self.channels.values()
        ]
        moments += [self.due_at(info) for channel in self.channels.values() for info in channel.videos.values()]
        return min(moments, default=self.clock() + timedelta(seconds=self.settings.uploads_poll_seconds))

    # uploads --------------------------------------------------------------------------------------
    async def refresh_uploads(self, channel: ChannelState, *, want: int | None = None) -> list[str]:
        """New uploads become followed videos. The first time (or with ``want``) the ``want``
        newest are followed: the catch-up. Returns the videos newly followed."""
        first = channel.checked is None
        want = self.settings.catch_up_videos if want is None and first else (want or 0)
        try:
            if channel.uploads is None:
                found = await self.api.call(
                    "channels.list", lambda c: c.channels().list(part="contentDetails", id=channel.id, maxResults=1)
                )
                items = found.get("items") or []
                if not items:
                    raise Unavailable(404, "channelNotFound", f"no channel {channel.id}")
                channel.uploads = items[0]["contentDetails"]["relatedPlaylists"]["uploads"]
            added = await self._list_uploads(channel, first=first, want=want)
            channel.status = "ok"
        except (Unavailable, ApiFailure) as exc:
            channel.status = getattr(exc, "reason", "failed")
            channel.checked = self.clock()
            self._skipped(channel.status)
            log.warning("youtube.channel_skipped", channel=channel.id, problem=str(exc))
            await self._save_channel(channel)
            return []
        channel.checked = self.clock()
        self._prune(channel)
        await self._save_channel(channel)
        if added:
            log.info("youtube.videos_followed", channel=channel.id, videos=added, catch_up=first)
        return added

    async def _list_uploads(self, channel: ChannelState, *, first: bool, want: int) -> list[str]:
        known = set(channel.known) | set(channel.videos)
        added: list[str] = []
        newest: list[str] = []
        token: str | None = None
        index = 0
        limit = max(want, self.settings.max_videos)
        while True:
            params: dict[str, Any] = {"part": "contentDetails", "playlistId": channel.uploads,
                                      "maxResults": PLAYLIST_PAGE}  # fmt: skip
            if token:
                params["pageToken"] = token
            page = await self.api.call("playlistItems.list", listing("playlistItems", params))
            stop = False
            for item in page.get("items", []):
                details = item.get("contentDetails") or {}
                video, published = details.get("videoId"), parse_time(details.get("videoPublishedAt"))
                if not isinstance(video, str):
                    continue
                if len(newest) < PLAYLIST_PAGE:
                    newest.append(video)
                if (first and index >= want) or (not first and video in known and index >= want) or index >= limit:
                    stop = True
                    break
                index += 1
                if published is None or video in channel.videos:  # private or deleted: nothing to read
                    continue
                channel.videos[video] = VideoInfo(published)
                added.append(video)
            token = page.get("nextPageToken")
            if stop or not token:
                break
        channel.known = newest + [v for v in channel.known if v not in newest][: PLAYLIST_PAGE - len(newest)]
        return added

    def _prune(self, channel: ChannelState) -> None:
        """Follow only the ``max_videos`` newest videos."""
        ordered = sorted(channel.videos.items(), key=lambda item: item[1].published, reverse=True)
        for video, _ in ordered[self.settings.max_videos :]:
            del channel.videos[video]

    def _skipped(self, reason: str) -> None:
        self.stats.skipped[reason] = self.stats.skipped.get(reason, 0) + 1

    # one video ------------------------------------------------------------------------------------
    async def read_video(self, channel: ChannelState, video: str, sink: EventSink) -> None:
        """Read one video's comments from its cursor on; skip it (keeping the cursor) when it is
        gone or has comments disabled; quota exhaustion propagates with the cursor saved."""
        info = channel.videos[video]
        if not info.pending:
            info.pending = True
            await self._save_channel(channel)
        state = VideoState.of(video, await self._thread(self.cursors.get, f"video:{video}"))
        try:
            await self._read(channel, state, sink)
            info.status = "ok"
            info.pending = False
            self.stats.videos_read += 1
        except Unavailable as exc:
            info.status = exc.reason
            info.pending = False
            self._skipped(exc.reason)
            log.warning("youtube.video_skipped", video=video, channel=channel.id, status=exc.status,
                        reason=exc.reason, comments_kept=len(state.comments))  # fmt: skip
        except ApiFailure as exc:
            self.stats.failures += 1
            log.warning("youtube.video_failed", video=video, channel=channel.id, problem=str(exc),
                        resumes_from_page=bool(state.page))  # fmt: skip
        info.scanned = self.clock()
        await self._save_channel(channel)

    async def _read(self, channel: ChannelState, state: VideoState, sink: EventSink) -> None:
        seen = set(state.seen)
        restarted = False
        while True:
            params: dict[str, Any] = {"part": "snippet,replies", "videoId": state.id,
                                      "maxResults": self.settings.page_size, "textFormat": "plainText"}  # fmt: skip
            if state.page:
                params["pageToken"] = state.page
            try:
                page = await self.api.call("commentThreads.list", listing("commentThreads", params))
            except InvalidPageToken:
                if not state.page or restarted:
                    raise
                log.info("youtube.page_token_expired", video=state.id, action="reading the video from the start")
                state.page, seen, restarted = None, set(), True
                continue
            self.stats.pages += 1
            events: list[Event] = []
            for thread in page.get("items", []):
                events += await self._thread_events(channel, state, thread, seen)
            await self._deliver(sink, events)
            state.page = page.get("nextPageToken") or None
            state.seen = sorted(seen) if state.page else []
            if not state.page:
                break
            await self._save_video(state)
        await self._deliver(sink, self._deletions(channel, state, seen))
        await self._save_video(state)

    async def _deliver(self, sink: EventSink, events: list[Event]) -> None:
        unique = list({event.key: event for event in events}.values())
        self.stats.events += len(unique)
        if unique:
            await sink(unique)

    async def _thread_events(
        self, channel: ChannelState, state: VideoState, thread: dict[str, Any], seen: set[str]
    ) -> list[Event]:
        snippet = thread.get("snippet") or {}
        thread_id = str(thread.get("id", ""))
        try:
            top = yt.comment_of(snippet.get("topLevelComment") or {}, channel=channel.id, video=state.id)
        except InvalidEvent as exc:
            log.warning("youtube.unreadable_comment", video=state.id, thread=thread_id, problem=str(exc))
            return []
        events: list[Event] = []
        seen.add(thread_id)
        if top is not None:
            events += self._guarded(state, top, None)
        total = int(snippet.get("totalReplyCount") or 0)
        embedded = list((thread.get("replies") or {}).get("comments") or [])
        complete = total <= len(embedded)
        resources = embedded
        if not complete and state.reply_counts.get(thread_id) != total:
            resources, complete = await self._all_replies(thread_id), True
        if complete:
            state.reply_counts[thread_id] = total
        else:  # unchanged count, not all embedded: the replies known stand as they were
            seen.update(cid for cid, entry in state.comments.items() if entry.get("p") == thread_id)
        replies: list[yt.Comment] = []
        for resource in resources:
            try:
                reply = yt.comment_of(resource, channel=channel.id, video=state.id)
            except InvalidEvent as exc:
                log.warning("youtube.unreadable_comment", video=state.id, thread=thread_id, problem=str(exc))
                continue
            if reply is not None:
                replies.append(reply)
        replies.sort(key=lambda c: (c.published, c.id))
        for position, reply in enumerate(replies):
            seen.add(reply.id)
            events += self._guarded(state, reply, yt.addressee(reply, top, replies[:position]))
        return events

    def _guarded(self, state: VideoState, comment: yt.Comment, answers: yt.Comment | None) -> list[Event]:
        """A comment that gives no valid event (a clock far off, an odd field) is logged and skipped."""
        try:
            return self._comment_events(state, comment, answers)
        except ValueError as exc:  # pydantic's ValidationError
            log.warning(
                "youtube.unusable_comment", video=state.id, comment=comment.id, problem=str(exc).splitlines()[0]
            )
            return []

    async def _all_replies(self, parent: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"part": "snippet", "parentId": parent, "maxResults": 100,
                                      "textFormat": "plainText"}  # fmt: skip
            if token:
                params["pageToken"] = token
            page = await self.api.call("comments.list", listing("comments", params))
            found += page.get("items", [])
            token = page.get("nextPageToken")
            if not token:
                return found

    def _comment_events(self, state: VideoState, comment: yt.Comment, answers: yt.Comment | None) -> list[Event]:
        known = state.comments.get(comment.id)
        updated = comment.updated.isoformat()
        events: list[Event] = []
        if known is None:
            events += yt.posted(comment, answers=answers, codes=self.settings.link_codes)
            entry: dict[str, Any] = {"u": updated, "a": comment.author}
            if comment.parent:
                entry["p"] = comment.parent
            if comment.by_owner and answers is not None and not answers.by_owner:
                entry["e"] = 1
        else:
            entry = dict(known)
            if known.get("u") != updated:
                events += yt.edited(comment, codes=self.settings.link_codes)
                entry["u"] = updated
        if not entry.get("l"):
            approval = yt.upvoted(comment, threshold=self.settings.like_threshold, seen_at=self.clock(),
                                  window_days=self.settings.like_window_days)  # fmt: skip
            if approval is not None:
                events.append(approval)
                entry["l"] = 1
        state.comments[comment.id] = entry
        return events

    def _deletions(self, channel: ChannelState, state: VideoState, seen: set[str]) -> list[Event]:
        """Comments known before but not met by a complete read: deleted (or held back by YouTube)."""
        now = self.clock()
        events: list[Event] = []
        for comment_id in [c for c in state.comments if c not in seen]:
            entry = state.comments.pop(comment_id)
            author = str(entry.get("a"))
            events.append(yt.deleted(comment_id, author, at=now, owner=author == channel.id))
            if entry.get("e"):
                events.append(yt.withdrawn(comment_id, channel.id, at=now))
            state.reply_counts.pop(comment_id, None)
        if events:
            log.info("youtube.comments_gone", video=state.id, retracted=len(events))
        return events


async def capture(context: PluginContext, sink: EventSink) -> None:
    """The source's capture task (``smallwins run``)."""
    await Poller.from_context(context).run(sink)
