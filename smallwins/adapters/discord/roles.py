"""The ``discord_roles`` presenter: each member's Discord roles equal what their standing says.

For every change it reads the member's current roles (``GET /guilds/{g}/members/{u}``) and adds
or removes only the roles plugins.toml maps (roles it does not manage are never touched), so a
role removed by hand comes back on the next sync unless ``restore_removed_roles = false``. The
roles it gave are remembered per account so that setting can tell "removed by hand" from "never
given". A merged member's change syncs the member it was merged into.

Failures: discord.py waits out 429s and retries 5xx itself; what is still failing after that is
transient and raised (the outbox tries again later). Missing permission, a role above the bot's,
an unknown role or a member who left cannot be fixed by retrying: they are raised as
:class:`PermanentDeliveryError` with the reason, parked, and the other members' changes go on.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from typing import Any

import anyio
import discord
import structlog

from smallwins.adapters.discord.client import guild_of, rest_client
from smallwins.adapters.discord.settings import RolesSettings
from smallwins.core.contract import MemberSnapshot, OutboxChange, PermanentDeliveryError, PluginContext
from smallwins.core.cursors import CursorStore

log = structlog.get_logger(__name__)

UNKNOWN_MEMBER, UNKNOWN_ROLE, MISSING_PERMISSIONS = 10007, 10011, 50013


def desired_roles(settings: RolesSettings, member: MemberSnapshot) -> set[str]:
    """The role ids a member's standing earns under the mapping in plugins.toml."""
    roles = set()
    for award in member.awards:
        if award["id"] in settings.achievement_roles:
            roles.add(settings.achievement_roles[award["id"]])
        tier_key = f"{award['id']}:{award.get('tier')}"
        if tier_key in settings.tier_roles:
            roles.add(settings.tier_roles[tier_key])
    roles.update(settings.capability_roles[label] for label in member.roles if label in settings.capability_roles)
    return roles


def permanent(exc: discord.HTTPException, user_id: str, role: str | None = None) -> PermanentDeliveryError | None:
    """The parked reason for an error retrying cannot fix, or ``None`` for a transient one."""
    if isinstance(exc, discord.Forbidden):
        where = f" role {role}" if role else ""
        return PermanentDeliveryError(
            f"403 Missing Permissions (code {exc.code}) changing{where} for Discord user {user_id}: the bot needs "
            "Manage Roles and its highest role must be above every role it gives"
        )
    if isinstance(exc, discord.NotFound):
        if exc.code == UNKNOWN_ROLE:
            return PermanentDeliveryError(f"404 Unknown Role {role}: it was deleted; fix the id in plugins.toml")
        return PermanentDeliveryError(f"404 Unknown Member {user_id} (code {exc.code}): not on the server (left?)")
    return None


class DiscordRolesPresenter:
    def __init__(self, context: PluginContext) -> None:
        assert isinstance(context.settings, RolesSettings)
        self.context = context
        self.settings: RolesSettings = context.settings
        self.guild_id = guild_of(self.settings)
        self.granted = CursorStore(context.app.store, context.name)
        self.client: discord.Client | None = None
        self.announced: deque[float] = deque()
        self.last_synced: dict[str, tuple[weakref.ref[MemberSnapshot], frozenset[str]]] = {}

    async def _http(self) -> discord.Client:
        if self.client is None:
            self.client = await rest_client(self.settings)
        return self.client

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        if change.kind == "member.merged" and change.payload.get("into"):
            member = await anyio.to_thread.run_sync(self._snapshot, int(change.payload["into"]))
        wanted = desired_roles(self.settings, member)
        for account in member.identities.get("discord", []):
            # The outbox hands one snapshot to all of a member's changes in a batch: sync once.
            synced = self.last_synced.get(account)
            if synced is None or synced[0]() is not member or synced[1] != wanted:
                await self.sync(account, wanted)
                self.last_synced[account] = (weakref.ref(member), frozenset(wanted))
        if change.kind == "award" and self.settings.announce_channel_id and not member.private:
            await self.announce(change, member)

    def _snapshot(self, member_id: int) -> MemberSnapshot:
        app = self.context.app
        with app.store.sessions() as session:
            return app.snapshot(session, member_id)

    async def sync(self, user_id: str, wanted: set[str]) -> tuple[set[str], set[str]]:
        """Make the managed roles of one Discord account equal ``wanted``; (added, removed)."""
        client = await self._http()
        try:
            data = await client.http.get_member(int(self.guild_id), int(user_id))
        except discord.HTTPException as exc:
            raise permanent(exc, user_id) or exc from None
        current = {str(role) for role in data.get("roles", [])}
        remembered = await anyio.to_thread.run_sync(self.granted.get, f"granted:{user_id}") or {}
        given_before = set(remembered.get("roles", []))
        add = wanted - current
        if not self.settings.restore_removed_roles:
            add -= given_before  # given once and now missing: removed by hand, and that stands
        remove = (current & self.settings.managed_roles()) - wanted
        for role in sorted(add):
            await self._change(client.http.add_role, user_id, role)
        for role in sorted(remove):
            await self._change(client.http.remove_role, user_id, role)
        now_given = (given_before | add) & wanted if not self.settings.restore_removed_roles else wanted
        if now_given != given_before:
            await anyio.to_thread.run_sync(self.granted.set, f"granted:{user_id}", {"roles": sorted(now_given)})
        if add or remove:
            log.info("discord.roles_synced", user=user_id, added=sorted(add), removed=sorted(remove))
        return add, remove

    async def _change(self, call: Any, user_id: str, role: str) -> None:
        try:
            await call(int(self.guild_id), int(user_id), int(role), reason="smallwins: achievement standing")
        except discord.HTTPException as exc:
            raise permanent(exc, user_id, role) or exc from None

    async def announce(self, change: OutboxChange, member: MemberSnapshot) -> None:
        """An embed for a new badge in the announcement channel, at most ``announce_per_minute``."""
        now = time.monotonic()
        while self.announced and now - self.announced[0] > 60:
            self.announced.popleft()
        if len(self.announced) >= self.settings.announce_per_minute:
            log.info("discord.announcement_skipped", reason="rate limit", outbox_id=change.id)
            return
        achievement = self.context.app.catalogue.achievements.get(str(change.payload.get("achievement_id")))
        if achievement is None or not member.identities.get("discord"):
            return
        mention = f"<@{member.identities['discord'][0]}>"
        embed = discord.Embed(
            title=f"New badge: {achievement.name}", description=f"{mention} earned it. {achievement.description}"
        )
        client = await self._http()
        try:
            await client.get_partial_messageable(int(str(self.settings.announce_channel_id))).send(
                embed=embed, allowed_mentions=discord.AllowedMentions.none()
            )
            self.announced.append(now)
        except discord.HTTPException as exc:  # an announcement is a courtesy: never blocks the roles
            log.warning("discord.announcement_failed", outbox_id=change.id, error=str(exc))


def create(context: PluginContext) -> DiscordRolesPresenter:
    return DiscordRolesPresenter(context)
