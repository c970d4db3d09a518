"""Real-looking mail for the tests: replies from several clients, machine mail, broken MIME."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

#: When the test mail says it was written (past: events may not be dated in the future).
T0 = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
_numbers = itertools.count(1)
DOMAIN = "club.example"
ISSUE_ID = "<newsletter.2026-11.a1b2c3@club.example>"


def message(
    sender: str = "Ada Lovelace <ada@example.com>",
    *,
    to: str = "news@club.example",
    subject: str = "Re: Community wins",
    body: str = "Loved this issue, thank you!",
    in_reply_to: str | None = ISSUE_ID,
    references: str | None = None,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(T0)
    msg["Message-ID"] = message_id or f"<reply-{next(_numbers)}@example.com>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references or in_reply_to:
        msg["References"] = references or in_reply_to or ""
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return bytes(msg)


def with_attachment(
    size: int, *, sender: str = "Big Sender <big@example.com>", body: str = "Photos attached!"
) -> bytes:
    """A reply carrying an attachment of ``size`` bytes (base64 in the message)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "news@club.example"
    msg["Subject"] = "Re: Community wins (photos)"
    msg["Date"] = format_datetime(T0)
    msg["Message-ID"] = f"<big-{next(_numbers)}@example.com>"
    msg["In-Reply-To"] = ISSUE_ID
    msg.set_content(body)
    msg.add_attachment(bytes(range(256)) * (size // 256), maintype="application", subtype="octet-stream",
                       filename="photos.zip")  # fmt: skip
    return bytes(msg)


def raw(text: str) -> bytes:
    """A message written by hand (CRLF line ends), for shapes no library would produce."""
    return text.strip("\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape") + b"\r\n"


MALFORMED = raw(
    """
From: Broken Client <broken@example.com>
To: news@club.example
Subject: =?utf-8?B?broken-base64?= =?x-unknown?Q?caf=E9?=
Message-ID: <broken-1@example.com>
In-Reply-To: <newsletter.2026-11.a1b2c3@club.example>
Content-Type: multipart/alternative; boundary="never-closed"
Content-Transfer-Encoding: 8bit

--never-closed
Content-Type: text/plain; charset="x-mac-nonsense"
Content-Transfer-Encoding: base64

SGVsbG8gZnJvbSBhIGJyb2tlbiBjbGllbnQ=!!!not base64
--never-closed
Content-Type: text/html
"""
)

NO_FROM = raw(
    """
To: news@club.example
Subject: Re: Community wins
Message-ID: <nofrom-1@example.com>
In-Reply-To: <newsletter.2026-11.a1b2c3@club.example>

Who am I?
"""
)
