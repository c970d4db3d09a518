"""Presentation routes: the widget API, leaderboards, badge icons, the embed script, the member
and leaderboard pages, and the operator page."""

from __future__ import annotations

import base64
import hmac
from importlib import resources
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from smallwins.adapters.web import documents, pages
from smallwins.adapters.web.app import Web, error
from smallwins.adapters.web.icons import badge_svg
from smallwins.adapters.web.links import member_of_account
from smallwins.adapters.web.tokens import BadToken
from smallwins.core.store import AuditEntry, Member


def present_routes(web: Web) -> list[Route]:
    """The routes that show members their progress and operators what happens."""

    def icon(achievement_id: str, tier: str | None) -> str:
        custom = web.settings.icons.get(achievement_id)
        if custom:
            return custom
        query = f"?tier={tier}" if tier else ""
        return f"{web.settings.base_url()}/api/badges/{achievement_id}.svg{query}"

    async def widget(request: Request) -> Response:
        raw = request.path_params["member"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # "²" is a digit to str, not to int
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

        loaded = await web.db(load)
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
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return error(400, "limit must be a number from 1 to 100")
        period = request.query_params.get("period")

        def load() -> dict[str, Any]:
            with web.app.store.sessions() as session:
                return documents.leaderboard_document(web.app, session, board, period=period, limit=limit)

        try:
            document = await web.db(load)
        except documents.NotFound as exc:
            return error(404, str(exc))
        except documents.BadPeriod as exc:
            return error(400, str(exc))
        return cached_json(request, document, private=False)

    async def leaderboard_html(request: Request) -> Response:
        board = request.path_params.get("board", documents.ALL_TIME)
        period = request.query_params.get("period")  # a past week or month, as the API takes it

        def load() -> dict[str, Any]:
            with web.app.store.sessions() as session:
                return documents.leaderboard_document(web.app, session, board, period=period, limit=50)

        try:
            document = await web.db(load)
        except documents.NotFound as exc:
            return HTMLResponse(pages.message_page("Unknown leaderboard", str(exc)), status_code=404)
        except documents.BadPeriod as exc:
            return HTMLResponse(pages.message_page("No such period", str(exc)), status_code=400)
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

        member = await web.db(load)
        if member is None:
            return HTMLResponse(pages.message_page("Unknown member", "This link names no member."), 404)
        html = pages.member_page(
            name=member.display_name, member_id=member.id, token=token, boards=documents.boards(web.app)
        )
        response = HTMLResponse(html, headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"})
        web.remember(response, request, account)
        return response

    async def me(request: Request) -> Response:
        """The visitor's own card, recognised by the signed cookie a personal link left."""
        account, refused, _ = web.visitor(request, None)
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
        data = await web.db(lambda: _admin_data(web))
        return HTMLResponse(pages.admin_page(**data), headers={"Cache-Control": "no-store"})

    async def index(request: Request) -> Response:
        return HTMLResponse(pages.index_page(boards=documents.boards(web.app), featured=None))

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return [
        Route("/", index),
        Route("/healthz", health),
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


def _survivor(session: Any, member_id: int) -> Member | None:
    member = session.get(Member, member_id)
    while member is not None and member.merged_into_id is not None:
        member = session.get(Member, member.merged_into_id)
    return member


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
    from smallwins.core.outbox import delivery_state
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
        name: delivery_state(store, name)
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
