"""The ``discord`` source's capture task: a discord.py bot on the gateway.

Every dispatch the bot receives is also handed to us raw (``enable_debug_events``), in exactly
the shape Discord documents, and goes through :func:`normalize_dispatch`; the bot adds only
what the payload lacks (a thread's parent channel, the author of a deleted message, the time a
reaction arrived). Events are queued and ingested in batches off the event loop.

Where it stands: the last message id per channel (``channel:ID`` cursors), moved after the
runtime took the batch. On start, channels with a cursor are read from there over REST
(:mod:`history`), so messages posted while the bot was down still count; dedup makes re-reading
harmless.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import anyio
import discord
import structlog
from discord import app_commands
from sqlalchemy import select

from smallwins.adapters.discord import slash
from smallwins.adapters.discord.client import gateway_intents, guild_of, token_of
from smallwins.adapters.discord.history import advance_cursor, channel_key, message_channels, read_channels
from smallwins.adapters.discord.normalize import SOURCE, CreditRules, normalize_dispatch
from smallwins.adapters.discord.settings import SourceSettings
from smallwins.core.config import ConfigError
from smallwins.core.contract import EventSink, PluginContext
from smallwins.core.events import Event, InvalidEvent
from smallwins.core.store import StoredEvent

log = structlog.get_logger(__name__)

HANDLED = frozenset(
    {
        "MESSAGE_CREATE",
        "MESSAGE_UPDATE",
        "MESSAGE_DELETE",
        "MESSAGE_DELETE_BULK",
        "MESSAGE_REACTION_ADD",
        "MESSAGE_REACTION_REMOVE",
        "GUILD_MEMBER_ADD",
        "THREAD_CREATE",
    }
)
#: Events ingested together at most; a lone event waits at most BATCH_SECONDS for company.
BATCH_EVENTS = 200
BATCH_SECONDS = 0.2


class SmallwinsBot(discord.Client):
    """A gateway client that turns what members do into events and answers slash commands."""

    def __init__(self, context: PluginContext, sink: EventSink) -> None:
        super().__init__(
            intents=gateway_intents(),
            enable_debug_events=True,
            chunk_guilds_at_startup=False,
            guild_ready_timeout=0.5,
        )
        self.context = context
        self.sink = sink
        assert isinstance(context.settings, SourceSettings)
        self.settings: SourceSettings = context.settings
        self.guild_id = guild_of(self.settings)
        self.rules = CreditRules.from_settings(self.settings)
        self.tree = app_commands.CommandTree(self)
        self.queue: asyncio.Queue[tuple[list[Event], dict[str, str]]] = asyncio.Queue()

    async def setup_hook(self) -> None:
        if self.settings.commands:
            slash.install(self)
            synced = await self.tree.sync(guild=discord.Object(id=int(self.guild_id)))
            log.info("discord.commands_synced", guild=self.guild_id, commands=[c.name for c in synced])

    async def on_ready(self) -> None:
        """After every (re)connection that was not a resume: read what the gap may have missed."""
        log.info("discord.ready", user=str(self.user), guild=self.guild_id)
        if self.settings.catch_up:
            await self.catch_up()

    async def on_socket_raw_receive(self, raw: str | dict[str, Any]) -> None:
        # The frame as received (decompressed text); parsed again here so we see it exactly as sent.
        message: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
        kind = message.get("t")
        if message.get("op") != 0 or kind not in HANDLED:
            return
        d = dict(message.get("d") or {})
        if str(d.get("guild_id")) != self.guild_id:
            return
        await self.enrich(kind, d)
        try:
            events = normalize_dispatch({"t": kind, "d": d, "received_at": datetime.now(UTC).isoformat()}, self.rules)
        except InvalidEvent as exc:
            log.warning("discord.payload_refused", dispatch=kind, reason=str(exc))
            return
        cursor = {str(d["channel_id"]): str(d["id"])} if kind == "MESSAGE_CREATE" else {}
        if events or cursor:
            await self.queue.put((events, cursor))

    async def enrich(self, kind: str, d: dict[str, Any]) -> None:
        """Add what the payload lacks and the bot knows: thread parents, deleted messages' authors."""
        channel = self.get_channel(int(d["channel_id"])) if d.get("channel_id") else None
        if isinstance(channel, discord.Thread) and channel.parent_id:
            d["parent_id"] = str(channel.parent_id)
        if kind == "MESSAGE_DELETE":
            d["author_id"] = await anyio.to_thread.run_sync(self.author_of, d, str(d["id"]))
        elif kind == "MESSAGE_DELETE_BULK":
            d["author_ids"] = {i: await anyio.to_thread.run_sync(self.author_of, d, str(i)) for i in d.get("ids", [])}

    def author_of(self, d: dict[str, Any], message_id: str) -> str | None:
        """Who posted a deleted message, if it earned an event: found by its link in the store."""
        proof = f"https://discord.com/channels/{d.get('guild_id')}/{d['channel_id']}/{message_id}"
        with self.context.app.store.sessions() as session:
            return session.scalar(
                select(StoredEvent.subject).where(StoredEvent.proof == proof, StoredEvent.source == SOURCE).limit(1)
            )

    async def drain(self) -> None:
        """Ingest queued events in batches, then move the channels' cursors past them."""
        while True:
            events, cursors = await self.queue.get()
            with anyio.move_on_after(BATCH_SECONDS):
                while len(events) < BATCH_EVENTS:
                    more, more_cursors = await self.queue.get()
                    events = events + more
                    for channel, message_id in more_cursors.items():
                        cursors[channel] = max(cursors.get(channel, "0"), message_id, key=int)
            with anyio.CancelScope(shield=True):  # a batch taken is stored and its cursors moved, even at shutdown
                if events:
                    await self.sink(events)
                for channel, message_id in cursors.items():
                    await anyio.to_thread.run_sync(advance_cursor, self.context.cursors, channel, message_id)

    async def catch_up(self) -> None:
        """Read what was posted while the bot was down, in the channels it has seen before."""
        saved = await anyio.to_thread.run_sync(self.context.cursors.all)
        seen = [
            c
            for c in await message_channels(self.http, self.guild_id, self.rules)
            if channel_key(str(c["id"])) in saved
        ]
        read = await read_channels(
            self.http,
            seen,
            guild_id=self.guild_id,
            since=lambda channel_id: int(saved[channel_key(channel_id)]["last_message_id"]),
            rules=self.rules,
            sink=self.sink,
            cursors=self.context.cursors,
        )
        log.info("discord.caught_up", channels=len(read), messages=sum(r.messages for r in read))


async def capture(context: PluginContext, sink: EventSink) -> None:
    """Run the bot until cancelled; a refused token or a missing setting stops with a clear error."""
    bot = SmallwinsBot(context, sink)
    token = token_of(bot.settings)
    async with bot, anyio.create_task_group() as group:
        group.start_soon(bot.drain)
        try:
            await bot.start(token, reconnect=bot.settings.reconnect)
        except discord.LoginFailure as exc:
            raise ConfigError(f"Discord refused the token in {bot.settings.token_env}: {exc}") from None
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Discord refused the bot's intents: in the Developer Portal (Bot tab) turn on "
                "Server Members Intent and Message Content Intent"
            ) from None
        finally:
            group.cancel_scope.cancel()
