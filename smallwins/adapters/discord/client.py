"""Making discord.py clients: the gateway bot that listens, and a REST-only client for the rest."""

from __future__ import annotations

import discord
import discord.gateway
import discord.http
import yarl

from smallwins.adapters.discord.settings import Shared
from smallwins.core.config import ConfigError, resolve_secret


def token_of(settings: Shared) -> str:
    """The bot token; also points discord.py at the configured endpoints (process-wide in discord.py)."""
    if settings.api_url:
        discord.http.Route.BASE = settings.api_url
    if settings.gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.gateway_url)
    return resolve_secret(settings.token_env, setting="plugins.discord.token_env")


def guild_of(settings: Shared) -> str:
    if settings.guild_id is None:
        raise ConfigError("plugins.discord.guild_id is not set: the id of your server (right-click it, Copy Server ID)")
    return settings.guild_id


def gateway_intents() -> discord.Intents:
    """What the bot asks for: messages with their text (privileged), reactions, members (privileged)."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.guild_reactions = True
    intents.message_content = True
    intents.members = True
    return intents


async def rest_client(settings: Shared) -> discord.Client:
    """A logged-in client without a gateway connection: for roles, history and announcements."""
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token_of(settings))
    except discord.LoginFailure as exc:
        await client.close()
        raise ConfigError(f"Discord refused the token in {settings.token_env}: {exc}") from None
    return client
