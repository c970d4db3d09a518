"""A fake Discord on 127.0.0.1: REST v10 and a JSON gateway, enough for the real discord.py.

It speaks the documented wire format: gateway opcodes HELLO (10), IDENTIFY (2), HEARTBEAT (1) and
its ACK (11), dispatches (0) such as READY, GUILD_CREATE, MESSAGE_CREATE, MESSAGE_REACTION_ADD,
INTERACTION_CREATE; REST routes for members and roles, messages and their history, reactions,
application commands and interaction callbacks, with Discord's error bodies (``{"message", "code"}``)
and 429s carrying ``Retry-After`` (and ``Via``, without which discord.py takes a 429 for a
Cloudflare ban). Every REST call is recorded for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

GUILD_ID = 1100000000000000001
APP_ID = 1100000000000000002
BOT_ID = APP_ID
GENERAL = 1100000000000000010
OFFTOPIC = 1100000000000000011
ANNOUNCE = 1100000000000000012
MOD_ROLE = 1100000000000000020
EVERYONE = GUILD_ID
DISCORD_EPOCH_MS = 1_420_070_400_000


def snowflake(moment: datetime, sequence: int = 0) -> int:
    return ((int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22) | (sequence & 0xFFF)


def jresp(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly application/json (no charset).
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json", headers=headers)


def error(status: int, message: str, code: int) -> web.Response:
    return jresp({"message": message, "code": code}, status=status)


def user(uid: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": str(uid), "username": name, "discriminator": "0", "global_name": name, "avatar": None, "bot": bot}


@dataclass
class Account:
    uid: int
    name: str
    roles: set[int] = field(default_factory=set)
    bot: bool = False

    def member(self) -> dict[str, Any]:
        return {
            "user": user(self.uid, self.name, self.bot),
            "roles": [str(r) for r in sorted(self.roles)],
            "joined_at": "2026-01-01T00:00:00+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "pending": False,
            "permissions": "0",
        }


class FakeDiscord:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.gateway_received: list[dict[str, Any]] = []
        self.accounts: dict[int, Account] = {BOT_ID: Account(BOT_ID, "smallwins", bot=True)}
        self.roles: dict[int, str] = {}
        self.history: dict[int, list[dict[str, Any]]] = {GENERAL: [], OFFTOPIC: []}
        self.reactions: dict[tuple[int, str], list[int]] = {}  # (message id, emoji) -> user ids
        self.commands: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.posted: list[dict[str, Any]] = []
        self.forbidden_roles: set[int] = set()
        self.unreadable_channels: set[int] = set()  # no Read Message History there
        self.rate_limit_once: set[str] = set()  # paths answered 429 on their first call
        self.server_errors: dict[str, int] = {}  # path -> how many 502s before it works
        self.ready = asyncio.Event()
        self._ws: web.WebSocketResponse | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_get("/gateway", self.gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self.rest)
        self.app = app

    # ---------------------------------------------------------------- setup
    def add_account(self, uid: int, name: str, roles: set[int] | None = None) -> Account:
        self.accounts[uid] = Account(uid, name, set(roles or ()))
        return self.accounts[uid]

    def add_role(self, rid: int, name: str) -> None:
        self.roles[rid] = name

    async def start(self) -> FakeDiscord:
        self.runner = web.AppRunner(self.app, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_base = f"http://127.0.0.1:{port}/api/v10"
        self.ws_url = f"ws://127.0.0.1:{port}/gateway"
        return self

    async def stop(self) -> None:
        for ws in self._sockets:  # a bot cancelled mid-session may leave its socket open
            await ws.close()
        await self.runner.cleanup()

    def calls(self, method: str | None = None, prefix: str = "") -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if (method is None or r[0] == method) and r[1].startswith(prefix)]

    # ---------------------------------------------------------------- payloads
    def message(self, author: int, content: str, *, at: datetime, channel: int = GENERAL, **extra: Any) -> dict:
        mid = snowflake(at, next(self._ids))
        account = self.accounts[author]
        payload = {
            "id": str(mid),
            "channel_id": str(channel),
            "guild_id": str(GUILD_ID),
            "author": user(author, account.name, account.bot),
            "member": {k: v for k, v in account.member().items() if k != "user"},
            "content": content,
            "timestamp": at.isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": 0,
        } | extra
        stored = {k: v for k, v in payload.items() if k not in ("guild_id", "member")}
        self.history.setdefault(channel, []).append(stored)
        return payload

    def reaction(self, reactor: int, message: dict[str, Any], emoji: str = "👍") -> dict[str, Any]:
        self.reactions.setdefault((int(message["id"]), emoji), []).append(reactor)
        return {
            "user_id": str(reactor),
            "channel_id": message["channel_id"],
            "message_id": message["id"],
            "guild_id": str(GUILD_ID),
            "message_author_id": message["author"]["id"],
            "emoji": {"id": None, "name": emoji},
            "type": 0,
            "burst": False,
            "member": self.accounts[reactor].member(),
        }

    def guild(self) -> dict[str, Any]:
        roles = [
            {"id": str(EVERYONE), "name": "@everyone", "permissions": "1024", "position": 0},
            {"id": str(MOD_ROLE), "name": "mods", "permissions": "0", "position": 1},
            *({"id": str(r), "name": n, "permissions": "0", "position": 2} for r, n in self.roles.items()),
            {
                "id": "1100000000000000099",
                "name": "smallwins",
                "permissions": "268435456",
                "position": 9,
                "managed": True,
            },
        ]
        for role in roles:
            role.update({"color": 0, "hoist": False, "mentionable": False, "flags": 0})
            role.setdefault("managed", False)
        channels = [
            {
                "id": str(c),
                "type": 0,
                "name": n,
                "position": i,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            }
            for i, (c, n) in enumerate([(GENERAL, "general"), (OFFTOPIC, "off-topic"), (ANNOUNCE, "wins")])
        ]
        return {
            "id": str(GUILD_ID),
            "name": "Club",
            "icon": None,
            "owner_id": "1",
            "unavailable": False,
            "member_count": len(self.accounts),
            "large": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
            "joined_at": "2026-01-01T00:00:00+00:00",
            "roles": roles,
            "channels": channels,
            "members": [a.member() for a in self.accounts.values()],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
        }

    def interaction(
        self,
        invoker: int,
        name: str,
        *,
        kind: int = 1,
        options: list | None = None,
        resolved: dict | None = None,
        target_id: str | None = None,
    ) -> dict[str, Any]:
        command = next(c for c in self.commands if c["name"] == name)
        member = self.accounts[invoker].member()
        member["permissions"] = "0"
        data: dict[str, Any] = {"id": command["id"], "name": name, "type": kind, "guild_id": str(GUILD_ID)}
        if options:
            data["options"] = options
        if resolved:
            data["resolved"] = resolved
        if target_id:
            data["target_id"] = target_id
        return {
            "id": str(snowflake(datetime.now(UTC), next(self._ids))),
            "application_id": str(APP_ID),
            "type": 2,
            "data": data,
            "guild_id": str(GUILD_ID),
            "channel_id": str(GENERAL),
            "channel": {"id": str(GENERAL), "type": 0, "name": "general", "guild_id": str(GUILD_ID)},
            "member": member,
            "token": f"token-{next(self._ids)}",
            "version": 1,
            "app_permissions": "268435456",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {},
            "context": 0,
            "attachment_size_limit": 8388608,
        }

    # ---------------------------------------------------------------- REST
    async def rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await request.json() if request.can_read_body and request.content_type == "application/json" else None
        self.requests.append((request.method, path, body))
        if path in self.rate_limit_once:
            self.rate_limit_once.discard(path)
            headers = {"Retry-After": "0.2", "X-RateLimit-Scope": "user", "Via": "1.1 google"}
            return jresp({"message": "You are being rate limited.", "retry_after": 0.2, "global": False}, 429, headers)
        if self.server_errors.get(path):
            self.server_errors[path] -= 1
            return web.Response(status=502, text="bad gateway")
        return self.route(request.method, path, body, request.query)

    def route(self, m: str, path: str, body: Any, query: Any) -> web.StreamResponse:
        parts = path.strip("/").split("/")
        if m == "GET" and path == "/users/@me":
            return jresp(user(BOT_ID, "smallwins", bot=True))
        if m == "GET" and path == "/oauth2/applications/@me":
            return jresp(
                {
                    "id": str(APP_ID),
                    "name": "smallwins",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": user(1, "owner"),
                    "verify_key": "k",
                    "flags": 0,
                }
            )
        if parts[:1] == ["applications"] and m == "PUT":
            self.commands = [
                {
                    "description": "",
                    **c,
                    "id": str(9000 + i),
                    "application_id": str(APP_ID),
                    "version": "1",
                    "guild_id": str(GUILD_ID),
                    "default_member_permissions": c.get("default_member_permissions"),
                    "dm_permission": False,
                    "nsfw": False,
                }
                for i, c in enumerate(body)
            ]
            return jresp(self.commands)
        if parts[:1] == ["interactions"] and m == "POST":
            self.callbacks.append({"interaction": parts[1], **body})
            ephemeral = bool((body.get("data") or {}).get("flags", 0) & 64)
            return jresp(
                {
                    "interaction": {"id": parts[1], "type": 2, "response_message_ephemeral": ephemeral},
                    "resource": {"type": body["type"]},
                }
            )
        if parts[:1] == ["guilds"] and len(parts) >= 4 and parts[2] == "members":
            account = self.accounts.get(int(parts[3]))
            if account is None:
                return error(404, "Unknown Member", 10007)
            if len(parts) == 4 and m == "GET":
                return jresp(account.member())
            role = int(parts[5])
            if role in self.forbidden_roles:
                return error(403, "Missing Permissions", 50013)
            if role not in self.roles:
                return error(404, "Unknown Role", 10011)
            (account.roles.add if m == "PUT" else account.roles.discard)(role)
            return web.Response(status=204)
        if path == f"/guilds/{GUILD_ID}/channels":
            return jresp(self.guild()["channels"])
        if path == f"/guilds/{GUILD_ID}/threads/active":
            return jresp({"threads": [], "members": []})
        if parts[:1] == ["channels"] and len(parts) == 3 and parts[2] == "messages":
            channel = int(parts[1])
            if m == "POST":
                self.posted.append({"channel": channel, **body})
                return jresp(
                    {
                        **self.message(BOT_ID, body.get("content") or "", at=datetime.now(UTC), channel=channel),
                        "embeds": body.get("embeds", []),
                    }
                )
            if channel in self.unreadable_channels:
                return error(403, "Missing Access", 50001)
            after, limit = int(query.get("after", 0)), int(query.get("limit", 50))
            newer = [msg for msg in self.history.get(channel, []) if int(msg["id"]) > after]
            page = sorted(newer, key=lambda msg: int(msg["id"]))[:limit]
            for msg in page:
                counts: dict[str, int] = {}
                for (mid, emoji), users in self.reactions.items():
                    if mid == int(msg["id"]):
                        counts[emoji] = len(users)
                msg["reactions"] = [
                    {"emoji": {"id": None, "name": e}, "count": n, "me": False} for e, n in counts.items()
                ]
            return jresp(list(reversed(page)))  # Discord answers newest first
        if parts[:1] == ["channels"] and len(parts) == 6 and parts[4] == "reactions":
            users = self.reactions.get((int(parts[3]), unquote(parts[5])), [])
            return jresp([user(u, self.accounts[u].name) for u in users])
        return error(404, "404: Not Found", 0)

    # ---------------------------------------------------------------- gateway
    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        self._sockets.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            self.gateway_received.append(data)
            if data["op"] == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif data["op"] == 2:
                await self.dispatch(
                    "READY",
                    {
                        "v": 10,
                        "user": user(BOT_ID, "smallwins", bot=True),
                        "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                        "session_id": "s1",
                        "resume_gateway_url": self.ws_url,
                        "shard": [0, 1],
                        "application": {"id": str(APP_ID), "flags": 0},
                    },
                )
                await self.dispatch("GUILD_CREATE", self.guild())
                self.ready.set()
        self._ws = None
        return ws

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self._ws is not None, "no bot connected"
        await self._ws.send_json({"op": 0, "t": event, "s": next(self._seq), "d": data})


class ThreadedFake:
    """The fake Discord on its own event loop in a thread, for commands that run their own loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake: FakeDiscord = asyncio.run_coroutine_threadsafe(FakeDiscord().start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
