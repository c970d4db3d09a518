"""The blocking side of the mailbox watcher: imapclient calls, run in a worker thread.

Fetching never downloads a huge message whole: a message up to ``max_full_bytes`` is fetched
with ``BODY.PEEK[]``; a larger one gives its header, its BODYSTRUCTURE and the first
``max_text_bytes`` of its text part only (``BODY.PEEK[n]<0.size>``). ``PEEK`` leaves the
``\\Seen`` flag alone: the creator still sees replies as unread.
"""

from __future__ import annotations

import binascii
import contextlib
import quopri
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from smallwins.adapters.email.mime import decode_bytes, html_to_text, parse_message
from smallwins.adapters.email.settings import MailboxSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Fetched:
    """One message as read from the server: its header (and whole body when small) and its text."""

    uid: int
    size: int
    received_at: datetime | None
    message: Message
    text: str | None  # the text part of a large message; None: read it from ``message``
    complete: bool
    fetched_bytes: int


@dataclass(frozen=True)
class TextPart:
    spec: str
    encoding: str
    charset: str | None
    subtype: str


def _s(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value or "")


def _params(value: Any) -> dict[str, str]:
    items = list(value) if isinstance(value, list | tuple) else []
    return {_s(k).lower(): _s(v) for k, v in zip(items[::2], items[1::2], strict=False)}


def text_part(structure: Any) -> TextPart | None:
    """The part holding the reader's text, from a BODYSTRUCTURE: the first text/plain that is not an
    attachment, else the first text/html; attached messages are not looked into."""
    found: list[TextPart] = []

    def walk(node: Any, spec: str) -> None:
        if not isinstance(node, tuple | list) or not node:
            return
        if isinstance(node[0], list):  # multipart: imapclient's BodyData nests the parts in a list
            for index, child in enumerate(node[0], start=1):
                walk(child, f"{spec}.{index}" if spec else str(index))
            return
        kind, subtype = _s(node[0]).lower(), _s(node[1]).lower() if len(node) > 1 else ""
        if kind != "text" or subtype not in {"plain", "html"}:
            return
        disposition = node[9] if len(node) > 9 else None
        if isinstance(disposition, tuple) and _s(disposition[0]).lower() == "attachment":
            return
        found.append(
            TextPart(
                spec=spec or "1",
                encoding=_s(node[5] if len(node) > 5 else b"7bit").lower(),
                charset=_params(node[2] if len(node) > 2 else None).get("charset"),
                subtype=subtype,
            )
        )

    walk(structure, "")
    plain = [p for p in found if p.subtype == "plain"]
    candidates = plain or found
    return candidates[0] if candidates else None


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a part's Content-Transfer-Encoding on a prefix of it (the fetch may cut it anywhere)."""
    if encoding == "base64":
        compact = b"".join(data.split())
        compact = compact[: len(compact) - len(compact) % 4]
        try:
            return binascii.a2b_base64(compact)
        except binascii.Error:
            return b""
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


class Mailbox:
    """One logged-in connection to the watched folder."""

    def __init__(self, settings: MailboxSettings, *, username: str, password: str, ssl_context: ssl.SSLContext):
        self.settings = settings
        self.username = username
        self.password = password
        self.ssl_context = ssl_context
        self.client: IMAPClient | None = None
        self.idling = False

    # connection -------------------------------------------------------------------------------
    def connect(self) -> dict[str, int]:
        """Log in and select the folder; its UIDVALIDITY and UIDNEXT."""
        settings = self.settings
        assert settings.host is not None
        client = IMAPClient(
            settings.host,
            port=settings.effective_port(),
            ssl=settings.security == "ssl",
            ssl_context=self.ssl_context if settings.security == "ssl" else None,
            timeout=settings.timeout_seconds,
        )
        client.normalise_times = False  # aware INTERNALDATEs, not local naive times
        try:
            if settings.security == "starttls":
                client.starttls(self.ssl_context)
            client.login(self.username, self.password)
            selected = client.select_folder(settings.folder)
        except BaseException:
            self._drop(client)
            raise
        self.client = client
        return {"uidvalidity": int(selected[b"UIDVALIDITY"]), "uidnext": int(selected.get(b"UIDNEXT", 0) or 0)}

    @property
    def can_idle(self) -> bool:
        return self.client is not None and self.settings.idle and self.client.has_capability("IDLE")

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            if self.idling:
                with contextlib.suppress(Exception):
                    client.idle_done()
                self.idling = False
            self._drop(client)

    @staticmethod
    def _drop(client: IMAPClient) -> None:
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise IMAPClientError("not connected")
        return self.client

    # reading ------------------------------------------------------------------------------------
    def uidvalidity(self) -> int:
        status = self._client().folder_status(self.settings.folder, [b"UIDVALIDITY"])
        return int(status[b"UIDVALIDITY"])

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` (``N:*`` also returns the highest UID when none is above)."""
        found = self._client().search(["UID", f"{last_uid + 1}:*"])
        return sorted(int(uid) for uid in found if int(uid) > last_uid)

    def fetch(self, uids: list[int]) -> Iterator[Fetched | tuple[int, Exception]]:
        """Each message, or ``(uid, error)`` for one that cannot be read (logged by the caller)."""
        client = self._client()
        settings = self.settings
        heads = client.fetch(uids, ["RFC822.SIZE", "INTERNALDATE", "BODYSTRUCTURE", "BODY.PEEK[HEADER]"])
        small = [uid for uid in uids if int(heads.get(uid, {}).get(b"RFC822.SIZE", 0) or 0) <= settings.max_full_bytes]
        whole = client.fetch(small, ["BODY.PEEK[]"]) if small else {}
        for uid in uids:
            data = heads.get(uid)
            if data is None:
                continue  # expunged meanwhile
            try:
                yield self._one(uid, data, whole.get(uid))
            except Exception as exc:  # one malformed message never stops the loop
                yield uid, exc

    def _one(self, uid: int, head: dict[bytes, Any], whole: dict[bytes, Any] | None) -> Fetched:
        size = int(head.get(b"RFC822.SIZE", 0) or 0)
        received = head.get(b"INTERNALDATE")
        received_at = received if isinstance(received, datetime) else None
        if whole is not None and isinstance(whole.get(b"BODY[]"), bytes):
            raw = whole[b"BODY[]"]
            return Fetched(uid, size, received_at, parse_message(raw), None, True, len(raw))
        header = head.get(b"BODY[HEADER]") or b""
        part = text_part(head.get(b"BODYSTRUCTURE"))
        text, fetched = "", len(header)
        if part is not None:
            key = f"BODY.PEEK[{part.spec}]<0.{self.settings.max_text_bytes}>"
            answer = self._client().fetch([uid], [key]).get(uid, {})
            chunk = next((v for k, v in answer.items() if k.startswith(f"BODY[{part.spec}]".encode())), b"") or b""
            fetched += len(chunk)
            text = decode_bytes(decode_transfer(chunk, part.encoding), part.charset)
            if part.subtype == "html":
                text = html_to_text(text)
        return Fetched(uid, size, received_at, parse_message(header), text, False, fetched)

    # waiting ------------------------------------------------------------------------------------
    def idle_start(self) -> None:
        self._client().idle()
        self.idling = True

    def idle_check(self, seconds: float) -> bool:
        """Whether the server said something (new mail, expunge) within ``seconds``."""
        if self._buffered():
            return True
        responses = self._client().idle_check(timeout=seconds)
        return bool(responses)

    def _buffered(self) -> bool:
        """Whether a response already sits in a read buffer, where ``idle_check``'s select() cannot
        see it. Mail that arrives just before IDLE is announced in the same packet as ``+ idling``;
        imaplib's buffered reader takes both, and idle_check would wait until the next news
        (imapclient reads through imaplib's socket and file; see its issues on IDLE)."""
        imap = self._client()._imap
        sock, file = getattr(imap, "sock", None), getattr(imap, "file", None)
        if sock is None or file is None:
            return False
        pending = getattr(sock, "pending", None)
        if pending is not None and pending():  # decrypted TLS bytes not yet read
            return True
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return bool(file.peek(1))  # what is buffered; never waits on a non-blocking socket
        except (OSError, ValueError):
            return False
        finally:
            sock.settimeout(timeout)

    def idle_stop(self) -> None:
        if self.idling:
            self.idling = False
            self._client().idle_done()

    def noop(self) -> None:
        self._client().noop()

    # after ingest ---------------------------------------------------------------------------------
    def mark(self, uids: list[int], flag: str) -> None:
        if uids:
            self._client().add_flags(uids, [flag])

    def move(self, uids: list[int], folder: str) -> None:
        """Move to ``folder`` (created when missing); MOVE where offered, else COPY + expunge."""
        if not uids:
            return
        client = self._client()
        if not client.folder_exists(folder):
            client.create_folder(folder)
        if client.has_capability("MOVE"):
            client.move(uids, folder)
            return
        client.copy(uids, folder)
        client.delete_messages(uids)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()
