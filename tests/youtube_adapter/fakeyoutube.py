"""A local stand-in for the YouTube Data API v3 on 127.0.0.1: the real paths and query
parameters googleapiclient sends, answered in the API's JSON shapes (list responses with
``nextPageToken`` and ``pageInfo``, ``youtube#comment`` resources, Google error bodies).

The tests change its world (videos, comments, likes, edits, deletions) and its failure modes
(quotaExceeded, 5xx), and read back every request it received.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY = "test-key-not-secret"
PREFIX = "/youtube/v3/"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def google_error(
    code: int,
    reason: str,
    message: str,
    *,
    domain: str = "youtube.commentThread",
    status: str = "",
    location: str | None = None,
) -> dict[str, Any]:
    """The shape of a Google API error body (``error.errors[].reason`` is the machine reason)."""
    detail: dict[str, Any] = {"message": message, "domain": domain, "reason": reason}
    if location:
        detail |= {"location": location, "locationType": "parameter"}
    body: dict[str, Any] = {"code": code, "message": message, "errors": [detail]}
    if status:
        body["status"] = status
    return {"error": body}


QUOTA = google_error(
    403,
    "quotaExceeded",
    "The request cannot be completed because you have exceeded your "
    '<a href="/youtube/v3/getting-started#quota">quota</a>.',
    domain="youtube.quota",
)
DISABLED = google_error(
    403,
    "commentsDisabled",
    'The video identified by the <code><a href="/youtube/v3/docs/commentThreads/list#videoId">videoId</a></code> '
    "parameter has disabled comments.",
    location="videoId",
)
NOT_FOUND = google_error(
    404,
    "videoNotFound",
    'The video identified by the <code><a href="/youtube/v3/docs/commentThreads/list#videoId">videoId</a></code> '
    "parameter could not be found.",
    location="videoId",
)
UNAVAILABLE = google_error(
    503, "backendError", "The service is currently unavailable.", domain="global", status="UNAVAILABLE"
)
BAD_KEY = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "errors": [
            {"message": "API key not valid. Please pass a valid API key.", "domain": "global", "reason": "badRequest"}
        ],
        "status": "INVALID_ARGUMENT",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
            }
        ],
    }
}
BAD_TOKEN = google_error(400, "invalidPageToken", "The request specifies an invalid page token.", domain="global")


@dataclass
class FakeComment:
    id: str
    author: str
    name: str
    text: str
    published: datetime
    likes: int = 0
    updated: datetime | None = None

    def resource(self, *, channel: str, video: str, parent: str | None) -> dict[str, Any]:
        snippet: dict[str, Any] = {
            "channelId": channel,
            "textDisplay": self.text,
            "textOriginal": self.text,
            "authorDisplayName": self.name,
            "authorProfileImageUrl": f"https://yt3.ggpht.example/{self.author}=s48",
            "authorChannelUrl": f"http://www.youtube.com/@{self.name.lstrip('@')}",
            "authorChannelId": {"value": self.author},
            "canRate": True,
            "viewerRating": "none",
            "likeCount": self.likes,
            "publishedAt": stamp(self.published),
            "updatedAt": stamp(self.updated or self.published),
        }
        if parent:
            snippet["parentId"] = parent
        else:
            snippet["videoId"] = video
        return {"kind": "youtube#comment", "etag": f"etag-{self.id}", "id": self.id, "snippet": snippet}


@dataclass
class FakeThread:
    top: FakeComment
    replies: list[FakeComment] = field(default_factory=list)


@dataclass
class FakeVideo:
    id: str
    channel: str
    published: datetime
    threads: list[FakeThread] = field(default_factory=list)  # newest first, as order=time lists them
    state: str = "ok"  # ok, disabled, gone


@dataclass
class Request:
    path: str
    params: dict[str, str]

    @property
    def method(self) -> str:
        return self.path.removeprefix(PREFIX)


class FakeYouTube:
    """The world the server answers from, and what it was asked."""

    def __init__(self, *, embedded_replies: int = 2) -> None:
        self.lock = threading.Lock()
        self.channels: dict[str, list[str]] = {}  # channel -> video ids, newest first
        self.videos: dict[str, FakeVideo] = {}
        self.requests: list[Request] = []
        self.embedded_replies = embedded_replies
        self.quota_exceeded = False
        self.quota_after: int | None = None  # answer quotaExceeded once this many requests were served
        self.fail_next: list[int] = []  # statuses to answer the next requests with (5xx)
        self.expired_tokens: set[str] = set()
        self._server: ThreadingHTTPServer | None = None

    # the world ------------------------------------------------------------------------------------
    def add_video(self, channel: str, video: str, published: datetime) -> FakeVideo:
        with self.lock:
            self.channels.setdefault(channel, []).insert(0, video)
            self.videos[video] = FakeVideo(video, channel, published)
            return self.videos[video]

    def comment(self, video: str, comment: FakeComment, *, reply_to: str | None = None) -> FakeComment:
        with self.lock:
            threads = self.videos[video].threads
            if reply_to is None:
                threads.insert(0, FakeThread(comment))
            else:
                next(t for t in threads if t.top.id == reply_to).replies.append(comment)
            return comment

    def delete(self, video: str, comment_id: str) -> None:
        with self.lock:
            threads = self.videos[video].threads
            threads[:] = [t for t in threads if t.top.id != comment_id]
            for thread in threads:
                thread.replies[:] = [r for r in thread.replies if r.id != comment_id]

    def find(self, video: str, comment_id: str) -> FakeComment:
        for thread in self.videos[video].threads:
            for comment in [thread.top, *thread.replies]:
                if comment.id == comment_id:
                    return comment
        raise KeyError(comment_id)

    # what was asked -------------------------------------------------------------------------------
    def asked(self, method: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if method is None or r.method == method]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    # answering ------------------------------------------------------------------------------------
    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(Request(path, params))
            if params.get("key") != API_KEY:
                return 400, BAD_KEY
            if self.quota_after is not None and len(self.requests) > self.quota_after:
                self.quota_exceeded = True
            if self.quota_exceeded:
                return 403, QUOTA
            if self.fail_next:
                status = self.fail_next.pop(0)
                return status, UNAVAILABLE
            if params.get("pageToken") in self.expired_tokens:  # a real API would hand out a fresh token next
                self.expired_tokens.discard(params["pageToken"])
                return 400, BAD_TOKEN
            method = path.removeprefix(PREFIX)
            handler = {
                "channels": self._channels,
                "playlistItems": self._playlist_items,
                "commentThreads": self._comment_threads,
                "comments": self._comments,
            }.get(method)
            if handler is None:
                return 404, google_error(404, "notFound", f"no such method {method}", domain="global")
            return handler(params)

    @staticmethod
    def _page(
        kind: str,
        items: list[Any],
        params: dict[str, str],
        limit: int,
        *,
        token_pagination: bool = False,
        prefix: str = "",
    ) -> dict[str, Any]:
        size = min(int(params.get("maxResults", 20 if kind == "youtube#commentThreadListResponse" else 5)), limit)
        token = params.get("pageToken")
        start = int(token.rsplit("-", 1)[1]) if token else 0
        chunk = items[start : start + size]
        body: dict[str, Any] = {"kind": kind, "etag": f"etag-{prefix}-{start}"}
        if start + size < len(items):
            body["nextPageToken"] = f"{prefix}-{start + size}"
        body["pageInfo"] = {"totalResults": len(items), "resultsPerPage": size}
        body["items"] = chunk
        return body

    def _channels(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        items = [
            {
                "kind": "youtube#channel",
                "etag": f"etag-{cid}",
                "id": cid,
                "contentDetails": {"relatedPlaylists": {"likes": "", "uploads": "UU" + cid[2:]}},
            }
            for cid in params.get("id", "").split(",")
            if cid in self.channels
        ]
        body = {
            "kind": "youtube#channelListResponse",
            "etag": "etag-channels",
            "pageInfo": {"totalResults": len(items), "resultsPerPage": 5},
            "items": items,
        }
        return 200, body

    def _playlist_items(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        channel = "UC" + params.get("playlistId", "")[2:]
        if channel not in self.channels:
            return 404, google_error(
                404,
                "playlistNotFound",
                "The playlist could not be found.",
                domain="youtube.playlistItem",
                location="playlistId",
            )
        items = [
            {
                "kind": "youtube#playlistItem",
                "etag": f"etag-pl-{vid}",
                "id": f"PLI{vid}",
                "contentDetails": {"videoId": vid, "videoPublishedAt": stamp(self.videos[vid].published)},
            }
            for vid in self.channels[channel]
        ]
        return 200, self._page("youtube#playlistItemListResponse", items, params, 50, prefix="EAAaBlBUOkNB")

    def _comment_threads(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        video = self.videos.get(params.get("videoId", ""))
        if video is None or video.state == "gone":
            return 404, NOT_FOUND
        if video.state == "disabled":
            return 403, DISABLED
        items = []
        for thread in video.threads:
            resource: dict[str, Any] = {
                "kind": "youtube#commentThread",
                "etag": f"etag-t-{thread.top.id}",
                "id": thread.top.id,
                "snippet": {
                    "channelId": video.channel,
                    "videoId": video.id,
                    "topLevelComment": thread.top.resource(channel=video.channel, video=video.id, parent=None),
                    "canReply": True,
                    "totalReplyCount": len(thread.replies),
                    "isPublic": True,
                },
            }
            if "replies" in params.get("part", "") and thread.replies:
                shown = thread.replies[: self.embedded_replies]
                resource["replies"] = {
                    "comments": [r.resource(channel=video.channel, video=video.id, parent=thread.top.id) for r in shown]
                }
            items.append(resource)
        return 200, self._page("youtube#commentThreadListResponse", items, params, 100, prefix=f"QURTSl9pN{video.id}")

    def _comments(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parent = params.get("parentId", "")
        for video in self.videos.values():
            for thread in video.threads:
                if thread.top.id == parent:
                    items = [r.resource(channel=video.channel, video=video.id, parent=parent) for r in thread.replies]
                    return 200, self._page("youtube#commentListResponse", items, params, 100, prefix=f"R{parent}")
        return 404, google_error(
            404, "commentNotFound", "The comment could not be found.", domain="youtube.comment", location="parentId"
        )

    # serving --------------------------------------------------------------------------------------
    def start(self) -> str:
        world = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                status, body = world.answer(url.path, params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
