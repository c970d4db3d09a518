"""The ``youtube`` source against a local Data API server, through the real google-api-python-client
and the real engine on SQLite and PostgreSQL: requests, units, events, awards, cursors, quota."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import anyio
import pytest
from conftest import CHANNEL, FakeTime, Stop
from fakeyoutube import API_KEY, FakeComment, FakeYouTube
from sqlalchemy import select

from smallwins.adapters.youtube.capture import Poller
from smallwins.adapters.youtube.quota import CURSOR_KEY, PACIFIC, next_reset
from smallwins.core.app import App
from smallwins.core.config import ConfigError
from smallwins.core.cursors import CursorStore
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef
from smallwins.core.runtime import make_sink
from smallwins.core.store import AuditEntry, StoredEvent
from smallwins.core.views import find_member
from tests.rules_helpers import held

ANN, BOB, CARL, DORA, ERIN = (f"UC{name:0<22}" for name in ("ann", "bob", "carl", "dora", "erin"))
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class Recorder:
    """The runtime's real sink (ingest through the engine), remembering what it was handed."""

    def __init__(self, app: App) -> None:
        self.inner = make_sink(app, "youtube")
        self.events: list[Event] = []

    async def __call__(self, events: list[Event]) -> None:
        self.events.extend(events)
        await self.inner(events)

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]


def community(youtube: FakeYouTube, now: datetime) -> None:
    """Three videos; the two newest have comments: a thread with four replies (two embedded, the
    owner's among the rest), a well-liked comment, a link code."""
    youtube.add_video(CHANNEL, "vidOLD00001", now - timedelta(days=60))
    youtube.add_video(CHANNEL, "vidMID00001", now - timedelta(days=12))
    youtube.add_video(CHANNEL, "vidNEW00001", now - timedelta(days=1))
    at = now - timedelta(hours=20)
    c = youtube.comment
    c("vidNEW00001", FakeComment("Ugw-ann1", ANN, "@ann", "First! Loved the part on bread.", at))
    c("vidNEW00001", FakeComment("Ugw-ann1.r1", BOB, "@bob", "agreed", at + timedelta(minutes=5)), reply_to="Ugw-ann1")
    c("vidNEW00001", FakeComment("Ugw-ann1.r2", CARL, "@carl", "same", at + timedelta(minutes=6)), reply_to="Ugw-ann1")
    c(
        "vidNEW00001",
        FakeComment("Ugw-ann1.r3", CHANNEL, "@creator", "Thanks Ann!", at + timedelta(minutes=9)),
        reply_to="Ugw-ann1",
    )
    c(
        "vidNEW00001",
        FakeComment("Ugw-ann1.r4", DORA, "@dora", "@bob you said it", at + timedelta(minutes=11)),
        reply_to="Ugw-ann1",
    )
    c("vidNEW00001", FakeComment("Ugw-bob1", BOB, "@bob", "Great video", at + timedelta(hours=1), likes=5))
    c("vidNEW00001", FakeComment("Ugw-carl1", CARL, "@carl", "hi", at + timedelta(hours=2)))
    c("vidMID00001", FakeComment("Ugw-erin1", ERIN, "@erin", "hello", at - timedelta(days=5)))


def poller_for(app: App, time: FakeTime) -> Poller:
    return Poller.from_context(app.context("youtube"), clock=time, sleep=time.sleep)


def poll(app: App, time: FakeTime) -> tuple[Poller, Recorder]:
    poller, sink = poller_for(app, time), Recorder(app)
    anyio.run(poller.poll_once, sink)
    return poller, sink


def stored(app: App) -> list[StoredEvent]:
    with app.store.sessions() as session:
        return list(session.scalars(select(StoredEvent).where(StoredEvent.source == "youtube")))


def test_first_enable_catches_up_the_newest_videos_with_pages_and_replies(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    app = make_app()
    poller, sink = poll(app, fake_time)

    asked = youtube.asked()
    assert [r.method for r in asked] == [
        "channels",
        "playlistItems",
        "commentThreads",
        "commentThreads",
        "comments",
        "commentThreads",
    ]
    assert all(r.params["key"] == API_KEY for r in asked)
    assert asked[0].params | {"key": ""} == {
        "part": "contentDetails",
        "id": CHANNEL,
        "maxResults": "1",
        "key": "",
        "alt": "json",
    }
    assert asked[1].params["playlistId"] == "UU" + CHANNEL[2:]
    first, second = asked[2].params, asked[3].params
    assert first["videoId"] == second["videoId"] == "vidNEW00001"  # newest first; vidOLD is not caught up
    assert first["part"] == "snippet,replies" and first["maxResults"] == "2" and first["textFormat"] == "plainText"
    assert "pageToken" not in first and second["pageToken"] == "QURTSl9pNvidNEW00001-2"
    assert asked[4].params["parentId"] == "Ugw-ann1"  # 4 replies, 2 embedded: the rest from comments.list
    assert asked[5].params["videoId"] == "vidMID00001"

    # units: one per request, persisted, and reported
    quota = CursorStore(app.store, "youtube").get(CURSOR_KEY)
    assert quota is not None and quota["used"] == len(asked) == 6
    assert quota["by_method"] == {
        "channels.list": 1,
        "playlistItems.list": 1,
        "commentThreads.list": 3,
        "comments.list": 1,
    }
    assert poller.ledger.report()["left"] == 9000 - 6

    kinds = sorted(e.type for e in sink.events)
    assert kinds == sorted(["comment.posted"] * 8 + ["comment.endorsed", "comment.upvoted"])
    endorsed = sink.of_type("comment.endorsed")[0]
    assert endorsed.subject == CHANNEL and endorsed.data["target"] == "youtube:Ugw-ann1" and endorsed.data["staff"]
    upvoted = sink.of_type("comment.upvoted")[0]
    assert upvoted.data["target"] == "youtube:Ugw-bob1" and upvoted.data["likes"] == 5
    dora = next(e for e in sink.events if e.id == "Ugw-ann1.r4")
    assert dora.data["reply_to"] == "youtube:Ugw-ann1.r1"  # "@bob ..." answers bob's reply, not the thread
    assert dora.proof == "https://www.youtube.com/watch?v=vidNEW00001&lc=Ugw-ann1.r4"

    # through the real engine: comments became awards, the creator's approval counts for Ann
    assert held(app.store, f"youtube:{ANN}") == {"first-words": "bronze", "creator-pick": "gold"}
    assert held(app.store, f"youtube:{BOB}") == {"first-words": "bronze", "creator-pick": "gold"}
    assert held(app.store, f"youtube:{CARL}") == {"first-words": "bronze"}
    with app.store.sessions() as session:
        owner = find_member(session, f"youtube:{CHANNEL}")
        assert owner.staff and owner.points == 0
    assert len(stored(app)) == 10


def test_a_restart_resumes_from_the_cursors(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    poll(make_app(), fake_time)
    youtube.clear()

    fake_time.now += timedelta(minutes=1)  # a restart a minute later: nothing is due yet
    app = make_app()
    _poller, sink = poll(app, fake_time)
    assert youtube.asked() == [] and sink.events == []

    youtube.comment("vidNEW00001", FakeComment("Ugw-erin2", ERIN, "@erin", "late to the party", fake_time.now))
    fake_time.now += timedelta(minutes=15)  # the recent video is due again; the older one is not
    _, sink = poll(make_app(), fake_time)
    # 4 threads in pages of 2; the long thread's reply count did not change: no comments.list
    assert [(r.method, r.params.get("videoId")) for r in youtube.asked()] == [("commentThreads", "vidNEW00001")] * 2
    assert [e.id for e in sink.events] == ["Ugw-erin2"]
    assert len(stored(app)) == 11
    assert held(app.store, f"youtube:{ERIN}") == {"first-words": "bronze"}


def test_a_read_stopped_by_the_quota_continues_from_its_page_after_the_reset(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    youtube.quota_after = 3  # channels, playlistItems, page 1 of vidNEW; then quotaExceeded
    app = make_app()
    poller, sink = poller_for(app, fake_time), Recorder(app)
    fake_time.stop_after = 2

    def reset(seconds: float) -> None:
        if len(fake_time.sleeps) == 1:  # the pause: Google resets the project's quota
            youtube.quota_exceeded, youtube.quota_after = False, None
            youtube.clear()

    fake_time.on_sleep = reset
    start = fake_time.now
    with pytest.raises(Stop):
        anyio.run(poller.run, sink)

    assert fake_time.sleeps[0] == (next_reset(start) - start).total_seconds()  # until midnight Pacific
    assert poller.stats.quota_pauses == 1
    resumed = youtube.asked()  # hours later: new uploads first, then the stopped read from its page
    assert [r.method for r in resumed] == ["playlistItems", "commentThreads", "comments", "commentThreads"]
    assert resumed[1].params["videoId"] == "vidNEW00001" and resumed[1].params["pageToken"] == "QURTSl9pNvidNEW00001-2"
    assert sorted({e.id for e in sink.events if e.type == "comment.posted"}) == sorted(
        ["Ugw-carl1", "Ugw-bob1", "Ugw-ann1", "Ugw-ann1.r1", "Ugw-ann1.r2", "Ugw-ann1.r3", "Ugw-ann1.r4", "Ugw-erin1"]
    )
    assert sink.of_type("comment.deleted") == []  # the comments of page 1 were not taken for deleted
    # a new Pacific day: only the units spent since the reset count
    assert poller.ledger.report()["used"] == 4
    assert poller.ledger.report()["day"] == next_reset(start).astimezone(PACIFIC).date().isoformat()


@SQLITE_ONLY
def test_quota_exceeded_on_a_restart_waits_for_the_reset_without_asking(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    youtube.quota_exceeded = True
    app = make_app()
    with pytest.raises(Exception, match="quota"):
        anyio.run(poller_for(app, fake_time).poll_once, Recorder(app))
    assert len(youtube.asked()) == 1  # a 403 quotaExceeded is never retried
    youtube.clear()

    fake_time.now += timedelta(hours=1)  # restarted within the same Pacific day
    fake_time.stop_after = 1
    with pytest.raises(Stop):
        anyio.run(poller_for(make_app(), fake_time).run, Recorder(app))
    assert youtube.asked() == []  # the pause was remembered in the store: not one request
    paused_at = fake_time.now - timedelta(seconds=fake_time.sleeps[0])
    assert fake_time.sleeps[0] == (next_reset(paused_at) - paused_at).total_seconds()


@SQLITE_ONLY
def test_the_daily_budget_stops_before_it_is_spent(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    for n in range(30):
        youtube.comment("vidMID00001", FakeComment(f"Ugw-x{n}", ERIN, "@erin", f"comment {n}", fake_time.now))
    app = make_app(daily_quota=10, page_size=1)
    poller = poller_for(app, fake_time)
    with pytest.raises(Exception, match="daily budget spent") as caught:
        anyio.run(poller.poll_once, Recorder(app))
    assert len(youtube.asked()) == 10
    assert caught.value.resume_at == next_reset(fake_time.now)  # type: ignore[attr-defined]
    assert poller.ledger.report() | {"by_method": None, "resets_at": None} == {
        "day": str(fake_time.now.astimezone(next_reset(fake_time.now).tzinfo).date()),
        "used": 10,
        "budget": 10,
        "left": 0,
        "by_method": None,
        "resets_at": None,
        "paused_until": None,
    }


def test_removed_videos_and_disabled_comments_are_skipped_keeping_their_cursors(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    app = make_app()
    poll(app, fake_time)
    known = CursorStore(app.store, "youtube").get("video:vidMID00001")
    assert known is not None and "Ugw-erin1" in known["comments"]

    youtube.videos["vidMID00001"].state = "gone"
    youtube.videos["vidNEW00001"].state = "disabled"
    youtube.clear()
    fake_time.now += timedelta(hours=7)  # both due
    poller, sink = poll(app, fake_time)
    assert [r.method for r in youtube.asked()] == ["playlistItems", "commentThreads", "commentThreads"]
    assert poller.stats.skipped == {"commentsDisabled": 1, "videoNotFound": 1}
    assert sink.events == []  # nothing retracted: a removed video is not a deleted comment
    assert CursorStore(app.store, "youtube").get("video:vidMID00001") == known
    channel = CursorStore(app.store, "youtube").get(f"channel:{CHANNEL}")
    assert channel is not None and channel["videos"]["vidMID00001"]["status"] == "videoNotFound"
    assert channel["videos"]["vidNEW00001"]["status"] == "commentsDisabled"

    youtube.videos["vidNEW00001"].state = "ok"  # comments enabled again: read on the old videos' schedule
    youtube.comment("vidNEW00001", FakeComment("Ugw-new", DORA, "@dora", "back on", fake_time.now))
    fake_time.now += timedelta(hours=6, minutes=1)
    poller, sink = poll(app, fake_time)
    assert [e.id for e in sink.events] == ["Ugw-new"]


@SQLITE_ONLY
def test_server_errors_are_retried_with_backoff_and_each_try_is_counted(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    youtube.fail_next = [503, 500]
    app = make_app()
    poller, sink = poll(app, fake_time)
    assert fake_time.sleeps == [0.01, 0.02]
    assert [r.method for r in youtube.asked()[:3]] == ["channels"] * 3
    assert poller.ledger.report()["used"] == len(youtube.asked()) == 8
    assert len(sink.of_type("comment.posted")) == 8

    # errors that outlast the retries: the video is tried again later, from its cursor
    youtube.clear()
    youtube.comment("vidNEW00001", FakeComment("Ugw-z", DORA, "@dora", "new", fake_time.now))
    fake_time.now += timedelta(minutes=16)
    youtube.fail_next = [503] * 5
    poller, sink = poll(app, fake_time)
    assert poller.stats.failures == 1 and sink.events == [] and len(youtube.asked()) == 5
    fake_time.now += timedelta(minutes=16)
    poller, sink = poll(app, fake_time)
    assert [e.id for e in sink.events] == ["Ugw-z"]


def test_edits_are_recorded_and_deletions_retract_with_their_awards(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    app = make_app()
    poll(app, fake_time)
    assert held(app.store, f"youtube:{CARL}") == {"first-words": "bronze"}
    youtube.comment("vidNEW00001", FakeComment("Ugw-carl2", CARL, "@carl", "third one", fake_time.now))
    fake_time.now += timedelta(minutes=16)
    poll(app, fake_time)
    assert held(app.store, f"youtube:{CARL}") == {"first-words": "bronze", "regular": "silver"}

    ann = youtube.find("vidNEW00001", "Ugw-ann1")
    ann.text, ann.updated = "First! (edited)", fake_time.now
    youtube.delete("vidNEW00001", "Ugw-carl2")  # Carl deletes a comment: Regular goes
    youtube.delete("vidNEW00001", "Ugw-ann1.r3")  # the creator deletes the reply: Ann's pick goes
    fake_time.now += timedelta(minutes=16)
    _, sink = poll(app, fake_time)
    assert sorted((e.type, e.data.get("retracts") or e.data.get("edits")) for e in sink.events) == [
        ("comment.deleted", "youtube:Ugw-ann1.r3"),
        ("comment.deleted", "youtube:Ugw-carl2"),
        ("comment.edited", "youtube:Ugw-ann1"),
        ("comment.endorsement_withdrawn", "youtube:Ugw-ann1.r3:endorses"),
    ]
    assert held(app.store, f"youtube:{CARL}") == {"first-words": "bronze"}
    assert held(app.store, f"youtube:{ANN}") == {"first-words": "bronze"}
    with app.store.sessions() as session:
        actions = {(row.action, row.achievement_id) for row in session.scalars(select(AuditEntry))}
    assert ("retract", None) in actions or any(a == "retract" for a, _ in actions)
    assert any(a == "revoke" and ach == "regular" for a, ach in actions)
    assert any(a == "revoke" and ach == "creator-pick" for a, ach in actions)
    state = CursorStore(app.store, "youtube").get("video:vidNEW00001")
    assert state is not None and "Ugw-carl2" not in state["comments"] and state["scan"] is None


def test_a_link_code_in_a_comment_links_the_channel_to_a_member(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    app = make_app()
    code = app.engine.issue_link_code(AccountRef("discord", "80351110224678912"))
    youtube.comment(
        "vidNEW00001",
        FakeComment("Ugw-link", ERIN, "@erin", f"my code: {code.lower()} :)", fake_time.now - timedelta(minutes=1)),
    )
    _, sink = poll(app, fake_time)
    assert [e.data for e in sink.of_type("link.code_presented")] == [{"code": code, "display_name": "@erin"}]
    with app.store.sessions() as session:
        assert find_member(session, f"youtube:{ERIN}").id == find_member(session, "discord:80351110224678912").id


@SQLITE_ONLY
def test_a_refused_key_or_missing_settings_stop_with_a_clear_error(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    community(youtube, fake_time.now)
    app = make_app()
    monkeypatch.setenv("SMALLWINS_TEST_YOUTUBE_KEY", "wrong")
    with pytest.raises(ConfigError, match=r"YouTube refused the API key .*API key not valid"):
        anyio.run(poller_for(app, fake_time).poll_once, Recorder(app))
    assert len(youtube.asked()) == 1
    monkeypatch.delenv("SMALLWINS_TEST_YOUTUBE_KEY")
    with pytest.raises(ConfigError, match="api_key_env' names environment variable SMALLWINS_TEST_YOUTUBE_KEY"):
        poller_for(app, fake_time)
    with pytest.raises(ConfigError, match="channels' is empty"):
        poller_for(make_app(channels=[]), fake_time)


@SQLITE_ONLY
def test_a_saved_page_token_the_api_refuses_starts_the_video_over(
    make_app: Callable[..., App], youtube: FakeYouTube, fake_time: FakeTime
) -> None:
    community(youtube, fake_time.now)
    youtube.quota_after = 3  # stops after page 1 of the newest video; its page token is saved
    app = make_app()
    with pytest.raises(Exception, match="quotaExceeded"):
        anyio.run(poller_for(app, fake_time).poll_once, Recorder(app))
    saved = CursorStore(app.store, "youtube").get("video:vidNEW00001")
    assert saved is not None and saved["scan"]["page"] == "QURTSl9pNvidNEW00001-2"
    youtube.quota_exceeded, youtube.quota_after = False, None
    youtube.expired_tokens.add("QURTSl9pNvidNEW00001-2")
    youtube.clear()

    fake_time.now = next_reset(fake_time.now) + timedelta(minutes=1)
    poller, sink = poll(app, fake_time)
    threads = [
        r.params.get("pageToken") for r in youtube.asked("commentThreads") if r.params["videoId"] == "vidNEW00001"
    ]
    # refused (400 invalidPageToken), then from the top: pages 1 and 2
    assert threads == ["QURTSl9pNvidNEW00001-2", None, "QURTSl9pNvidNEW00001-2"]
    assert poller.stats.videos_read == 2 and sink.of_type("comment.deleted") == []
    assert len(stored(app)) == 10  # nothing counted twice
