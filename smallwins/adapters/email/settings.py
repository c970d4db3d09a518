"""Settings of the ``email`` plugin (``[plugins.email]`` in plugins.toml); secrets by ``*_env``.

Keys both components declare (``reply_address``, ``issue_domains``) are written once in
``[plugins.email]`` and given to both: the newsletter that sends an issue and the mailbox
watcher that recognizes replies to it must agree on them.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Security = Literal["ssl", "starttls", "none"]
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
ISSUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not ADDRESS.match(value) or "+" in value.split("@")[0]:
        raise ValueError(f"'{value}' is not a plain address like news@club.example (no +tag)")
    return value.casefold()


def _domains(values: list[str]) -> list[str]:
    result = []
    for value in values:
        domain = value.strip().casefold().lstrip("@")
        if not DOMAIN.match(domain):
            raise ValueError(f"'{value}' is not a domain like club.example")
        result.append(domain)
    return result


class MailboxSettings(BaseModel):
    """The ``email`` source: which mailbox to watch and what counts as a reply to an issue."""

    model_config = ConfigDict(extra="forbid")

    host: str | None = Field(default=None, description="IMAP server, e.g. imap.fastmail.com (required to watch)")
    port: int | None = Field(default=None, ge=1, le=65535, description="default 993 (ssl) or 143")
    security: Security = Field(default="ssl", description="ssl (implicit TLS), starttls, or none (tests only)")
    ca_file: str | None = Field(default=None, description="PEM of CAs to trust instead of the system's")
    username: str | None = Field(default=None, description="login name (or username_env)")
    username_env: str | None = Field(default=None, description="variable holding the login name")
    password_env: str = Field(default="SMALLWINS_IMAP_PASSWORD", description="variable holding the password")
    folder: str = Field(default="INBOX", description="folder replies arrive in")
    reply_address: str | None = Field(
        default=None, description="where replies go; news+ISSUE@club.example counts as a reply to ISSUE"
    )
    issue_domains: list[str] = Field(
        default_factory=list,
        description="Message-IDs at these domains are newsletter issues (a reply names one in In-Reply-To)",
    )
    issue_message_ids: dict[str, str] = Field(
        default_factory=dict, description="issue -> Message-ID, for issues sent by another tool"
    )
    require_authentication: bool = Field(
        default=False, description="count only mail whose DKIM (aligned), DMARC or ARC passed at our server"
    )
    authserv_ids: list[str] = Field(
        default_factory=list, description="the receiving server's id in Authentication-Results (trusted)"
    )
    link_codes: bool = Field(default=True, description="a link code in the text links the address to a member")
    idle: bool = Field(default=True, description="use IMAP IDLE when the server offers it")
    idle_seconds: float = Field(default=25 * 60, ge=1, le=29 * 60, description="re-issue IDLE this often")
    poll_seconds: float = Field(default=60, ge=0.1, description="between checks without IDLE")
    batch_size: int = Field(default=50, ge=1, le=1000, description="messages fetched per round trip")
    max_full_bytes: int = Field(
        default=256 * 1024, ge=1024, description="messages up to this size are fetched whole; larger: text part only"
    )
    max_text_bytes: int = Field(default=64 * 1024, ge=1024, description="at most this much of a large message's text")
    start: Literal["all", "new"] = Field(
        default="all", description="first run: read the mail already there (all) or only what arrives (new)"
    )
    flag_processed: str | None = Field(
        default=None, description="flag or keyword set on every message read, e.g. '\\\\Seen' or '$smallwins'"
    )
    move_counted_to: str | None = Field(default=None, description="folder for messages that became events")
    timeout_seconds: float = Field(default=30, gt=0, description="network timeout of one IMAP command")
    reconnect_max_seconds: float = Field(default=300, ge=1, description="longest wait between reconnects")

    @field_validator("reply_address")
    @classmethod
    def _reply(cls, value: str | None) -> str | None:
        return _address(value)

    @field_validator("issue_domains")
    @classmethod
    def _issue_domains(cls, value: list[str]) -> list[str]:
        return _domains(value)

    @field_validator("authserv_ids")
    @classmethod
    def _authserv(cls, value: list[str]) -> list[str]:
        return [v.strip().casefold() for v in value if v.strip()]

    @field_validator("issue_message_ids")
    @classmethod
    def _issue_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for issue, message_id in value.items():
            if not ISSUE.match(issue):
                raise ValueError(f"issue '{issue}' must be letters, digits, '.', '_' or '-' (at most 64)")
            if "@" not in message_id:
                raise ValueError(f"'{message_id}' (issue {issue}) is not a Message-ID like <abc@mail.example>")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MailboxSettings:
        if self.host is None:
            return self  # the newsletter alone may be in use; capture refuses to start without a host
        if not (self.reply_address or self.issue_domains or self.issue_message_ids):
            raise ValueError(
                "say how a reply is recognized: reply_address, issue_domains or issue_message_ids (or several)"
            )
        if self.username is None and self.username_env is None:
            raise ValueError("give username or username_env (the variable holding the IMAP login)")
        if self.require_authentication and not self.authserv_ids:
            raise ValueError(
                "require_authentication needs authserv_ids: the id your receiving server writes in "
                "Authentication-Results (only its verdicts can be trusted)"
            )
        return self

    def effective_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)


class NewsletterSettings(BaseModel):
    """The ``newsletter`` presenter: where blocks are written, templates, optional SMTP sending."""

    model_config = ConfigDict(extra="forbid")

    output_dir: str = Field(default="newsletter", description="rendered blocks go here (relative to plugins.toml)")
    template_dir: str | None = Field(
        default=None, description="folder with block.html/.txt, recipient.html/.txt overriding the built-in ones"
    )
    title: str = Field(default="Community wins", description="heading of the block")
    top_contributors: int = Field(default=5, ge=1, le=50)
    new_badges_limit: int = Field(default=8, ge=1, le=200, description="badges listed (rarest first)")
    names_per_badge: int = Field(default=5, ge=1, le=50, description="earners named per badge")
    reply_address: str | None = Field(default=None, description="where replies go (news+ISSUE@ when sending)")
    issue_domains: list[str] = Field(default_factory=list, description="Message-IDs of sent issues use the first")
    from_address: str | None = Field(default=None, description="sender of sent blocks, e.g. news@club.example")
    from_name: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535, description="default 465 (ssl), 587 (starttls), 25")
    smtp_security: Security = "starttls"
    smtp_ca_file: str | None = None
    smtp_username_env: str | None = None
    smtp_password_env: str | None = None

    @field_validator("reply_address", "from_address")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        return _address(value)

    @field_validator("issue_domains")
    @classmethod
    def _issue_domains(cls, value: list[str]) -> list[str]:
        return _domains(value)

    def effective_smtp_port(self) -> int:
        return self.smtp_port or {"ssl": 465, "starttls": 587, "none": 25}[self.smtp_security]
