"""Reading channel history over REST: catch-up after downtime and ``smallwins discord backfill``.

Messages come from ``GET /channels/{id}/messages?after=...`` (100 a page) in the raw shape the
gateway uses, so they go through the same normalizer; reactions on them are read per emoji
(``GET .../reactions/{emoji}``). discord.py's HTTP client waits out 429s per route bucket, so
catch-up stays within Discord's rate limits however much there is to read. Dedup in the store
makes reading the same message twice harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import discord
import structlog

from smallwins.adapters.discord.normalize import DISCORD_EPOCH_MS, CreditRules, normalize_dispatch
from smallwins.core.contract import EventSink
from smallwins.core.cursors import CursorStore
from smallwins.core.events import Event

log = structlog.get_logger(__name__)

#: Channel types holding messages: text, announcement, and the three thread types.
MESSAGE_CHANNEL_TYPES = frozenset({0, 5, 10, 11, 12})
PAGE = 100


def snowflake_at(moment: datetime) -> int:
    """The smallest Discord id made at ``moment``: ``after=`` this reads from then on."""
    return max(0, (int(moment.astimezone(UTC).timestamp() * 1000) - DISCORD_EPOCH_MS) << 22)


def channel_key(channel_id: str) -> str:
    """The cursor of one channel: the last message id handed to the runtime."""
    return f"channel:{channel_id}"


def advance_cursor(cursors: CursorStore, channel_id: str, message_id: str) -> None:
    """Move a channel's cursor forward (never back: catch-up and live messages interleave)."""
    saved = cursors.get(channel_key(channel_id)) or {}
    if int(saved.get("last_message_id", 0)) < int(message_id):
        cursors.set(channel_key(channel_id), {"last_message_id": message_id})


def page_store(sink: EventSink, cursors: CursorStore, channel_id: str) -> Callable[[list[Event], str], Awaitable[None]]:
    """Deliver a page of history to the runtime, then move the channel's cursor past it."""

    async def deliver(events: list[Event], last_id: str) -> None:
        if events:
            await sink(events)
        await anyio.to_thread.run_sync(advance_cursor, cursors, channel_id, last_id)

    return deliver


@dataclass
class ChannelProgress:
    channel_id: str
    name: str
    messages: int = 0
    events: int = 0


def reaction_envelopes(message: dict[str, Any], users: Iterable[dict[str, Any]], emoji: dict[str, Any]) -> list[dict]:
    """``MESSAGE_REACTION_ADD`` dispatches for the users who reacted (history has no reaction time)."""
    return [
        {
            "t": "MESSAGE_REACTION_ADD",
            "received_at": message.get("timestamp"),
            "d": {
                "user_id": user["id"],
                "message_id": message["id"],
                "channel_id": message["channel_id"],
                "guild_id": message.get("guild_id"),
                "message_author_id": (message.get("author") or {}).get("id"),
                "parent_id": message.get("parent_id"),
                "emoji": emoji,
                "member": {"user": user},
            },
        }
        for user in users
    ]


async def read_channel(
    http: Any,
    channel: dict[str, Any],
    *,
    guild_id: str,
    after: int,
    rules: CreditRules,
    deliver: Callable[[list[Event], str], Awaitable[None]],
) -> ChannelProgress:
    """Every message of one channel after the id ``after``, oldest first, delivered page by page.

    ``deliver(events, last_message_id)`` is awaited per page, so the caller can move its cursor
    only once the page is stored.
    """
    progress = ChannelProgress(str(channel["id"]), str(channel.get("name") or channel["id"]))
    parent = channel.get("parent_id") if channel.get("type") in (10, 11, 12) else None
    while True:
        page = await http.logs_from(int(progress.channel_id), PAGE, after=after)
        if not page:
            break
        page = sorted(page, key=lambda m: int(m["id"]))
        events: list[Event] = []
        for message in page:
            message = {**message, "guild_id": guild_id, **({"parent_id": str(parent)} if parent else {})}
            events.extend(normalize_dispatch({"t": "MESSAGE_CREATE", "d": message}, rules))
            for reaction in message.get("reactions") or []:
                emoji = reaction.get("emoji") or {}
                name = emoji.get("name") or ""
                token = f"{name}:{emoji['id']}" if emoji.get("id") else name
                users = await http.get_reaction_users(int(progress.channel_id), int(message["id"]), token, PAGE)
                for envelope in reaction_envelopes(message, users, emoji):
                    events.extend(normalize_dispatch(envelope, rules))
        after = int(page[-1]["id"])
        progress.messages += len(page)
        progress.events += len(events)
        await deliver(events, str(after))
        if len(page) < PAGE:
            break
    log.info("discord.channel_read", channel=progress.channel_id, messages=progress.messages, events=progress.events)
    return progress


async def message_channels(http: Any, guild_id: str, rules: CreditRules) -> list[dict[str, Any]]:
    """The guild's channels that hold messages and count, with the guild's active threads."""
    channels = [c for c in await http.get_all_guild_channels(int(guild_id)) if c.get("type") in MESSAGE_CHANNEL_TYPES]
    try:
        threads = (await http.get_active_threads(int(guild_id))).get("threads", [])
    except Exception as exc:  # threads are a bonus: a server without them, or no permission, still catches up
        log.info("discord.threads_unavailable", error=str(exc))
        threads = []
    found = channels + [t for t in threads if t.get("type") in MESSAGE_CHANNEL_TYPES]
    return [c for c in found if rules.channel(str(c["id"]), c.get("parent_id")).credited]


async def read_channels(
    http: Any,
    channels: list[dict[str, Any]],
    *,
    guild_id: str,
    since: Callable[[str], int],
    rules: CreditRules,
    sink: EventSink,
    cursors: CursorStore,
    on_channel: Callable[[ChannelProgress], None] | None = None,
) -> list[ChannelProgress]:
    """Read several channels, each from ``since(channel_id)``; a channel the bot may not read is
    logged and skipped, so one missing permission does not stop the others."""
    read = []
    for channel in channels:
        channel_id = str(channel["id"])
        try:
            progress = await read_channel(
                http,
                channel,
                guild_id=guild_id,
                after=since(channel_id),
                rules=rules,
                deliver=page_store(sink, cursors, channel_id),
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            log.warning("discord.channel_unreadable", channel=channel_id, status=exc.status, error=exc.text)
            progress = ChannelProgress(channel_id, str(channel.get("name") or channel_id))
        read.append(progress)
        if on_channel is not None:
            on_channel(progress)
    return read
