"""Settings of the ``web`` plugin (``[plugins.web]`` in plugins.toml); secrets by ``*_env``."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from smallwins.core.events import EVENT_TYPE_PATTERN

CreditPeriod = Literal["day", "week", "month", "ever"]
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as browsers send it in the Origin header."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class FormSettings(BaseModel):
    """One form or poll that ``POST /f/{form}`` accepts."""

    model_config = ConfigDict(extra="forbid")

    event: str = Field(default="form.submitted", pattern=EVENT_TYPE_PATTERN, description="event type recorded")
    fields: list[str] = Field(default_factory=list, description="the fields a submission may carry")
    required: list[str] = Field(default_factory=list)
    choices: dict[str, list[str]] = Field(default_factory=dict, description="allowed values per field (polls)")
    max_length: int = Field(default=500, ge=1, le=4000, description="longest value of one field")
    once: bool = Field(default=False, description="one submission per member (a poll); later ones are repeats")
    redirect: str | None = Field(default=None, description="where a browser goes after submitting (fixed URL)")

    @model_validator(mode="after")
    def _consistent(self) -> FormSettings:
        for name in self.fields:
            if not FIELD_NAME.match(name):
                raise ValueError(f"field name '{name}' must be lowercase letters, digits and _ (at most 40)")
        unknown = sorted((set(self.required) | set(self.choices)) - set(self.fields))
        if unknown:
            raise ValueError(f"'{unknown[0]}' is not one of this form's fields {self.fields}")
        if self.redirect is not None and urlsplit(self.redirect).scheme not in ("http", "https"):
            raise ValueError("redirect must be an http(s) URL")
        return self


class HookSettings(BaseModel):
    """One inbound webhook source (a store, an LMS, a Zapier-like tool)."""

    model_config = ConfigDict(extra="forbid")

    secret_env: str = Field(description="environment variable holding this source's HMAC secret")
    event_types: list[str] = Field(default_factory=list, description="types it may send; empty = any")


class WebSettings(BaseModel):
    """How the web adapter listens and what it accepts."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8321, ge=0, le=65535)
    public_url: str | None = Field(
        default=None, description="how people reach this server (short links, QR codes); default http://host:port"
    )
    secret_env: str = Field(
        default="SMALLWINS_WEB_SECRET",
        description="variable holding the key that signs member tokens; unset: a key kept in the store",
    )
    admin_token_env: str = Field(default="SMALLWINS_WEB_ADMIN_TOKEN", description="variable for /admin")
    cors_origins: list[str] = Field(default_factory=list, description="creator sites that embed the widget")
    credit_period: CreditPeriod = "day"
    member_token_days: int = Field(default=365, ge=1, description="how long a personal link stays valid")
    cookie_days: int = Field(default=365, ge=1)
    max_form_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)
    max_hook_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_hook_events: int = Field(default=500, ge=1, le=5000)
    replay_window_seconds: int = Field(default=300, ge=10, le=3600)
    widget_max_age: int = Field(default=60, ge=0, le=86400, description="seconds a public card may be cached")
    icons: dict[str, str] = Field(default_factory=dict, description="badge image URL per achievement id")
    forms: dict[str, FormSettings] = Field(default_factory=dict)
    hooks: dict[str, HookSettings] = Field(default_factory=dict)

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        result = []
        for item in value:
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
                raise ValueError(f"'{item}' is not an origin like https://club.example")
            result.append(origin_of(item))
        return result

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("forms", "hooks")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9_-]{0,39}$", name):
                raise ValueError(f"'{name}' must be lowercase letters, digits, - and _ (at most 40)")
        return value

    def base_url(self) -> str:
        """Where this server is reached from outside (short links and QR codes point here)."""
        return self.public_url or f"http://{self.host}:{self.port}"
