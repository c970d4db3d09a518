"""Fixtures of the Discord tests: the real discord.py pointed at a fake Discord on loopback, and a
smallwins configured by plugins.toml (over SQLite or PostgreSQL) with the bot and the role presenter."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import discord.gateway
import discord.http
import pytest
import yarl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_discord import GUILD_ID, MOD_ROLE, FakeDiscord

from smallwins.core.app import App, build_app

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "data" / "catalogue.toml"
TOKEN_ENV = "SMALLWINS_TEST_DISCORD_TOKEN"
FIRST_WORDS_ROLE, HELPER_ROLE, VOICE_SILVER_ROLE = 1100000000000000031, 1100000000000000032, 1100000000000000033


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def plugins_toml(source: dict[str, Any], roles: dict[str, Any]) -> str:
    lines = [
        "[smallwins]",
        f"catalogue = {toml_value(str(CATALOGUE))}",
        'default_timezone = "UTC"',
        "",
        "[plugins.web_widget]",
        "enabled = false",
        "",
        "[plugins.discord]",
        "enabled = true",
        f"token_env = {toml_value(TOKEN_ENV)}",
        f"guild_id = {toml_value(str(GUILD_ID))}",
        "",
        "[plugins.discord.discord]",
        *(f"{k} = {toml_value(v)}" for k, v in source.items()),
        "",
        "[plugins.discord.discord_roles]",
        *(f"{k} = {toml_value(v)}" for k, v in roles.items()),
    ]
    return "\n".join(lines) + "\n"


DEFAULT_ROLES: dict[str, Any] = {
    "achievement_roles": {"first-words": str(FIRST_WORDS_ROLE)},
    "capability_roles": {"helper": str(HELPER_ROLE)},
    "tier_roles": {"voice:silver": str(VOICE_SILVER_ROLE)},
}


@pytest.fixture
def point_discord_py_at() -> Iterator[Callable[[FakeDiscord], None]]:
    """Send discord.py's REST and gateway traffic to a fake (restored after the test)."""
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY

    def point(fake: FakeDiscord) -> None:
        discord.http.Route.BASE = fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.ws_url)

    yield point
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
def make_app(tmp_path: Path, database_url: str) -> Iterator[Callable[..., App]]:
    os.environ[TOKEN_ENV] = "fake-bot-token"
    opened: list[App] = []

    def build(roles: dict[str, Any] | None = None, **source: Any) -> App:
        settings = {"moderator_roles": [str(MOD_ROLE)], "cooldown_seconds": 0} | source
        config = tmp_path / "plugins.toml"
        config.write_text(plugins_toml(settings, DEFAULT_ROLES | (roles or {})))
        app = build_app(config, database_url=database_url)
        opened.append(app)
        return app

    yield build
    for app in opened:
        app.close()
