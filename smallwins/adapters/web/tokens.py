"""Signed member tokens (personal links ``?m=``, the member cookie) and webhook signatures.

A visitor is a member only through something smallwins signed: an unsigned id in a URL or a
cookie is never trusted. Member tokens are itsdangerous timed signatures over the member's web
account (``m42``), salted per use so a cookie cannot be replayed as a link token and vice versa.
Webhooks use the common scheme of an HMAC-SHA256 over ``"{timestamp}." + body`` (stdlib hmac).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from smallwins.core.store import SourceCursor, Store, dialect_insert, utcnow

LINK_SALT = "smallwins.member-link"
COOKIE_SALT = "smallwins.member-cookie"
COOKIE_NAME = "sw_member"
SIGNATURE_HEADER = "X-Smallwins-Signature"
TIMESTAMP_HEADER = "X-Smallwins-Timestamp"


class BadToken(ValueError):
    """A member token that is tampered with, expired or not a token at all; says which."""


@dataclass(frozen=True)
class MemberSigner:
    """Signs and checks member tokens with one key."""

    key: bytes
    token_max_age: int
    cookie_max_age: int

    def _serializer(self, salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.key, salt=salt)

    def token(self, account: str) -> str:
        """A personal token for the member owning web account ``account``."""
        return str(self._serializer(LINK_SALT).dumps(account))

    def cookie(self, account: str) -> str:
        return str(self._serializer(COOKIE_SALT).dumps(account))

    def read_token(self, token: str) -> str:
        return self._read(token, LINK_SALT, self.token_max_age, "member token")

    def read_cookie(self, value: str) -> str:
        return self._read(value, COOKIE_SALT, self.cookie_max_age, "member cookie")

    def _read(self, value: str, salt: str, max_age: int, what: str) -> str:
        try:
            account = self._serializer(salt).loads(value, max_age=max_age)
        except SignatureExpired:
            raise BadToken(f"{what} expired; ask for a new personal link") from None
        except BadSignature:
            raise BadToken(f"{what} is not valid (altered or not signed by this server)") from None
        if not isinstance(account, str) or not account:
            raise BadToken(f"{what} does not name a member")
        return account


def signing_key(store: Store, configured: str | None) -> bytes:
    """The configured key, else one generated once and kept in the store.

    Kept in the store, every process sharing the database signs with the same key, and personal
    links survive a restart. The first writer wins; everyone then reads the same row.
    """
    if configured:
        return configured.encode()
    with store.writes.begin() as session:
        statement = dialect_insert(session.get_bind().dialect.name, SourceCursor).values(
            source="web", key="signing_key", value={"key": secrets.token_hex(32)}, updated_at=utcnow()
        )
        session.execute(statement.on_conflict_do_nothing(index_elements=["source", "key"]))
    with store.sessions() as session:
        value = session.scalar(
            select(SourceCursor.value).where(SourceCursor.source == "web", SourceCursor.key == "signing_key")
        )
    assert value is not None
    return str(value["key"]).encode()


def sign_body(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Smallwins-Signature`` header value a sender computes for ``body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class BadSignatureHeader(ValueError):
    """A webhook request whose signature or timestamp does not hold; says which."""


#: Unix seconds have 10 digits until the year 2286; a longer "timestamp" is no time at all.
MAX_TIMESTAMP_DIGITS = 12


def verify_body(
    secret: str, *, timestamp: str | None, signature: str | None, body: bytes, window: int, now: float | None = None
) -> None:
    """Raise :class:`BadSignatureHeader` unless ``body`` was signed with ``secret`` within ``window`` s."""
    if not timestamp:
        raise BadSignatureHeader(f"missing {TIMESTAMP_HEADER} header (unix seconds)")
    if not signature:
        raise BadSignatureHeader(f"missing {SIGNATURE_HEADER} header (sha256=<hex HMAC>)")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
        raise BadSignatureHeader(f"{TIMESTAMP_HEADER} must be unix seconds, got {timestamp[:40]!r}")
    sent = int(timestamp)
    expected = sign_body(secret, sent, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignatureHeader("signature does not match the body (wrong secret, or the body was altered)")
    skew = (time.time() if now is None else now) - sent
    if abs(skew) > window:
        raise BadSignatureHeader(
            f"timestamp is {int(abs(skew))} s {'old' if skew > 0 else 'ahead'}; "
            f"only {window} s are accepted (a replay, or a clock that is wrong)"
        )
