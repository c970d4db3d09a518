"""Pure parts of the YouTube source: comment resources to events, settings, the Pacific quota day."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CATALOGUE, CHANNEL
from pydantic import ValidationError
from typer.testing import CliRunner

from smallwins.adapters.youtube.normalize import addressee, comment_of, link_codes, normalize, thread_events
from smallwins.adapters.youtube.quota import next_reset, quota_day
from smallwins.adapters.youtube.settings import YouTubeSettings
from smallwins.cli import app
from smallwins.core.components import enabled_components
from smallwins.core.config import load_app_config
from smallwins.core.events import InvalidEvent
from smallwins.core.plugins import PluginHost

HERE = Path(__file__).resolve().parent
RECORDED = [json.loads(line) for line in (HERE / "data" / "threads.jsonl").read_text().splitlines()]
ANN, BOB = "UCann0000000000000000000", "UCbob0000000000000000000"


def test_a_thread_gives_posts_an_endorsement_and_a_like_approval() -> None:
    events = normalize(RECORDED[0])
    by_id = {e.id: e for e in events}
    assert sorted(by_id) == ["UgzA1", "UgzA1.r1", "UgzA1.r1:endorses", "UgzA1.r2", "UgzA1:likes"]
    ann = by_id["UgzA1"]
    assert (ann.type, ann.subject, ann.source) == ("comment.posted", ANN, "youtube")
    assert ann.time == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert ann.data == {"display_name": "@ann", "video": "dQw4w9WgXcQ"}
    assert by_id["UgzA1.r1"].data["staff"] is True  # the creator's own reply: recorded, holds no standing
    endorsed = by_id["UgzA1.r1:endorses"]
    assert (endorsed.type, endorsed.subject, endorsed.data["target"]) == ("comment.endorsed", CHANNEL, "youtube:UgzA1")
    liked = by_id["UgzA1:likes"]
    assert (liked.type, liked.data["target"], liked.data["likes"]) == ("comment.upvoted", "youtube:UgzA1", 12)
    assert by_id["UgzA1.r2"].data["reply_to"] == "youtube:UgzA1"  # "@ann": the thread's author
    assert by_id["UgzA1.r2"].data["thread"] == "youtube:UgzA1"


def test_recorded_replies_threshold_and_link_codes() -> None:
    events = normalize(RECORDED[1])
    assert [(e.type, e.id) for e in events] == [
        ("comment.posted", "UgzB2"),
        ("link.code_presented", "UgzB2:link:ABCD-EFGH"),
        ("comment.posted", "UgzB2.r1"),
    ]
    assert events[1].data == {"code": "ABCD-EFGH", "display_name": "@bob"} and events[1].subject == BOB
    # an owner reply gives no endorsement of the owner's own comment, and no likes below the threshold
    assert not [e for e in events if e.type in {"comment.endorsed", "comment.upvoted"}]


def test_a_comment_without_an_author_channel_gives_nothing_and_bad_payloads_say_why() -> None:
    assert normalize(RECORDED[2]) == []
    with pytest.raises(InvalidEvent, match="topLevelComment"):
        normalize(RECORDED[3])
    with pytest.raises(InvalidEvent, match="youtube#commentThread resource"):
        normalize({"items": []})
    with pytest.raises(InvalidEvent, match="like_threshold"):
        normalize({"thread": RECORDED[0], "like_threshold": 0})
    broken = json.loads(json.dumps(RECORDED[0]))
    broken["snippet"]["topLevelComment"]["snippet"]["publishedAt"] = "yesterday"
    with pytest.raises(InvalidEvent, match="publishedAt 'yesterday' is not an ISO time"):
        normalize(broken)


def test_a_like_approval_is_dated_within_the_window() -> None:
    late = datetime(2026, 6, 1, tzinfo=UTC)
    events = thread_events(RECORDED[0], like_threshold=10, like_window_days=28, seen_at=late)
    liked = next(e for e in events if e.type == "comment.upvoted")
    assert liked.time == datetime(2026, 3, 30, 10, tzinfo=UTC)  # 28 days after the comment, not months later


def test_mentions_pick_the_reply_answered() -> None:
    top = comment_of(RECORDED[0]["snippet"]["topLevelComment"])
    bob = comment_of(RECORDED[0]["replies"]["comments"][1], video="dQw4w9WgXcQ")  # a reply names no video
    assert top is not None and bob is not None
    resource = json.loads(json.dumps(RECORDED[0]["replies"]["comments"][1]))
    resource["id"] = "UgzA1.r9"
    resource["snippet"] |= {
        "textDisplay": "@Bob, agreed",
        "authorChannelId": {"value": ANN},
        "authorDisplayName": "@ann",
    }
    reply = comment_of(resource, video="dQw4w9WgXcQ")
    assert reply is not None
    assert addressee(reply, top, [bob]) == bob
    assert addressee(bob, top, []) == top  # "@ann": no earlier reply by ann, so the thread


def test_link_codes_are_found_in_any_case_once() -> None:
    assert link_codes("my code abcd-efgh and ABCD-EFGH again, not xabcd-efgh") == ["ABCD-EFGH"]


def test_the_quota_day_is_pacific_and_resets_at_its_midnight_across_dst() -> None:
    assert quota_day(datetime(2026, 3, 2, 7, 59, tzinfo=UTC)).isoformat() == "2026-03-01"
    assert next_reset(datetime(2026, 3, 2, 7, 59, tzinfo=UTC)) == datetime(2026, 3, 2, 8, tzinfo=UTC)  # PST
    assert next_reset(datetime(2026, 7, 1, 12, tzinfo=UTC)) == datetime(2026, 7, 2, 7, tzinfo=UTC)  # PDT
    # the day DST starts is 23 hours long: the reset after it is 7:00 UTC
    assert next_reset(datetime(2026, 3, 8, 9, tzinfo=UTC)) == datetime(2026, 3, 9, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"channels": ["@mychannel"]}, "not a channel id"),
        ({"channels": ["https://youtube.com/watch?v=x"]}, "not a channel id"),
        ({"catch_up_videos": 60, "max_videos": 50}, "catch_up_videos (60) is more than max_videos (50)"),
        ({"page_size": 101}, "less than or equal to 100"),
        ({"api_endpoint": "localhost:8080"}, "not an http(s) URL"),
        ({"api_key": "AIza..."}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_say_what_is_wrong(given: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        YouTubeSettings.model_validate(given)


def test_a_key_written_in_plugins_toml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plugins.toml").write_text('[plugins.youtube]\nenabled = true\napi_key = "AIzaSy..."\n')
    result = CliRunner().invoke(app, ["plugins", "-c", str(tmp_path / "plugins.toml")], terminal_width=200)
    assert result.exit_code == 2
    assert "plugins.youtube.api_key" in result.output and "api_key_env" in result.output


def test_recorded_threads_go_in_through_smallwins_ingest(tmp_path: Path) -> None:
    (tmp_path / "threads.jsonl").write_text("\n".join(json.dumps(line) for line in RECORDED[:3]) + "\n")
    (tmp_path / "plugins.toml").write_text(f'[smallwins]\ncatalogue = "{CATALOGUE}"\n')
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            "--source",
            "youtube",
            str(tmp_path / "threads.jsonl"),
            "-c",
            str(tmp_path / "plugins.toml"),
            "--db",
            f"sqlite:///{tmp_path / 'sw.db'}",
        ],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    # the third thread's comment has no author channel (a legacy account): no one to credit (Ann: 2 awards, Bob: 1)
    assert "8 stored, 0 already known, 0 rejected, 1 ignored (the source counts nothing in them), 3 achiev" in said


def test_the_packaged_example_is_valid_once_uncommented(tmp_path: Path) -> None:
    packaged = (HERE.parent.parent / "smallwins" / "defaults" / "plugins.toml").read_text()
    block = packaged[packaged.index("# [plugins.youtube]") :].splitlines()
    lines = [line.removeprefix("# ") for line in block if line.startswith("# ")]
    lines = [line.replace("UCxxxxxxxxxxxxxxxxxxxxxx", CHANNEL) for line in lines]
    (tmp_path / "plugins.toml").write_text(f'[smallwins]\ncatalogue = "{CATALOGUE}"\n' + "\n".join(lines) + "\n")
    enabled = enabled_components(load_app_config(tmp_path / "plugins.toml"), PluginHost())
    settings = enabled["youtube"].settings
    assert isinstance(settings, YouTubeSettings)
    assert settings.channels == [CHANNEL] and settings.daily_quota == 9000 and settings.like_threshold == 10
