"""Sending each reader their block by SMTP (smtplib, run off the event loop by the caller).

Every message gets a Message-ID the mailbox watcher recognizes (``<newsletter.ISSUE.RANDOM@domain>``)
and, when a reply address is set, ``Reply-To: news+ISSUE@...``: either way a reply counts. Who
was sent an issue is remembered, so sending the same issue again skips them.
"""

from __future__ import annotations

import secrets
import smtplib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

import structlog

from smallwins.adapters.email.render import Rendered
from smallwins.core.cursors import CursorStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Smtp:
    """Where and how to send, with the secrets already read from the environment."""

    host: str
    port: int
    security: str  # ssl | starttls | none
    from_address: str
    from_name: str | None = None
    reply_address: str | None = None
    message_id_domain: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0


def issue_message_id(issue: str, domain: str) -> str:
    return f"<newsletter.{issue}.{secrets.token_hex(8)}@{domain}>"


def build_message(smtp: Smtp, *, issue: str, subject: str, to: str, name: str, rendered: Rendered) -> EmailMessage:
    msg = EmailMessage()
    local, _, domain = smtp.from_address.partition("@")
    msg["From"] = Address(smtp.from_name or "", local, domain) if smtp.from_name else smtp.from_address
    msg["To"] = Address(name[:60], *to.rsplit("@", 1)) if name else to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = issue_message_id(issue, smtp.message_id_domain or domain)
    if smtp.reply_address:
        reply_local, _, reply_domain = smtp.reply_address.partition("@")
        msg["Reply-To"] = f"{reply_local}+{issue}@{reply_domain}"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def _connect(smtp: Smtp) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=smtp.ca_file) if smtp.security != "none" else None
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        if smtp.security == "starttls":
            client.starttls(context=context)
    if smtp.username and smtp.password:
        client.login(smtp.username, smtp.password)
    return client


def send_all(
    smtp: Smtp,
    messages: Iterable[tuple[str, EmailMessage]],
    *,
    cursors: CursorStore,
    issue: str,
    on_sent: Callable[[str, str | None], None] | None = None,
) -> tuple[int, int, dict[str, str]]:
    """Send ``(address, message)`` pairs over one connection; ``(sent, skipped, failed by address)``.

    An address already sent this issue is skipped; a refused recipient is reported, not fatal.
    """
    key = f"sent:{issue}"
    done = set((cursors.get(key) or {}).get("addresses", []))
    sent, skipped, failed = 0, 0, {}
    client = _connect(smtp)
    try:
        for address, message in messages:
            if address in done:
                skipped += 1
                if on_sent:
                    on_sent(address, "already sent")
                continue
            try:
                client.send_message(message, from_addr=smtp.from_address, to_addrs=[address])
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                failed[address] = str(exc)
                log.warning("newsletter.send_failed", issue=issue, address=address, error=str(exc))
                if on_sent:
                    on_sent(address, str(exc))
                continue
            done.add(address)
            sent += 1
            if sent % 25 == 0:
                cursors.set(key, {"addresses": sorted(done)})
            if on_sent:
                on_sent(address, None)
    finally:
        cursors.set(key, {"addresses": sorted(done)})
        try:
            client.quit()
        except smtplib.SMTPException:
            client.close()
    return sent, skipped, failed
