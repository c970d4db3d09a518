"""The normalized event every source adapter produces, and its validation.

Modelled on CloudEvents and the Segment track call: one shape for a Discord message, a YouTube
comment, a newsletter reply or a link click, so that rules never see platform payloads.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
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

#: Earlier times are a timestamp of 0 or a date parsed wrongly, not something a member did.
MIN_EVENT_TIME = datetime(1970, 1, 2, tzinfo=UTC)

#: How deeply ``data`` may nest (objects in lists in objects...).
MAX_DATA_DEPTH = 32

#: Longest ``data.target`` / ``data.retracts`` (a ``source:id`` key; the store's column width).
MAX_KEY_LENGTH = 250

#: Longer ``data.display_name`` values are cut to this (the store's column width).
MAX_DISPLAY_NAME = 200

#: Integers in ``data`` must fit 64 bits: the JSON encoder of the store (and SQLite's JSON
#: functions) refuse or round larger ones, PostgreSQL's jsonb would keep them.
MIN_STORED_INT, MAX_STORED_INT = -(2**63), 2**63 - 1

#: Event types the core itself acts on (sources declare their own on top of these).
CORE_EVENT_TYPES = frozenset({"link.code_presented", "moderator.approved", "moderator.rejected"})


#: Event types whose subject is staff by definition (a moderator acting, not a member).
STAFF_TYPE_PREFIX = "moderator."

#: A dotted verb such as ``message.posted`` or ``reaction.added``.
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
EventType = Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN, max_length=80)]


class InvalidEvent(ValueError):
    """An event that cannot be accepted; the message names each bad field and why."""


def _where(path: str) -> str:
    return f"{path.lstrip('.')}: " if path else ""


def unstorable_text(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Where ``value`` holds what no database can store alike, or ``None``.

    PostgreSQL refuses NUL and lone surrogates in text and jsonb, and NaN or infinite numbers
    in jsonb, while SQLite would keep them; deep nesting is refused before anything recurses
    into it. Refusing these here makes both backends accept and refuse exactly the same events.
    """
    if depth > MAX_DATA_DEPTH:
        return f"{_where(path)}nested deeper than {MAX_DATA_DEPTH} levels"
    if isinstance(value, str):
        if value.isascii():  # hot: every field of every event; ASCII text has no lone surrogate
            return f"{_where(path)}contains a NUL character" if "\x00" in value else None
        if "\x00" in value:
            return f"{_where(path)}contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{_where(path)}contains a lone surrogate (not valid Unicode text)"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{_where(path)}is {value}, which JSON cannot carry (numbers must be finite)"
    if isinstance(value, int) and not isinstance(value, bool) and not MIN_STORED_INT <= value <= MAX_STORED_INT:
        return f"{_where(path)}is {value}, outside the 64-bit range a stored number may have (send it as text)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = unstorable_text(key, f"{path}.{key!r} (a key)", depth + 1) or unstorable_text(
                item, f"{path}.{key}", depth + 1
            )
            if found:
                return found
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable_text(item, f"{path}[{index}]", depth + 1)
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
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"is out of range ({value.isoformat()})") from None
        if value < MIN_EVENT_TIME:
            raise ValueError(f"is before {MIN_EVENT_TIME.date()} ({value.isoformat()}); a zero or mis-parsed timestamp")
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError(f"is in the future ({value.isoformat()}); a sender's clock is wrong")
        return value

    @field_validator("data")
    @classmethod
    def _small_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        name = value.get("display_name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"display_name must be text, not {type(name).__name__}")
        if name is not None and len(name) > MAX_DISPLAY_NAME:  # a platform's long name is no reason to lose the event
            value = {**value, "display_name": name[:MAX_DISPLAY_NAME]}  # (trimmed before the size is measured)
        try:  # measured as stored: orjson's UTF-8 (NaN and the like were refused by _storable)
            size = len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
        except TypeError as exc:
            raise ValueError(f"must be JSON-serializable ({exc})") from exc
        if size > MAX_DATA_BYTES:
            raise ValueError(f"is {size} bytes; at most {MAX_DATA_BYTES} allowed")
        for field in ("target", "retracts"):
            named = value.get(field)
            if named is not None and (not isinstance(named, str) or ":" not in named.strip(":")):
                raise ValueError(f"{field} must name another event as 'source:id', e.g. 'discord:1187'")
            if isinstance(named, str) and len(named) > MAX_KEY_LENGTH:
                raise ValueError(
                    f"{field} is {len(named)} characters; an event's 'source:id' has at most {MAX_KEY_LENGTH}"
                )
        if not isinstance(value.get("staff", False), bool):
            raise ValueError("staff must be true or false")
        return value

    @functools.cached_property
    def key(self) -> str:
        """The dedup key: the same source and id is the same event (kept: the ingest asks often)."""
        return f"{self.source}:{self.id}"

    @functools.cached_property
    def target(self) -> str | None:
        """``source:id`` of the event this one approves or reacts to, if any."""
        target = self.data.get("target")
        return target if isinstance(target, str) else None

    @functools.cached_property
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


def _no_constant(name: str) -> Any:
    raise InvalidEvent(f"not valid JSON: {name} is not a JSON value")


def load_json(text: str) -> Any:
    """One JSON text, strictly (no NaN or Infinity), or :class:`InvalidEvent` saying why not.

    Python's parser fails in ways other than ``JSONDecodeError`` (deep nesting, numbers of
    thousands of digits); each becomes a reason, never a traceback.
    """
    text = text.rstrip("\r\n")  # a line's own newline: an error at its end is reported on it
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if "\n" in text else f"column {exc.colno}"
        raise InvalidEvent(f"not valid JSON: {exc.msg} at {where}") from None
    except RecursionError:
        raise InvalidEvent("not accepted: JSON nested too deeply") from None
    except InvalidEvent:
        raise
    except ValueError as exc:
        if "digits" in str(exc):  # Python refuses to parse integers of more than 4300 digits
            raise InvalidEvent("not accepted: a number in it has thousands of digits") from None
        raise InvalidEvent(f"not accepted: {exc}") from None


def json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words (an operator's file is JSON, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else type(value).__name__


def parse_event(payload: Mapping[str, Any] | str) -> Event:
    """Validate a mapping (or one JSON text) into an :class:`Event`, or raise :class:`InvalidEvent`."""
    if isinstance(payload, str):
        payload = load_json(payload)
    if not isinstance(payload, Mapping):
        raise InvalidEvent(f"expected a JSON object, got {json_kind(payload)}")
    try:
        return Event.model_validate(payload)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc, prefix="field ")) from exc
