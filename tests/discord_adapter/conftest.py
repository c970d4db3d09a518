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

from discord_harness import DEFAULT_ROLES, TOKEN_ENV, plugins_toml
from fake_discord import MOD_ROLE, FakeDiscord

from smallwins.core.app import App, build_app


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
