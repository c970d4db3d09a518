"""The ASGI application: tracked links, forms and webhooks in; the member card and boards out.

Starlette on uvicorn under anyio. Database work is blocking SQLAlchemy, so every handler runs
it in a worker thread (``anyio.to_thread``): a slow query never stalls the event loop.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import anyio
import structlog
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from smallwins.adapters.web import documents, pages
from smallwins.adapters.web.icons import badge_svg
from smallwins.adapters.web.links import find_link, member_of_account, record_click
from smallwins.adapters.web.normalize import (
    Click,
    FormRejected,
    automated_reason,
    click_event,
    clip,
    form_event,
    hook_items,
    utm_of,
)
from smallwins.adapters.web.settings import WebSettings, origin_of
from smallwins.adapters.web.tokens import (
    COOKIE_NAME,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    BadSignatureHeader,
    BadToken,
    MemberSigner,
    verify_body,
)
from smallwins.core.app import App
from smallwins.core.engine import IngestOutcome
from smallwins.core.events import Event, InvalidEvent
from smallwins.core.store import AuditEntry, Member

log = structlog.get_logger(__name__)
T = TypeVar("T")

Ingest = Callable[[list[Event]], Awaitable[list[IngestOutcome]]]


class BodyTooLarge(ValueError):
    pass


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
    if declared is not None and declared.isdigit() and int(declared) > limit:
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

    async def db(fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn)

    def visitor(request: Request, token: str | None) -> tuple[str | None, str | None, bool]:
        """(web account, why a presented token was refused, whether it came from a token)."""
        if token:
            try:
                return web.signer.read_token(token), None, True
            except BadToken as exc:
                return None, str(exc), True
        cookie = request.cookies.get(COOKIE_NAME)
        if cookie:
            try:
                return web.signer.read_cookie(cookie), None, False
            except BadToken as exc:
                return None, str(exc), False
        return None, None, False

    def remember(response: Response, request: Request, account: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            web.signer.cookie(account),
            max_age=web.settings.cookie_days * 86400,
            httponly=True,
            secure=request.url.scheme == "https",
            samesite="lax",
        )

    # --- capture ---------------------------------------------------------------------------

    async def redirect(request: Request) -> Response:
        code = request.path_params["code"]
        link = await db(lambda: _find(web, code))
        if link is None:
            return HTMLResponse(pages.message_page("Unknown link", f"There is no link '{code}' here."), status_code=404)
        reason = automated_reason(request.method, request.headers.get("user-agent"), request.headers)
        account, refused, from_token = visitor(request, request.query_params.get("m"))
        click = Click(
            code=link.code,
            utm=utm_of(request.query_params),
            referrer=request.headers.get("referer"),
            user_agent=request.headers.get("user-agent"),
        )
        now, event_id, member_id = web.now(), None, None
        if reason:
            outcome = reason
        elif refused:
            outcome = "bad_token"
        elif account is None:
            outcome = "anonymous"
        else:
            event = click_event(
                click,
                account=account,
                event_type=link.event_type,
                campaign=link.campaign,
                credit_period=link.credit_period,
                now=now,
                zone=web.zone,
                proof=f"{web.settings.base_url()}/r/{link.code}",
            )
            [result] = await web.ingest([event])
            outcome, event_id, member_id = ("credited" if result.stored else "repeat"), event.id, result.member_id

        def save() -> None:
            with web.app.store.writes.begin() as session:
                record_click(
                    session,
                    link,
                    outcome=outcome,
                    at=now,
                    account=account,
                    member_id=member_id,
                    event_id=event_id,
                    referrer=clip(click.referrer, 500),
                    user_agent=clip(click.user_agent, 300),
                    **click.utm,
                )

        await db(save)
        log.info("web.click", link=link.code, outcome=outcome, refused=refused)
        response = RedirectResponse(link.target_url, status_code=302)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        if account and from_token and not reason:
            remember(response, request, account)
        return response

    async def form_get(request: Request) -> Response:
        name = request.path_params["form"]
        form = web.settings.forms.get(name)
        if form is None:
            return HTMLResponse(pages.message_page("Unknown form", f"There is no form '{name}' here."), 404)
        token = request.query_params.get("m")
        return HTMLResponse(pages.form_page(name, form, token=token), headers={"Cache-Control": "no-store"})

    async def form_post(request: Request) -> Response:
        name = request.path_params["form"]
        form = web.settings.forms.get(name)
        if form is None:
            return error(404, f"no form '{name}' is configured")
        origin = request.headers.get("origin") or (
            origin_of(request.headers["referer"]) if request.headers.get("referer") else None
        )
        if origin is None or origin.lower() not in web.allowed_origins():
            return error(
                403,
                f"cross-site submission refused: origin {origin or '(none sent)'} is not this site "
                "or one of cors_origins",
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in ("application/x-www-form-urlencoded", "application/json"):
            return error(415, "send application/x-www-form-urlencoded or application/json")
        try:
            body = await read_body(request, web.settings.max_form_bytes)
        except BodyTooLarge as exc:
            return error(413, str(exc))
        try:
            values = _form_values(body, content_type)
        except ValueError as exc:
            return error(400, str(exc))
        token = values.pop("m", [None])[0]
        account, refused, _ = visitor(request, token)
        if refused:
            return error(403, refused)
        if account is None:
            return error(
                401,
                "no member: open this form through your personal link (it carries a signed ?m= token) "
                "so the submission can be credited",
            )
        try:
            event = form_event(name, form, values, account=account, now=web.now())
        except FormRejected as exc:
            return error(422, str(exc))
        [result] = await web.ingest([event])
        status = "stored" if result.stored else "duplicate"
        if wants_html(request):
            if form.redirect:
                return RedirectResponse(form.redirect, status_code=303)
            text = "Thank you, your answer was recorded." if result.stored else "You already sent this answer."
            return HTMLResponse(pages.message_page("Thank you", text))
        return JSONResponse(
            {"status": status, "event": event.key, "awarded": result.awarded},
            status_code=201 if result.stored else 200,
        )

    async def hook(request: Request) -> Response:
        source = request.path_params["source"]
        config = web.settings.hooks.get(source)
        secret = web.hook_secrets.get(source)
        if config is None or secret is None:
            return error(404, f"no webhook source '{source}' is configured")
        try:
            body = await read_body(request, web.settings.max_hook_bytes)
        except BodyTooLarge as exc:
            return error(413, str(exc))
        try:
            verify_body(
                secret,
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                signature=request.headers.get(SIGNATURE_HEADER),
                body=body,
                window=web.settings.replay_window_seconds,
            )
        except BadSignatureHeader as exc:
            log.warning("web.hook_refused", source=source, reason=str(exc))
            return error(401, str(exc))
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return error(400, f"body is not JSON: {exc}")
        try:
            items = hook_items(source, payload, allowed_types=config.event_types, limit=web.settings.max_hook_events)
        except InvalidEvent as exc:
            return error(400, str(exc))
        events = [item.event for item in items if item.event is not None]
        outcomes = iter(await web.ingest(events))
        results = []
        for item in items:
            if item.event is None:
                results.append({"index": item.index, "id": item.id, "status": "rejected", "error": item.error})
                continue
            outcome = next(outcomes)
            entry: dict[str, Any] = {
                "index": item.index,
                "id": item.id,
                "status": "stored" if outcome.stored else "duplicate",
                "awarded": outcome.awarded,
            }
            if outcome.warning:
                entry["warning"] = outcome.warning
            results.append(entry)
        counts = {s: sum(r["status"] == s for r in results) for s in ("stored", "duplicate", "rejected")}
        return JSONResponse(
            {"results": results, **counts},
            status_code=200 if events else 422,
            headers={"Cache-Control": "no-store"},
        )

    # --- present ---------------------------------------------------------------------------

    def icon(achievement_id: str, tier: str | None) -> str:
        custom = web.settings.icons.get(achievement_id)
        if custom:
            return custom
        query = f"?tier={tier}" if tier else ""
        return f"{web.settings.base_url()}/api/badges/{achievement_id}.svg{query}"

    async def widget(request: Request) -> Response:
        raw = request.path_params["member"]
        if not raw.isdigit() or len(raw) > 18:
            return error(404, f"no member '{raw[:40]}' (member ids are numbers)")
        auth = request.headers.get("authorization", "")
        token = request.query_params.get("m") or (auth[7:].strip() if auth.lower().startswith("bearer ") else None)
        account = None
        if token:
            try:
                account = web.signer.read_token(token)
            except BadToken as exc:
                return error(403, str(exc))

        def load() -> tuple[int, dict[str, Any]] | JSONResponse:
            with web.app.store.sessions() as session:
                member = _survivor(session, int(raw))
                if member is None:
                    return error(404, f"no member {raw}")
                if account is not None and member_of_account(session, account) != member.id:
                    return error(403, f"this token is not member {raw}'s")
                if member.private and account is None:
                    return error(403, f"member {raw} keeps their card private; it is shown only with their token")
                doc = documents.widget_document(web.app, session, member.id, private=account is not None, icon=icon)
                return member.id, doc

        loaded = await db(load)
        if isinstance(loaded, JSONResponse):
            return loaded
        _, document = loaded
        return cached_json(request, document, private=account is not None)

    def cached_json(request: Request, document: dict[str, Any], *, private: bool) -> Response:
        tag = documents.etag(document)
        cache = "private, no-cache" if private else f"public, max-age={web.settings.widget_max_age}"
        headers = {"ETag": tag, "Cache-Control": cache, "Vary": "Origin, Authorization"}
        if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return JSONResponse(document, headers=headers)

    async def leaderboard_api(request: Request) -> Response:
        board = request.path_params["board"]
        try:
            limit = min(max(int(request.query_params.get("limit", "10")), 1), 100)
        except ValueError:
            return error(400, "limit must be a number from 1 to 100")
        period = request.query_params.get("period")

        def load() -> dict[str, Any]:
            with web.app.store.sessions() as session:
                return documents.leaderboard_document(web.app, session, board, period=period, limit=limit)

        try:
            document = await db(load)
        except documents.NotFound as exc:
            return error(404, str(exc))
        return cached_json(request, document, private=False)

    async def leaderboard_html(request: Request) -> Response:
        board = request.path_params.get("board", documents.ALL_TIME)

        def load() -> dict[str, Any]:
            with web.app.store.sessions() as session:
                return documents.leaderboard_document(web.app, session, board, period=None, limit=50)

        try:
            document = await db(load)
        except documents.NotFound as exc:
            return HTMLResponse(pages.message_page("Unknown leaderboard", str(exc)), status_code=404)
        return HTMLResponse(pages.leaderboard_page(document, documents.boards(web.app)))

    async def member_page(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            account = web.signer.read_token(token)
        except BadToken as exc:
            return HTMLResponse(pages.message_page("Link not valid", str(exc)), status_code=403)

        def load() -> Member | None:
            with web.app.store.sessions() as session:
                member_id = member_of_account(session, account)
                return session.get(Member, member_id) if member_id is not None else None

        member = await db(load)
        if member is None:
            return HTMLResponse(pages.message_page("Unknown member", "This link names no member."), 404)
        html = pages.member_page(
            name=member.display_name, member_id=member.id, token=token, boards=documents.boards(web.app)
        )
        response = HTMLResponse(html, headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"})
        remember(response, request, account)
        return response

    async def me(request: Request) -> Response:
        """The visitor's own card, recognised by the signed cookie a personal link left."""
        account, refused, _ = visitor(request, None)
        if account is None:
            text = refused or "Open your personal link once (from the newsletter or a DM); this browser then knows you."
            return HTMLResponse(pages.message_page("Who are you?", text), status_code=403 if refused else 401)
        return RedirectResponse(
            f"/m/{web.signer.token(account)}", status_code=303, headers={"Cache-Control": "no-store"}
        )

    async def badge(request: Request) -> Response:
        achievement_id = request.path_params["achievement"]
        achievement = web.app.catalogue.achievements.get(achievement_id)
        if achievement is None:
            return error(404, f"no achievement '{achievement_id}'")
        tier = request.query_params.get("tier") or achievement.tier
        return Response(
            badge_svg(achievement.name, tier),
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def static(request: Request) -> Response:
        name = request.path_params.get("name", "widget.js")
        files = {
            "widget.js": ("widget.js", "text/javascript"),
            "widget.v1.json": ("widget.v1.schema.json", "application/schema+json"),
        }
        if name not in files:
            return error(404, f"no file '{name}'")
        file, media_type = files[name]
        text = resources.files("smallwins.adapters.web").joinpath("static", file).read_text(encoding="utf-8")
        return Response(text, media_type=media_type, headers={"Cache-Control": "public, max-age=300"})

    async def admin(request: Request) -> Response:
        if not web.admin_token:
            return HTMLResponse(
                pages.message_page(
                    "Operator page off", f"Set {web.settings.admin_token_env} to a secret to turn it on."
                ),
                status_code=404,
            )
        if not _admin_ok(request.headers.get("authorization", ""), web.admin_token):
            return Response(
                "operator token required",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="smallwins operator", charset="UTF-8"'},
            )
        data = await db(lambda: _admin_data(web))
        return HTMLResponse(pages.admin_page(**data), headers={"Cache-Control": "no-store"})

    async def index(request: Request) -> Response:
        return HTMLResponse(pages.index_page(boards=documents.boards(web.app), featured=None))

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [
        Route("/", index),
        Route("/healthz", health),
        Route("/r/{code}", redirect, methods=["GET", "HEAD"]),
        Route("/f/{form}", form_get, methods=["GET"]),
        Route("/f/{form}", form_post, methods=["POST"]),
        Route("/hooks/{source}", hook, methods=["POST"]),
        Route("/api/members/{member}/widget.json", widget),
        Route("/api/leaderboards/{board}", leaderboard_api),
        Route("/api/badges/{achievement}.svg", badge),
        Route("/api/schema/{name}", static),
        Route("/widget.js", static),
        Route("/m/{token}", member_page),
        Route("/me", me),
        Route("/leaderboards", leaderboard_html),
        Route("/leaderboards/{board}", leaderboard_html),
        Route("/admin", admin),
    ]
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
    return Starlette(routes=routes, middleware=middleware)


def _find(web: Web, code: str) -> Any:
    with web.app.store.sessions() as session:
        link = find_link(session, code)
        return link if link is not None and link.active else None


def _survivor(session: Any, member_id: int) -> Member | None:
    member = session.get(Member, member_id)
    while member is not None and member.merged_into_id is not None:
        member = session.get(Member, member.merged_into_id)
    return member


def _form_values(body: bytes, content_type: str) -> dict[str, list[str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None
    if content_type == "application/json":
        try:
            raw = json.loads(text or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"body is not JSON: {exc.msg}") from None
        if not isinstance(raw, dict):
            raise ValueError("JSON body must be an object of field: value")
        values: dict[str, list[str]] = {}
        for key, value in raw.items():
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str | int | float | bool) for v in items):
                raise ValueError(f"field '{key}' must be text")
            values[str(key)] = [str(v) for v in items]
        return values
    try:
        return parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=100)
    except ValueError as exc:
        raise ValueError(f"form body not understood: {exc}") from None


def _admin_ok(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip()).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def _admin_data(web: Web) -> dict[str, Any]:
    from smallwins.adapters.web.links import all_links, campaign_counts
    from smallwins.core.outbox import pending_count
    from smallwins.core.store import OutboxItem

    store = web.app.store
    with store.sessions() as session:
        recent = session.scalars(
            select(AuditEntry).where(AuditEntry.achievement_id.is_not(None)).order_by(AuditEntry.id.desc()).limit(25)
        ).all()
        wanted = {entry.member_id for entry in recent}
        names = {
            member_id: name
            for member_id, name in session.execute(select(Member.id, Member.display_name).where(Member.id.in_(wanted)))
        }
        awards = [
            {
                "at": entry.at.isoformat(),
                "member": f"{names.get(entry.member_id, '?')} ({entry.member_id})",
                "achievement": entry.achievement_id or "",
                "action": entry.action,
                "actor": entry.actor,
            }
            for entry in recent
        ]
        total = session.query(OutboxItem).count()
        campaigns = campaign_counts(session)
        links = [
            {"code": link.code, "campaign": link.campaign, "event_type": link.event_type, "target_url": link.target_url}
            for link in all_links(session)
        ]
    presenters = {
        name: {"pending": pending_count(store, name), "status": "ok"}
        for name, component in web.app.components.items()
        if _is_presenter(component.spec)
    }
    return {
        "awards": awards,
        "outbox": {"total": total, "presenters": presenters},
        "campaigns": campaigns,
        "links": links,
    }


def _is_presenter(spec: object) -> bool:
    from smallwins.core.contract import PresenterSpec

    return isinstance(spec, PresenterSpec)
