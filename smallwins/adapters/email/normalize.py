"""Pure functions from one received message to normalized events (or to the reason for none).

A message becomes ``email.replied`` when it answers a newsletter issue: its In-Reply-To or
References name an issue's Message-ID, or it was sent to the reply address with the issue as a
plus-tag (``news+2026-11@club.example``). The case-folded sender address is the member's email
identity. Auto-replies, out-of-office notices, bounces and mailing-list traffic never count. A
link code in the reader's own words (not the quoted newsletter) becomes ``link.code_presented``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from smallwins.adapters.email.authresults import authenticated
from smallwins.adapters.email.mime import (
    addresses,
    body_text,
    header_text,
    header_values,
    own_words,
    parse_message,
    raw_header,
)
from smallwins.core.events import Event, InvalidEvent
from smallwins.core.identity import CODE_ALPHABET

SOURCE = "email"
REPLIED = "email.replied"
LINK = "link.code_presented"
EVENT_TYPES = frozenset({REPLIED})

#: Message-IDs smallwins gives the issues it sends: ``<newsletter.ISSUE.RANDOM@domain>``.
ISSUE_MESSAGE_ID = re.compile(r"^newsletter\.([A-Za-z0-9][A-Za-z0-9._-]{0,63})\.[A-Za-z0-9]+$")
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MESSAGE_ID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
LINK_CODE = re.compile(rf"(?<![A-Za-z0-9])([{CODE_ALPHABET}]{{4}}-[{CODE_ALPHABET}]{{4}})(?![A-Za-z0-9-])")
AUTOMATED_SENDERS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?|auto-?reply|autoresponder)([+.-].*)?$"
)
AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic|matische)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|réponse automatique"
    r"|respuesta automática|undeliverable|undelivered mail|delivery status notification|returned mail"
    r"|mail delivery (failed|failure)|failure notice|auto:)",
    re.IGNORECASE,
)
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "X-Delivered-To")


@dataclass(frozen=True)
class ReplyRules:
    """What counts as a reply to an issue, from the settings (and, for recorded payloads, the payload)."""

    reply_addresses: frozenset[str] = frozenset()
    issue_domains: frozenset[str] = frozenset()
    issue_message_ids: Mapping[str, str] = field(default_factory=dict)  # bare Message-ID -> issue
    require_authentication: bool = False
    authserv_ids: frozenset[str] = frozenset()
    link_codes: bool = True

    @classmethod
    def build(
        cls,
        *,
        reply_address: str | None = None,
        issue_domains: list[str] | tuple[str, ...] = (),
        issue_message_ids: Mapping[str, str] | None = None,
        require_authentication: bool = False,
        authserv_ids: list[str] | tuple[str, ...] = (),
        link_codes: bool = True,
    ) -> ReplyRules:
        return cls(
            reply_addresses=frozenset({normalize_address(reply_address)} if reply_address else ()),
            issue_domains=frozenset(d.casefold() for d in issue_domains),
            issue_message_ids={bare_id(mid): issue for issue, mid in (issue_message_ids or {}).items()},
            require_authentication=require_authentication,
            authserv_ids=frozenset(a.casefold() for a in authserv_ids),
            link_codes=link_codes,
        )


@dataclass(frozen=True)
class Outcome:
    """What one message gave: events, or why none (logged by capture, shown by ``ingest``)."""

    events: list[Event]
    skipped: str | None = None
    message_id: str | None = None


def bare_id(message_id: str) -> str:
    """``<abc@host>`` -> ``abc@host`` (the form compared and stored)."""
    found = MESSAGE_ID.search(message_id)
    return found.group(1) if found else message_id.strip().strip("<>")


def normalize_address(address: str) -> str:
    """The identity form of an address: trimmed, case-folded, the domain in ASCII (IDNA)."""
    address = address.strip().strip("<>").removeprefix("mailto:").casefold()
    local, _, domain = address.rpartition("@")
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain.rstrip('.')}"


def sender_of(msg: Message) -> tuple[str, str] | None:
    """``(display name, normalized address)`` of the From header's first address."""
    found = addresses(msg, "From")
    if not found:
        return None
    display, address = found[0]
    local, _, domain = address.rpartition("@")
    if not local or "." not in domain:
        return None
    return display, normalize_address(address)


def automated_reason(msg: Message, sender: str) -> str | None:
    """Why this is machine mail (RFC 3834 and common practice), or ``None`` for a person's."""
    auto_submitted = (raw_header(msg, "Auto-Submitted") or "").split(";")[0].strip().casefold()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = (raw_header(msg, "Precedence") or "").strip().casefold()
    if precedence in {"bulk", "junk", "list", "auto_reply"}:
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-AutoReply-From"):
        if raw_header(msg, name) is not None:
            return f"{name} header"
    return_path = raw_header(msg, "Return-Path")
    if return_path is not None and return_path.strip() in {"<>", ""}:
        return "empty Return-Path (a bounce or notification)"
    if AUTOMATED_SENDERS.match(sender.partition("@")[0]):
        return f"automated sender {sender}"
    for name in ("List-Id", "List-Unsubscribe", "List-Post"):
        if raw_header(msg, name) is not None:
            return f"mailing-list traffic ({name})"
    if msg.get_content_type() in {"multipart/report", "message/delivery-status", "message/disposition-notification"}:
        return f"delivery report ({msg.get_content_type()})"
    subject = header_text(msg, "Subject") or ""
    if AUTO_SUBJECT.match(subject):
        return f"auto-reply subject '{subject[:60]}'"
    return None


def referenced_ids(msg: Message) -> list[tuple[str, str]]:
    """``(message id, header)`` pairs: In-Reply-To first, then References newest first."""
    found = []
    for name in ("In-Reply-To", "References"):
        ids = MESSAGE_ID.findall(raw_header(msg, name) or "")
        found += [(mid, name) for mid in (ids if name == "In-Reply-To" else reversed(ids))]
    return found


def reply_match(msg: Message, rules: ReplyRules) -> tuple[str | None, str] | None:
    """``(issue or None, how)`` when the message answers a newsletter issue."""
    for message_id, header in referenced_ids(msg):
        if message_id in rules.issue_message_ids:
            return rules.issue_message_ids[message_id], header
        local, _, domain = message_id.rpartition("@")
        if domain.casefold() in rules.issue_domains:
            issue = ISSUE_MESSAGE_ID.match(local)
            return (issue.group(1) if issue else None), header
    if rules.reply_addresses:
        for _, address in addresses(msg, *RECIPIENT_HEADERS):
            local, _, domain = normalize_address(address).rpartition("@")
            base, plus, token = local.partition("+")
            if plus and f"{base}@{domain}" in rules.reply_addresses and TOKEN.match(token):
                return token, "reply address"
    return None


def event_time(msg: Message, received_at: datetime | None) -> datetime | None:
    """When it arrived (the server's INTERNALDATE, not forgeable), else its Date header."""
    if received_at is not None:
        return received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    try:
        sent = parsedate_to_datetime(raw_header(msg, "Date") or "")
    except (TypeError, ValueError, IndexError):
        return None
    return sent if sent.tzinfo else sent.replace(tzinfo=UTC)


def message_key(msg: Message, sender: str, text: str) -> tuple[str, str | None]:
    """The event id (the Message-ID, so a re-scan finds the same events) and the bare Message-ID.

    Without a usable Message-ID, a digest of sender, date, subject and text stands in.
    """
    found = MESSAGE_ID.search(raw_header(msg, "Message-ID") or "")
    if found and len(found.group(1)) <= 190:
        return found.group(1), found.group(1)
    basis = "\n".join([sender, raw_header(msg, "Date") or "", header_text(msg, "Subject") or "", text[:4096]])
    digest = "sha256:" + hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()[:40]
    return digest, found.group(1) if found else None


def link_codes_in(subject: str, text: str) -> list[str]:
    words = own_words(text)
    seen: list[str] = []
    for code in LINK_CODE.findall(f"{subject}\n{words}".upper()):
        if code not in seen:
            seen.append(code)
    return seen[:3]


def normalize_message(
    msg: Message, text: str | None = None, *, rules: ReplyRules, received_at: datetime | None = None
) -> Outcome:
    """The events one message gives; ``text`` is its body text when the caller fetched only part
    of it (a huge message), otherwise it is read from ``msg``."""
    found = sender_of(msg)
    if found is None:
        return Outcome([], "no readable From address")
    display, sender = found
    why = automated_reason(msg, sender)
    if why:
        return Outcome([], f"automated: {why}")
    if sender in rules.reply_addresses:
        return Outcome([], "sent from our own reply address (a loop)")
    if rules.require_authentication:
        ok, reason = authenticated(
            header_values(msg, "Authentication-Results"),
            sender_domain=sender.rpartition("@")[2],
            authserv_ids=rules.authserv_ids,
        )
        if not ok:
            return Outcome([], f"not authenticated: {reason}")
    body = body_text(msg) if text is None else text
    subject = header_text(msg, "Subject") or ""
    reply = reply_match(msg, rules)
    codes = link_codes_in(subject, body) if rules.link_codes else []
    key, message_id = message_key(msg, sender, body)
    if reply is None and not codes:
        return Outcome([], "not a reply to a newsletter issue", message_id)
    when = event_time(msg, received_at)
    if when is None:
        return Outcome([], "no arrival time and no readable Date header", message_id)
    name = (display or sender.partition("@")[0])[:100]
    proof = f"mid:{quote(message_id, safe='@')}" if message_id else None
    events = []
    try:
        for number, code in enumerate(codes):
            events.append(
                Event(
                    id=f"{key}#link{number or ''}",
                    source=SOURCE,
                    type=LINK,
                    subject=sender,
                    time=when,
                    proof=proof,
                    data={"code": code, "display_name": name},
                )
            )
        if reply is not None:
            issue, how = reply
            data: dict[str, Any] = {"display_name": name, "via": how, "subject": subject[:150]}
            if issue:
                data["issue"] = issue
            events.append(Event(id=key, source=SOURCE, type=REPLIED, subject=sender, time=when, proof=proof, data=data))
    except ValueError as exc:  # pydantic's ValidationError: an address too long, a date far ahead...
        return Outcome([], f"not a valid event: {exc}".splitlines()[0], message_id)
    return Outcome(events, None, message_id)


def normalize(payload: Mapping[str, Any]) -> list[Event]:
    """A recorded payload (``smallwins ingest --source email``): ``{"raw": "<the message>",
    "received_at": "<ISO time>" (optional), "rules": {reply_address, issue_domains,
    issue_message_ids, require_authentication, authserv_ids}}``."""
    raw = payload.get("raw")
    if not isinstance(raw, str):
        raise InvalidEvent("payload needs 'raw': the whole message as text")
    rules_given = payload.get("rules") or {}
    if not isinstance(rules_given, Mapping):
        raise InvalidEvent("'rules' must be an object")
    try:
        rules = ReplyRules.build(**dict(rules_given))
    except TypeError as exc:
        raise InvalidEvent(f"'rules': {exc}") from exc
    received = payload.get("received_at")
    try:
        received_at = datetime.fromisoformat(received) if isinstance(received, str) else None
    except ValueError as exc:
        raise InvalidEvent(f"'received_at' is not an ISO time: {received}") from exc
    outcome = normalize_message(
        parse_message(raw.encode("utf-8", "surrogateescape")), rules=rules, received_at=received_at
    )
    return outcome.events
