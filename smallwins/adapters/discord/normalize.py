"""Pure functions from Discord gateway dispatches (``{"t": "MESSAGE_CREATE", "d": {...}}``) to events.

Payloads are in the shape Discord's API documentation gives; the capture task adds what the
payload lacks and the bot knows: ``received_at`` (reactions carry no time), ``parent_id`` of a
thread, and the author of a deleted message (``author_id``, from the cache or the store).

**Anti-spam, order-free.** A member earns credit for at most one message per cooldown window,
and windows are aligned to the clock (``floor(time / cooldown)``), so the answer depends only on
the messages, never on the order they arrive in: every message of one member in one window has
the same event id, and the store's dedup keeps one. Replaying history gives the same credit.
Messages shorter than ``min_length`` earn none. A reaction names its message's credited event in
``data.target`` (the author comes with ``MESSAGE_REACTION_ADD``, the window from the message id),
so ``approved_count`` works on Discord as anywhere; a deleted message retracts that event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from smallwins.adapters.discord.settings import SNOWFLAKE
from smallwins.core.events import Event, InvalidEvent, describe_validation_error

if TYPE_CHECKING:
    from smallwins.adapters.discord.settings import SourceSettings

SOURCE = "discord"
POSTED = "message.posted"
EDITED = "message.edited"
DELETED = "message.deleted"
THREAD = "thread.started"
REACTED = "reaction.added"
UNREACTED = "reaction.removed"
JOINED = "member.joined"
MARKED_HELPFUL = "moderator.approved"
EVENT_TYPES = frozenset({POSTED, EDITED, DELETED, THREAD, REACTED, UNREACTED, JOINED})

#: Discord ids (snowflakes) carry their creation time: milliseconds since 2015-01-01.
DISCORD_EPOCH_MS = 1_420_070_400_000
#: DEFAULT and REPLY; joins, pins, boosts and other system messages never count.
COUNTED_MESSAGE_TYPES = frozenset({0, 19})


@dataclass(frozen=True)
class ChannelCredit:
    """What a message in one channel earns."""

    credited: bool
    cooldown: int
    min_length: int
    scope: str  # windows are per member and scope: "all", or the channel with its own cooldown


@dataclass(frozen=True)
class CreditRules:
    """Which channels count and the anti-spam rules, from the source's settings."""

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    cooldown: int = 60
    min_length: int = 1
    channels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: SourceSettings) -> CreditRules:
        return cls(
            include=frozenset(settings.include_channels),
            exclude=frozenset(settings.exclude_channels),
            cooldown=settings.cooldown_seconds,
            min_length=settings.min_length,
            channels={k: v.model_dump(exclude_none=True) for k, v in settings.channels.items()},
        )

    def channel(self, channel_id: str, parent_id: str | None = None) -> ChannelCredit:
        """The rules of a channel; a thread follows its parent channel unless it has its own."""
        ids = [channel_id] + ([parent_id] if parent_id else [])
        own_key = next((c for c in ids if c in self.channels), None)
        own = self.channels.get(own_key, {}) if own_key else {}
        listed = not self.include or any(c in self.include for c in ids)
        credited = listed and not any(c in self.exclude for c in ids) and own.get("credit", True)
        has_own_cooldown = "cooldown_seconds" in own
        return ChannelCredit(
            credited=bool(credited),
            cooldown=int(own.get("cooldown_seconds", self.cooldown)),
            min_length=int(own.get("min_length", self.min_length)),
            scope=own_key if (own_key and has_own_cooldown) else "all",
        )


def _snowflake(value: Any, field: str) -> str:
    """A Discord id as text (the pattern the settings check ids with), or :class:`InvalidEvent`
    naming the field (a list or a name would otherwise become a member's account)."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if SNOWFLAKE.match(text):
        return text
    raise InvalidEvent(f"'{field}' is not a Discord id (a snowflake: digits), got {_shown(value)}")


def _object(value: Any, field: str) -> Mapping[str, Any]:
    """A nested payload object (``author``, ``member``, ``emoji``), empty when absent."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"'{field}' should be an object, got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def snowflake_time(snowflake: str | int) -> datetime:
    """When a Discord id was made (its message was posted)."""
    return datetime.fromtimestamp(((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def credited_id(message_id: str, author_id: str, credit: ChannelCredit) -> str:
    """The event id a message's credit is stored under (shared by one member's window)."""
    if credit.cooldown <= 0:
        return f"message:{message_id}"
    window = int(snowflake_time(message_id).timestamp()) // credit.cooldown
    return f"message:{author_id}:{credit.scope}:{credit.cooldown}:{window}"


def _time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidEvent(f"time '{value}' is not ISO 8601") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def _with_name(data: dict[str, Any], payload: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with the member's name as the server shows it, when there is one."""
    name = _display_name(payload, user)
    return {**data, "display_name": name} if name else data


def _display_name(payload: Mapping[str, Any], user: Mapping[str, Any]) -> str | None:
    member = _object(payload.get("member"), "member")
    name = member.get("nick") or user.get("global_name") or user.get("username")
    return str(name) if name else None


def _is_automated(user: Mapping[str, Any]) -> bool:
    return bool(user.get("bot") or user.get("system"))


def _proof(guild: Any, channel: Any, message: Any) -> str:
    return f"https://discord.com/channels/{guild or '@me'}/{channel}/{message}"


def _message_posted(d: Mapping[str, Any], rules: CreditRules) -> list[Event]:
    author = _object(d["author"], "author")
    if _is_automated(author) or d.get("webhook_id") or d.get("type", 0) not in COUNTED_MESSAGE_TYPES:
        return []
    if not d.get("guild_id"):
        return []  # direct messages are not community contributions
    message_id, channel_id = _snowflake(d["id"], "id"), _snowflake(d["channel_id"], "channel_id")
    author_id = _snowflake(author.get("id"), "author.id")
    credit = rules.channel(channel_id, d.get("parent_id"))
    content = str(d.get("content") or "").strip()
    if not credit.credited or len(content) < credit.min_length:
        return []
    data: dict[str, Any] = {"message_id": message_id, "channel_id": channel_id, "length": len(content)}
    if d.get("parent_id"):
        data["thread_of"] = str(d["parent_id"])
    reference = d.get("message_reference") or {}
    if d.get("type") == 19 and reference.get("message_id"):
        data["reply_to"] = str(reference["message_id"])
    data = _with_name(data, d, author)
    return [
        Event(
            id=credited_id(message_id, author_id, credit),
            source=SOURCE,
            type=POSTED,
            subject=author_id,
            time=_time(d.get("timestamp"), snowflake_time(message_id)),
            proof=_proof(d.get("guild_id"), channel_id, message_id),
            data=data,
        )
    ]


def _message_edited(d: Mapping[str, Any]) -> list[Event]:
    author = _object(d.get("author"), "author")
    if not author or _is_automated(author) or not d.get("edited_timestamp") or not d.get("guild_id"):
        return []  # embeds resolving also arrive as updates: only a real edit has edited_timestamp
    message_id = _snowflake(d["id"], "id")
    edited = _time(d["edited_timestamp"], snowflake_time(message_id))
    return [
        Event(
            id=f"edit:{message_id}:{int(edited.timestamp() * 1000)}",
            source=SOURCE,
            type=EDITED,
            subject=_snowflake(author.get("id"), "author.id"),
            time=edited,
            proof=_proof(d.get("guild_id"), d.get("channel_id"), message_id),
            data={"message_id": message_id, "length": len(str(d.get("content") or "").strip())},
        )
    ]


def _message_deleted(message_id: str, d: Mapping[str, Any], author_id: Any, rules: CreditRules) -> list[Event]:
    if not author_id:
        return []  # neither cached nor stored: it never earned anything here
    channel_id = str(d["channel_id"])
    credit = rules.channel(channel_id, d.get("parent_id"))
    return [
        Event(
            id=f"delete:{message_id}",
            source=SOURCE,
            type=DELETED,
            subject=str(author_id),
            time=snowflake_time(message_id),
            data={"retracts": f"{SOURCE}:{credited_id(message_id, str(author_id), credit)}", "message_id": message_id},
        )
    ]


def _emoji(d: Mapping[str, Any]) -> str:
    emoji = _object(d.get("emoji"), "emoji")
    return str(emoji.get("id") or emoji.get("name") or "?")


def _reaction(d: Mapping[str, Any], received: datetime, rules: CreditRules, *, added: bool) -> list[Event]:
    member = _object(d.get("member"), "member")
    if _is_automated(_object(member.get("user"), "member.user")):
        return []
    user_id, message_id = _snowflake(d["user_id"], "user_id"), _snowflake(d["message_id"], "message_id")
    key = f"reaction:{message_id}:{user_id}:{_emoji(d)}"
    if not added:
        return [
            Event(
                id=f"un{key}",
                source=SOURCE,
                type=UNREACTED,
                subject=user_id,
                time=received,
                data={"retracts": f"{SOURCE}:{key}"},
            )
        ]
    author_id = d.get("message_author_id")
    credit = rules.channel(str(d["channel_id"]), d.get("parent_id"))
    if not author_id or str(author_id) == user_id or not credit.credited:
        return []  # one's own message earns no approval; an unknown author cannot be credited
    data: dict[str, Any] = {"target": f"{SOURCE}:{credited_id(message_id, str(author_id), credit)}"}
    data = _with_name(data, d, member.get("user") or {})
    return [
        Event(
            id=key,
            source=SOURCE,
            type=REACTED,
            subject=user_id,
            time=received,
            proof=_proof(d.get("guild_id"), d["channel_id"], message_id),
            data=data,
        )
    ]


def _member_joined(d: Mapping[str, Any]) -> list[Event]:
    user = _object(d.get("user"), "user")
    if not user or _is_automated(user):
        return []
    user_id = _snowflake(user.get("id"), "user.id")
    joined = _time(d.get("joined_at"), snowflake_time(user_id))
    data = _with_name({"guild_id": str(d.get("guild_id"))}, d, user)
    return [
        Event(
            id=f"joined:{d.get('guild_id')}:{user_id}:{int(joined.timestamp())}",
            source=SOURCE,
            type=JOINED,
            subject=user_id,
            time=joined,
            data=data,
        )
    ]


def _thread_started(d: Mapping[str, Any], rules: CreditRules) -> list[Event]:
    if not d.get("newly_created") or not d.get("owner_id"):
        return []
    credit = rules.channel(str(d["id"]), d.get("parent_id"))
    if not credit.credited:
        return []
    return [
        Event(
            id=f"thread:{d['id']}",
            source=SOURCE,
            type=THREAD,
            subject=_snowflake(d["owner_id"], "owner_id"),
            time=snowflake_time(d["id"]),
            proof=_proof(d.get("guild_id"), d["id"], d["id"]),
            data={"channel_id": str(d["id"]), "thread_of": str(d.get("parent_id"))},
        )
    ]


def marked_helpful(moderator_id: str, message: Mapping[str, Any], rules: CreditRules) -> Event | None:
    """A moderator's "Mark helpful" on a message: an approval naming the message's credited event."""
    author = message.get("author") or {}
    if not author or _is_automated(author) or str(author["id"]) == moderator_id:
        return None
    message_id = str(message["id"])
    credit = rules.channel(str(message["channel_id"]), message.get("parent_id"))
    return Event(
        id=f"helpful:{message_id}:{moderator_id}",
        source=SOURCE,
        type=MARKED_HELPFUL,
        subject=moderator_id,
        time=datetime.now(UTC),
        proof=_proof(message.get("guild_id"), message["channel_id"], message_id),
        data={"target": f"{SOURCE}:{credited_id(message_id, str(author['id']), credit)}"},
    )


def normalize_dispatch(envelope: Mapping[str, Any], rules: CreditRules | None = None) -> list[Event]:
    """Events for one gateway dispatch; an empty list for what never counts (bots, system messages)."""
    rules = rules or CreditRules()
    kind, d = envelope.get("t"), envelope.get("d")
    if not isinstance(d, Mapping):
        raise InvalidEvent("a Discord dispatch needs 'd', the event's payload object")
    try:
        received = _time(envelope.get("received_at"), datetime.now(UTC))
        if kind == "MESSAGE_CREATE":
            return _message_posted(d, rules)
        if kind == "MESSAGE_UPDATE":
            return _message_edited(d)
        if kind == "MESSAGE_DELETE":
            return _message_deleted(_snowflake(d["id"], "id"), d, d.get("author_id"), rules)
        if kind == "MESSAGE_DELETE_BULK":
            authors = d.get("author_ids") or {}
            return [e for i in d.get("ids", []) for e in _message_deleted(str(i), d, authors.get(str(i)), rules)]
        if kind in ("MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE"):
            return _reaction(d, received, rules, added=kind == "MESSAGE_REACTION_ADD")
        if kind == "GUILD_MEMBER_ADD":
            return _member_joined(d)
        if kind == "THREAD_CREATE":
            return _thread_started(d, rules)
    except KeyError as exc:
        raise InvalidEvent(f"{kind} payload lacks {exc.args[0]!r}") from None
    except ValidationError as exc:  # the event it makes is not valid (a time in the future)
        raise InvalidEvent(f"{kind} payload: {describe_validation_error(exc, prefix='field ')}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"{kind} payload: {exc}") from None
    return []


def normalize(payload: Mapping[str, Any]) -> list[Event]:
    """The source's normalizer for recorded dispatches (default credit rules)."""
    return normalize_dispatch(payload)
