"""Settings of the ``discord`` plugin (``[plugins.discord]`` in plugins.toml); the token by ``token_env``.

``token_env`` and ``guild_id`` are declared by both components, so an operator writes them once
in ``[plugins.discord]``: the bot that listens and the presenter that gives roles must agree on
which bot and which server.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SNOWFLAKE = re.compile(r"^[1-9][0-9]{0,19}$")


def _snowflake(value: str | int, what: str) -> str:
    text = str(value).strip()
    if not SNOWFLAKE.match(text):
        raise ValueError(f"{what} '{value}' is not a Discord id (digits only; Developer Mode on, right-click, Copy ID)")
    return text


class ChannelRules(BaseModel):
    """Per-channel credit rules, overriding the plugin-wide ones."""

    model_config = ConfigDict(extra="forbid")

    credit: bool | None = Field(default=None, description="false: messages here never count")
    cooldown_seconds: int | None = Field(default=None, ge=0, le=86400)
    min_length: int | None = Field(default=None, ge=0, le=4000)


class Shared(BaseModel):
    """Keys both components declare (written once in ``[plugins.discord]``)."""

    model_config = ConfigDict(extra="forbid")

    token_env: str = Field(default="DISCORD_TOKEN", description="variable holding the bot token")
    guild_id: str | None = Field(default=None, description="the server (guild) id; required to run")
    api_url: str | None = Field(
        default=None, description="REST base instead of https://discord.com/api/v10 (a rate-limit proxy, tests)"
    )
    gateway_url: str | None = Field(default=None, description="gateway instead of Discord's (a proxy, tests)")

    @field_validator("api_url", "gateway_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"'{value}' is not an http(s):// or ws(s):// URL")
        return value.rstrip("/") if value else value

    @field_validator("guild_id", mode="before")
    @classmethod
    def _guild(cls, value: str | int | None) -> str | None:
        return None if value is None else _snowflake(value, "guild_id")


class SourceSettings(Shared):
    """The ``discord`` source: which messages count, anti-spam, slash commands, catch-up."""

    include_channels: list[str] = Field(
        default_factory=list, description="only these channels (and their threads) count; empty: all"
    )
    exclude_channels: list[str] = Field(default_factory=list, description="never count these channels")
    cooldown_seconds: int = Field(
        default=60, ge=0, le=86400, description="at most one credited message per member per window; 0: every one"
    )
    min_length: int = Field(default=1, ge=0, le=4000, description="shorter messages earn no credit")
    channels: dict[str, ChannelRules] = Field(default_factory=dict, description="channel id -> its own rules")
    moderator_roles: list[str] = Field(
        default_factory=list, description="role ids allowed /grant, /revoke and 'Mark helpful'"
    )
    commands: bool = Field(default=True, description="register and answer the slash commands")
    catch_up: bool = Field(default=True, description="on start, read what was missed while the bot was down")
    reconnect: bool = Field(default=True, description="reconnect after a gateway drop (discord.py's own logic)")

    @field_validator("include_channels", "exclude_channels", "moderator_roles", mode="before")
    @classmethod
    def _ids(cls, values: list[str | int]) -> list[str]:
        return [_snowflake(v, "channel or role id") for v in values]

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_keys(cls, value: dict[str, object]) -> dict[str, object]:
        return {_snowflake(k, "channel id"): v for k, v in value.items()}


class RolesSettings(Shared):
    """The ``discord_roles`` presenter: which role each achievement, tier or capability gives."""

    achievement_roles: dict[str, str] = Field(default_factory=dict, description="achievement id -> role id")
    tier_roles: dict[str, str] = Field(
        default_factory=dict, description="'achievement:tier' -> role id (a trophy's tier; only the held tier)"
    )
    capability_roles: dict[str, str] = Field(
        default_factory=dict, description="an achievement's grants_role label -> role id"
    )
    restore_removed_roles: bool = Field(
        default=True, description="a role removed by hand comes back on the next sync (false: it stays removed)"
    )
    announce_channel_id: str | None = Field(default=None, description="post an embed here for new badges")
    announce_per_minute: int = Field(default=5, ge=1, le=60, description="announcements beyond this are skipped")

    @field_validator("achievement_roles", "tier_roles", "capability_roles", mode="before")
    @classmethod
    def _roles(cls, value: dict[str, str | int]) -> dict[str, str]:
        return {key: _snowflake(role, f"role for '{key}'") for key, role in value.items()}

    @field_validator("announce_channel_id", mode="before")
    @classmethod
    def _channel(cls, value: str | int | None) -> str | None:
        return None if value is None else _snowflake(value, "announce_channel_id")

    @model_validator(mode="after")
    def _tiers(self) -> RolesSettings:
        for key in self.tier_roles:
            if ":" not in key:
                raise ValueError(f"tier_roles key '{key}' must be 'achievement:tier', e.g. 'contributor-trophy:gold'")
        return self

    def managed_roles(self) -> set[str]:
        """Every role this presenter gives and takes: roles outside it are never touched."""
        return {*self.achievement_roles.values(), *self.tier_roles.values(), *self.capability_roles.values()}
