"""The normalized event every source adapter produces, and its validation.

Modelled on CloudEvents and the Segment track call: one shape for a Discord message, a YouTube
comment, a newsletter reply or a link click, so that rules never see platform payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

#: ``data`` is for small platform-specific facts, not for whole payloads.
MAX_DATA_BYTES = 4096

#: How far ahead of our clock a sender's clock may run before its events are refused.
MAX_CLOCK_SKEW = timedelta(days=1)

#: Event types the core itself acts on (sources declare their own on top of these).
CORE_EVENT_TYPES = frozenset({"link.code_presented", "moderator.approved", "moderator.rejected"})


#: Event types whose subject is staff by definition (a moderator acting, not a member).
STAFF_TYPE_PREFIX = "moderator."

#: A dotted verb such as ``message.posted`` or ``reaction.added``.
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
EventType = Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN, max_length=80)]


class InvalidEvent(ValueError):
    """An event that cannot be accepted; the message names each bad field and why."""


def unstorable_text(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds text no database can store (NUL, a lone surrogate), or ``None``.

    PostgreSQL refuses both in text and jsonb while SQLite would keep them, so they are refused
    here: both backends then accept and refuse exactly the same events.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path.lstrip('.') + ': ' if path else ''}contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path.lstrip('.') + ': ' if path else ''}contains a lone surrogate (not valid Unicode text)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = unstorable_text(key, f"{path}.{key!r} (a key)") or unstorable_text(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_text(item, f"{path}[{index}]")
            if found:
                return found
    return None


class Event(BaseModel):
    """One member action on one platform, normalized."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=200, description="platform id or derived dedup key")
    source: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$", description="platform, e.g. discord")
    type: EventType = Field(description="dotted verb, e.g. message.posted")
    subject: str = Field(min_length=1, max_length=320, description="platform account id")
    time: AwareDatetime
    proof: str | None = Field(default=None, max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", "source", "type", "subject", "proof", "data", mode="before")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = unstorable_text(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("time")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        value = value.astimezone(UTC)
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError(f"is in the future ({value.isoformat()}); a sender's clock is wrong")
        return value

    @field_validator("data")
    @classmethod
    def _small_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(json.dumps(value, separators=(",", ":")).encode())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"must be JSON-serializable ({exc})") from exc
        if size > MAX_DATA_BYTES:
            raise ValueError(f"is {size} bytes; at most {MAX_DATA_BYTES} allowed")
        for field in ("target", "retracts"):
            named = value.get(field)
            if named is not None and (not isinstance(named, str) or ":" not in named.strip(":")):
                raise ValueError(f"{field} must name another event as 'source:id', e.g. 'discord:1187'")
        if not isinstance(value.get("staff", False), bool):
            raise ValueError("staff must be true or false")
        return value

    @property
    def key(self) -> str:
        """The dedup key: the same source and id is the same event."""
        return f"{self.source}:{self.id}"

    @property
    def target(self) -> str | None:
        """``source:id`` of the event this one approves or reacts to, if any."""
        target = self.data.get("target")
        return target if isinstance(target, str) else None

    @property
    def retracts(self) -> str | None:
        """``source:id`` of the event this one takes back (a deleted message, a removed reaction)."""
        retracts = self.data.get("retracts")
        return retracts if isinstance(retracts, str) else None

    @property
    def by_staff(self) -> bool:
        """Whether the subject acts as staff (a moderator or a bot): they hold no standing."""
        return self.data.get("staff") is True or self.type.startswith(STAFF_TYPE_PREFIX)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def describe_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """Render pydantic's errors as one line per field: ``field 'time': reason``."""
    lines = []
    for error in exc.errors(include_url=False):
        location = ".".join(str(part) for part in error["loc"]) or "(root)"
        lines.append(f"{prefix}'{location}': {error['msg']}")
    return "; ".join(lines)


def parse_event(payload: Mapping[str, Any] | str) -> Event:
    """Validate a mapping (or one JSON text) into an :class:`Event`, or raise :class:`InvalidEvent`."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(payload, Mapping):
        raise InvalidEvent(f"expected a JSON object, got {type(payload).__name__}")
    try:
        return Event.model_validate(payload)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc, prefix="field ")) from exc
