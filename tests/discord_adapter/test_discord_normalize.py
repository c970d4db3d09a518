"""Normalization of recorded gateway dispatches, in the shape Discord's API documentation gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from smallwins.adapters.discord.normalize import (
    ChannelCredit,
    CreditRules,
    credited_id,
    marked_helpful,
    normalize_dispatch,
    snowflake_time,
)
from smallwins.core.events import InvalidEvent

PAYLOADS = Path(__file__).resolve().parent / "data" / "payloads"
GENERAL, THREAD = "1100000000000000010", "1312505000000000000"
ADA, GRACE = "80351110224678912", "80351110224678913"
EVERY_MESSAGE = CreditRules(cooldown=0)


def load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def with_d(name: str, **changes: Any) -> dict[str, Any]:
    envelope = load(name)
    return {**envelope, "d": {**envelope["d"], **changes}}


def test_a_message_is_a_post_by_its_author_with_proof_and_name() -> None:
    [event] = normalize_dispatch(load("message_create"), EVERY_MESSAGE)
    assert (event.source, event.type, event.subject, event.id) == (
        "discord",
        "message.posted",
        ADA,
        "message:1312502284811763712",
    )
    assert event.time == datetime(2026, 11, 30, 12, 0, 3, 510000, tzinfo=UTC)
    assert event.proof == f"https://discord.com/channels/1100000000000000001/{GENERAL}/1312502284811763712"
    assert event.data["display_name"] == "Ada L." and event.data["length"] == 47 and event.data["channel_id"] == GENERAL


def test_a_reply_names_what_it_answers() -> None:
    [event] = normalize_dispatch(load("message_reply"), EVERY_MESSAGE)
    assert event.data["reply_to"] == "1312502284811763712" and event.data["display_name"] == "grace"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"author": {"id": "1", "username": "bot", "bot": True}}, "a bot"),
        ({"author": {"id": "2", "username": "Clyde", "system": True}}, "a system user"),
        ({"webhook_id": "555"}, "a webhook"),
        ({"type": 7}, "a join notice"),
        ({"type": 6}, "a pin notice"),
        ({"guild_id": None}, "a direct message"),
        ({"content": "ok"}, "shorter than min_length"),
    ],
)
def test_what_never_counts(change: dict[str, Any], why: str) -> None:
    assert normalize_dispatch(with_d("message_create", **change), CreditRules(cooldown=0, min_length=3)) == [], why


def test_channel_rules_include_exclude_and_threads_follow_their_parent() -> None:
    message = load("message_create")
    assert normalize_dispatch(message, CreditRules(cooldown=0, exclude=frozenset({GENERAL}))) == []
    assert normalize_dispatch(message, CreditRules(cooldown=0, include=frozenset({"999"}))) == []
    in_thread = with_d("message_create", channel_id=THREAD, parent_id=GENERAL)
    assert normalize_dispatch(in_thread, CreditRules(cooldown=0, exclude=frozenset({GENERAL}))) == []
    no_credit = CreditRules(cooldown=0, channels={GENERAL: {"credit": False}})
    assert normalize_dispatch(in_thread, no_credit) == []
    strict = CreditRules(cooldown=0, channels={GENERAL: {"min_length": 100}})
    assert normalize_dispatch(message, strict) == []
    [event] = normalize_dispatch(in_thread, EVERY_MESSAGE)
    assert event.data["thread_of"] == GENERAL


def test_cooldown_windows_are_clock_aligned_so_any_order_gives_the_same_credit() -> None:
    rules = CreditRules(cooldown=60)
    ids = []
    for second in (0, 10, 59, 60, 61, 125):
        moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp() + second
        snowflake = ((int(moment * 1000) - 1_420_070_400_000) << 22) | second
        ids.append(normalize_dispatch(with_d("message_create", id=str(snowflake)), rules)[0].id)
    assert len(set(ids)) == 3, "12:00:00-59, 12:01:00-59, 12:02:05 (three windows)"
    assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] != ids[0]
    own = CreditRules(cooldown=60, channels={GENERAL: {"cooldown_seconds": 300}})
    assert (
        normalize_dispatch(load("message_create"), own)[0].id != normalize_dispatch(load("message_create"), rules)[0].id
    )


def test_a_reaction_approves_the_messages_credited_event() -> None:
    for rules in (EVERY_MESSAGE, CreditRules(cooldown=60)):
        [post] = normalize_dispatch(load("message_create"), rules)
        [reaction] = normalize_dispatch(load("reaction_add"), rules)
        assert reaction.type == "reaction.added" and reaction.subject == GRACE
        assert reaction.data["target"] == f"discord:{post.id}", "the approval reaches the post whatever the cooldown"
        assert reaction.time == datetime(2026, 11, 30, 12, 6, tzinfo=UTC), "reactions carry no time: received_at"


def test_reactions_that_never_count() -> None:
    own = with_d("reaction_add", user_id=ADA)
    assert normalize_dispatch(own, EVERY_MESSAGE) == [], "one's own message"
    bot = with_d("reaction_add", member={"user": {"id": GRACE, "username": "x", "bot": True}})
    assert normalize_dispatch(bot, EVERY_MESSAGE) == []
    unknown_author = load("reaction_add")
    del unknown_author["d"]["message_author_id"]
    assert normalize_dispatch(unknown_author, EVERY_MESSAGE) == []


def test_removing_a_reaction_retracts_it_and_deleting_a_message_retracts_its_credit() -> None:
    [reaction] = normalize_dispatch(load("reaction_add"), EVERY_MESSAGE)
    [removal] = normalize_dispatch(load("reaction_remove"), EVERY_MESSAGE)
    assert removal.type == "reaction.removed" and removal.data["retracts"] == f"discord:{reaction.id}"
    assert normalize_dispatch(load("message_delete"), EVERY_MESSAGE) == [], "author unknown: nothing was earned"
    [post] = normalize_dispatch(load("message_create"), CreditRules(cooldown=60))
    [deletion] = normalize_dispatch(with_d("message_delete", author_id=ADA), CreditRules(cooldown=60))
    assert deletion.type == "message.deleted" and deletion.data["retracts"] == f"discord:{post.id}"
    bulk = {
        "t": "MESSAGE_DELETE_BULK",
        "d": {
            "ids": ["1312502284811763712", "1312503544231219200"],
            "channel_id": GENERAL,
            "guild_id": "1",
            "author_ids": {"1312502284811763712": ADA},
        },
    }
    assert [e.data["retracts"] for e in normalize_dispatch(bulk, EVERY_MESSAGE)] == [
        "discord:message:1312502284811763712"
    ]


def test_joins_threads_and_edits() -> None:
    [joined] = normalize_dispatch(load("member_add"), EVERY_MESSAGE)
    assert (joined.type, joined.subject, joined.data["display_name"]) == ("member.joined", "80351110224678914", "Linus")
    [thread] = normalize_dispatch(load("thread_create"), EVERY_MESSAGE)
    assert (thread.type, thread.subject, thread.id) == ("thread.started", ADA, f"thread:{THREAD}")
    assert normalize_dispatch(with_d("thread_create", newly_created=False), EVERY_MESSAGE) == [], "joined, not created"
    update = {
        "t": "MESSAGE_UPDATE",
        "d": {**load("message_create")["d"], "edited_timestamp": "2026-11-30T12:30:00+00:00"},
    }
    [edit] = normalize_dispatch(update, EVERY_MESSAGE)
    assert edit.type == "message.edited" and edit.data["message_id"] == "1312502284811763712"
    embed_resolved = {"t": "MESSAGE_UPDATE", "d": {"id": "1", "channel_id": GENERAL, "guild_id": "1", "embeds": []}}
    assert normalize_dispatch(embed_resolved, EVERY_MESSAGE) == []


def test_mark_helpful_is_a_moderator_approval_of_the_post() -> None:
    message = load("message_create")["d"]
    [post] = normalize_dispatch(load("message_create"), CreditRules(cooldown=60))
    event = marked_helpful("42", message, CreditRules(cooldown=60))
    assert event is not None and event.type == "moderator.approved" and event.subject == "42"
    assert event.data["target"] == f"discord:{post.id}"
    assert marked_helpful(ADA, message, CreditRules()) is None, "a moderator does not approve their own post"


def test_bad_payloads_name_what_is_wrong() -> None:
    with pytest.raises(InvalidEvent, match="needs 'd'"):
        normalize_dispatch({"t": "MESSAGE_CREATE"})
    broken = load("message_create")
    del broken["d"]["author"]
    with pytest.raises(InvalidEvent, match="lacks 'author'"):
        normalize_dispatch(broken)
    with pytest.raises(InvalidEvent, match="not ISO 8601"):
        normalize_dispatch(with_d("message_create", timestamp="yesterday"))
    assert normalize_dispatch({"t": "TYPING_START", "d": {}}) == [], "dispatches we do not use are ignored"



@pytest.mark.parametrize(
    ("payload", "message"),
    [  # each was stored (a member "discord:[1]") or failed with a Python error naming no field
        (lambda: with_d("message_create", author={"id": [1], "username": "x"}), "'author.id' is not a Discord id"),
        (lambda: with_d("message_create", author="ada"), "'author' should be an object, got 'ada'"),
        (lambda: with_d("message_create", id={"a": 1}), "'id' is not a Discord id (a snowflake: digits), got {'a': 1}"),
        (lambda: with_d("message_create", channel_id="general"), "'channel_id' is not a Discord id"),
        (lambda: with_d("reaction_add", emoji="x"), "'emoji' should be an object"),
        (lambda: with_d("reaction_add", user_id=True), "'user_id' is not a Discord id"),
    ],
)
def test_payload_fields_of_the_wrong_shape_are_named(payload: Any, message: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalize_dispatch(payload(), EVERY_MESSAGE)
    assert message in str(caught.value)

def test_snowflakes_tell_time() -> None:
    assert snowflake_time("175928847299117063") == datetime(2016, 4, 30, 11, 18, 25, 796000, tzinfo=UTC)
    assert credited_id("175928847299117063", ADA, ChannelCredit(True, 0, 1, "all")) == "message:175928847299117063"


def test_the_packaged_example_is_valid_once_uncommented(tmp_path: Path) -> None:
    from smallwins.adapters.discord.settings import RolesSettings, SourceSettings
    from smallwins.core.components import enabled_components
    from smallwins.core.config import load_app_config
    from smallwins.core.plugins import PluginHost

    packaged = (PAYLOADS.parents[3] / "smallwins" / "defaults" / "plugins.toml").read_text()
    block = packaged[packaged.index("# [plugins.discord]") :]
    block = block[: block.index("\n\n")].splitlines()
    lines = [line.removeprefix("# ") for line in block if line.startswith("# ")]
    catalogue = PAYLOADS.parent / "catalogue.toml"
    (tmp_path / "plugins.toml").write_text(f'[smallwins]\ncatalogue = "{catalogue}"\n' + "\n".join(lines) + "\n")
    enabled = enabled_components(load_app_config(tmp_path / "plugins.toml"), PluginHost())
    source, roles = enabled["discord"].settings, enabled["discord_roles"].settings
    assert isinstance(source, SourceSettings) and isinstance(roles, RolesSettings)
    assert source.cooldown_seconds == 60 and source.guild_id == roles.guild_id == "1100000000000000001"
    assert roles.achievement_roles == {"first-words": "1100000000000000031"}


def test_recorded_payloads_count_under_the_operators_rules(tmp_path: Path) -> None:
    """``smallwins ingest --source discord`` applies the configured cooldown and channel rules."""
    from typer.testing import CliRunner

    from smallwins.cli import app as cli

    catalogue = PAYLOADS.parent / "catalogue.toml"
    config = tmp_path / "plugins.toml"
    config.write_text(
        f'[smallwins]\ncatalogue = "{catalogue}"\n[plugins.web_widget]\nenabled = false\n'
        f'[plugins.discord]\nenabled = true\nguild_id = "1100000000000000001"\n'
        f'[plugins.discord.discord]\nexclude_channels = ["{GENERAL}"]\n'
        "[plugins.discord.discord_roles]\nenabled = false\n"
    )
    lines = [json.dumps(load(name)) for name in ("message_create", "message_reply", "member_add")]
    (tmp_path / "recorded.jsonl").write_text("\n".join(lines) + "\n")
    args = ["ingest", str(tmp_path / "recorded.jsonl"), "--source", "discord", "-c", str(config)]
    result = CliRunner().invoke(cli, [*args, "--db", f"sqlite:///{tmp_path / 'db.sqlite'}"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "1 stored" in result.output, "both messages are in the excluded channel: only the join counts"
    assert "2 ignored (the source counts nothing in them)" in " ".join(result.output.split()), "every line counted"


def test_a_recorded_payload_file_gets_one_line_reasons() -> None:
    """Through ``ingest --source discord``: an invalid event the source made (a future time) and
    a line that is not an object are one line each, in JSON's words, not pydantic's report."""
    from smallwins.adapters.jsonl import parse_line

    future = json.dumps(with_d("message_create", timestamp="2999-01-01T00:00:00+00:00")).encode()
    result = parse_line(1, future, normalize_dispatch)
    assert result is not None and result.error is not None
    assert "MESSAGE_CREATE payload: field 'time': " in result.error and "in the future" in result.error
    assert "\n" not in result.error and "pydantic" not in result.error
    for raw, kind in ((b"null", "null"), (b"[1]", "an array"), (b"7", "a number"), (b"true", "a boolean")):
        said = parse_line(2, raw, normalize_dispatch)
        assert said is not None and said.error == f"expected a JSON object, got {kind}"
