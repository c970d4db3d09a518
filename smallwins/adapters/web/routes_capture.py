"""Capture routes: tracked links (``/r/{code}``), forms (``/f/{form}``), signed webhooks.

Each turns a request into normalized events (:mod:`normalize`), ingests them, and answers with
what became of them; bad input gets a 4xx that names what is wrong.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from smallwins.adapters.web import pages
from smallwins.adapters.web.app import BodyTooLarge, Web, error, read_body, wants_html
from smallwins.adapters.web.links import find_link, record_click
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
from smallwins.adapters.web.settings import origin_of
from smallwins.adapters.web.tokens import SIGNATURE_HEADER, TIMESTAMP_HEADER, BadSignatureHeader, verify_body
from smallwins.core.events import InvalidEvent, load_json

log = structlog.get_logger(__name__)


def capture_routes(web: Web) -> list[Route]:
    """The routes through which web actions come in."""

    async def redirect(request: Request) -> Response:
        code = request.path_params["code"]
        link = await web.db(lambda: _find(web, code))
        if link is None:
            return HTMLResponse(pages.message_page("Unknown link", f"There is no link '{code}' here."), status_code=404)
        reason = automated_reason(request.method, request.headers.get("user-agent"), request.headers)
        account, refused, from_token = web.visitor(request, request.query_params.get("m"))
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

        await web.db(save)
        log.info("web.click", link=link.code, outcome=outcome, refused=refused)
        response = RedirectResponse(link.target_url, status_code=302)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        if account and from_token and not reason:
            web.remember(response, request, account)
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
        tokens = values.pop("m", [None])
        if len(tokens) > 1:  # which one to credit would be a guess
            return error(422, f"field 'm' was given {len(tokens)} times: send one member token")
        account, refused, _ = web.visitor(request, tokens[0])
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
            payload = load_json(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return error(400, f"body is not UTF-8: {exc}")
        except InvalidEvent as exc:  # broken, too deeply nested, NaN: a 400 naming why, never a 500
            return error(400, f"body is {exc}")
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

    return [
        Route("/r/{code}", redirect, methods=["GET", "HEAD"]),
        Route("/f/{form}", form_get, methods=["GET"]),
        Route("/f/{form}", form_post, methods=["POST"]),
        Route("/hooks/{source}", hook, methods=["POST"]),
    ]


def _find(web: Web, code: str) -> Any:
    with web.app.store.sessions() as session:
        link = find_link(session, code)
        return link if link is not None and link.active else None


def _form_values(body: bytes, content_type: str) -> dict[str, list[str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None
    if content_type == "application/json":
        try:
            raw = load_json(text or "{}")
        except InvalidEvent as exc:
            raise ValueError(f"body is {exc}") from None
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
