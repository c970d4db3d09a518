"""The Data API as the poller sees it: one ``call`` that pays, retries what is worth retrying, and
turns Google's error bodies into a few exceptions the poller acts on.

google-api-python-client is blocking: each request runs in a worker thread. It is built from
the discovery document it ships (``static_discovery``), so building it needs no network, and
``api_endpoint`` points it at another root (the tests' server on 127.0.0.1). Its own retries
are off (``num_retries=0``): each try is charged to the ledger, so ours are counted.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import httplib2
import structlog
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from smallwins.adapters.youtube.quota import QuotaExhausted, QuotaLedger
from smallwins.adapters.youtube.settings import YouTubeSettings
from smallwins.core.config import ConfigError

log = structlog.get_logger(__name__)

#: Google's reasons that mean "nothing more today".
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
#: Reasons that pass: too fast, or Google's side failing.
TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError", "internalError"})
#: Reasons that mean the key itself is refused: no retry will help, the operator must act.
KEY_REASONS = frozenset(
    {"keyInvalid", "keyExpired", "accessNotConfigured", "ipRefererBlocked", "API_KEY_INVALID", "SERVICE_DISABLED"}
)

Sleep = Callable[[float], Awaitable[None]]


class Unavailable(Exception):
    """This video (or channel, playlist) cannot be read: removed, private, comments disabled."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason


class InvalidPageToken(Exception):
    """A saved page token the API no longer accepts: the listing starts again from the top."""


class ApiFailure(Exception):
    """Transient errors outlasted the retries; the cursor is kept and the work is tried later."""


def error_reasons(error: HttpError) -> tuple[list[str], str]:
    """The machine reasons (``errors[].reason``, ``details[].reason``) and message of a Google error body."""
    try:
        body = json.loads(error.content.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return [], str(error.reason or "")
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return [], str(error.reason or "")
    reasons = [str(e.get("reason")) for e in inner.get("errors", []) if isinstance(e, dict) and e.get("reason")]
    reasons += [str(d.get("reason")) for d in inner.get("details", []) if isinstance(d, dict) and d.get("reason")]
    return reasons, str(inner.get("message", ""))[:300]


class YouTubeApi:
    """A googleapiclient ``youtube`` v3 resource, the quota ledger, and the retry policy."""

    def __init__(
        self,
        settings: YouTubeSettings,
        *,
        api_key: str,
        ledger: QuotaLedger,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.sleep = sleep
        self.calls = 0
        self.retries = 0
        options = {"api_endpoint": settings.api_endpoint} if settings.api_endpoint else None
        self.client: Any = build(
            "youtube",
            "v3",
            developerKey=api_key,
            static_discovery=True,
            cache_discovery=False,
            client_options=options,
            http=httplib2.Http(timeout=settings.timeout_seconds),
        )

    async def call(self, method: str, make_request: Callable[[Any], Any]) -> dict[str, Any]:
        """Run ``make_request(client)`` (e.g. ``lambda c: c.comments().list(...)``) and return its
        JSON; 5xx, 429, rate limits and network errors are retried with backoff."""
        wait = self.settings.backoff_seconds
        for attempt in range(self.settings.max_retries + 1):
            await anyio.to_thread.run_sync(self.ledger.check, method)
            request = make_request(self.client)
            await anyio.to_thread.run_sync(self.ledger.charge, method)
            self.calls += 1
            try:
                return dict(await anyio.to_thread.run_sync(partial(request.execute, num_retries=0)))
            except HttpError as exc:
                problem = await self._classify(method, exc)
            except (TimeoutError, OSError, httplib2.HttpLib2Error) as exc:
                problem = f"network: {exc!r}"
            if attempt == self.settings.max_retries:
                raise ApiFailure(f"{method}: {problem} (after {attempt + 1} tries)")
            self.retries += 1
            log.warning("youtube.retry", method=method, problem=problem, retry_in=round(wait, 2), attempt=attempt + 1)
            await self.sleep(wait)
            wait = min(wait * 2, self.settings.backoff_max_seconds)
        raise AssertionError("unreachable")

    async def _classify(self, method: str, exc: HttpError) -> str:
        """Raise what the poller acts on; return a description when the error is worth retrying."""
        status = exc.resp.status
        reasons, message = error_reasons(exc)
        if status == 403 and QUOTA_REASONS & set(reasons):
            resume = await anyio.to_thread.run_sync(self.ledger.exhausted)
            raise QuotaExhausted(resume, f"YouTube answered {method} with quotaExceeded")
        if status >= 500 or status == 429 or TRANSIENT_REASONS & set(reasons):
            return f"{status} {','.join(reasons) or 'error'}: {message}"
        if KEY_REASONS & set(reasons) or (status == 400 and "api key" in message.lower()):
            raise ConfigError(
                f"YouTube refused the API key ({status} {','.join(reasons)}): {message}. Check the key in the "
                "variable named by plugins.youtube.api_key_env and that the YouTube Data API v3 is enabled for it"
            )
        if status == 400 and "invalidPageToken" in reasons:
            raise InvalidPageToken(message)
        raise Unavailable(status, reasons[0] if reasons else "error", message)
