"""The ASGI application and what its routes share (the routes: ``routes_capture`` for links,
forms and webhooks coming in; ``routes_present`` for the card, boards and pages going out).

Starlette on uvicorn under anyio. Database work is blocking SQLAlchemy, so every handler runs
it in a worker thread (``anyio.to_thread``): a slow query never stalls the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import anyio
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from smallwins.adapters.web.settings import WebSettings, origin_of
from smallwins.adapters.web.tokens import COOKIE_NAME, BadToken, MemberSigner
from smallwins.core.app import App
from smallwins.core.engine import IngestOutcome
from smallwins.core.events import Event

log = structlog.get_logger(__name__)
T = TypeVar("T")

Ingest = Callable[[list[Event]], Awaitable[list[IngestOutcome]]]


class BodyTooLarge(ValueError):
    """A request body over the configured limit (answered 413)."""


@dataclass
class Web:
    """What the handlers share: the running smallwins, settings, the signer, how to ingest."""

    app: App
    settings: WebSettings
    signer: MemberSigner
    ingest: Ingest
    hook_secrets: dict[str, str]
    admin_token: str | None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.app.config.core.default_timezone)

    def now(self) -> datetime:
        return self.app.engine.clock()

    def allowed_origins(self) -> set[str]:
        return {origin_of(self.settings.base_url()), *self.settings.cors_origins}

    async def db(self, fn: Callable[[], T]) -> T:
        """Run blocking store work in a worker thread."""
        return await anyio.to_thread.run_sync(fn)

    def visitor(self, request: Request, token: str | None) -> tuple[str | None, str | None, bool]:
        """(web account, why a presented token was refused, whether it came from a token)."""
        if token:
            try:
                return self.signer.read_token(token), None, True
            except BadToken as exc:
                return None, str(exc), True
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie:
            try:
                return self.signer.read_cookie(cookie), None, False
            except BadToken as exc:
                return None, str(exc), False
        return None, None, False

    def remember(self, response: Response, request: Request, account: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.signer.cookie(account),
            max_age=self.settings.cookie_days * 86400,
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="lax",
        )


def engine_ingest(app: App) -> Ingest:
    """Ingest through the core's engine in a worker thread, returning each event's outcome
    (the webhook answer reports them one by one)."""

    async def ingest(events: list[Event]) -> list[IngestOutcome]:
        if not events:
            return []
        outcomes = await anyio.to_thread.run_sync(lambda: list(app.engine.ingest_many(events)))
        log.info(
            "web.ingested",
            stored=sum(o.stored for o in outcomes),
            duplicates=sum(not o.stored for o in outcomes),
            awarded=sum(len(o.awarded) for o in outcomes),
        )
        return outcomes

    return ingest


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers={"Cache-Control": "no-store"})


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past ``limit`` bytes whether or not Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body is {declared} bytes; at most {limit} accepted")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over {limit} bytes; at most {limit} accepted")
        chunks.append(chunk)
    return b"".join(chunks)


def build_asgi(web: Web) -> Starlette:
    """The Starlette app with every route; CORS only for the configured creator origins."""
    from smallwins.adapters.web.routes_capture import capture_routes
    from smallwins.adapters.web.routes_present import present_routes

    middleware = [
        Middleware(
            CORSMiddleware,
            allow_origins=web.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag"],
            max_age=600,
        )
    ]
    return Starlette(routes=[*capture_routes(web), *present_routes(web)], middleware=middleware)
