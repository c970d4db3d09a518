"""What the Discord tests share: ids, the test catalogue, and plugins.toml for the bot and presenter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fake_discord import GUILD_ID

from tests.toml_helpers import toml_value

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "data" / "catalogue.toml"
TOKEN_ENV = "SMALLWINS_TEST_DISCORD_TOKEN"
FIRST_WORDS_ROLE, HELPER_ROLE, VOICE_SILVER_ROLE = 1100000000000000031, 1100000000000000032, 1100000000000000033


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
