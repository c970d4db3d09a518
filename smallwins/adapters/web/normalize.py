"""Pure functions from web requests (a click, a form, a webhook body) to normalized events.

No I/O here: what a request means is decided from its parts, so it is testable without a server.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from smallwins.adapters.web.settings import FormSettings
from smallwins.core.events import Event, InvalidEvent, json_kind, parse_event

SOURCE = "web"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

#: Link unfurlers, crawlers and mail security scanners: they fetch a URL without a person.
#: (PLATFORMS.md: Discordbot, Slackbot, Twitterbot, facebookexternalhit, LinkedInBot, scanners.)
AUTOMATED_AGENTS = re.compile(
    r"bot\b|bot/|crawler|spider|slurp|discordbot|slackbot|slack-imgproxy|twitterbot|facebookexternalhit"
    r"|facebookcatalog|linkedinbot|telegrambot|whatsapp|skypeuripreview|embedly|iframely|redditbot|applebot"
    r"|pinterest|vkshare|bingpreview|googleimageproxy|yahoomailproxy|outlook-ios-linkpreview|microsoft office"
    r"|ms-office|mimecast|barracuda|proofpoint|symantec|messagelabs|forcepoint|zscaler|trendmicro|sophos"
    r"|safelinks|urldefense|preview|headless|phantomjs|python-requests|python-urllib|aiohttp|okhttp|go-http-client"
    r"|curl/|wget/|libwww|java/|httpclient|scrapy|node-fetch|axios/",
    re.IGNORECASE,
)


def automated_reason(method: str, user_agent: str | None, headers: Mapping[str, str]) -> str | None:
    """Why this fetch is not a person's visit (``head``, ``bot``, ``prefetch``), or ``None``."""
    if method.upper() == "HEAD":
        return "head"
    purpose = (headers.get("sec-purpose") or headers.get("purpose") or headers.get("x-purpose") or "").lower()
    if "prefetch" in purpose or "preview" in purpose:
        return "prefetch"
    if not user_agent or not user_agent.strip() or AUTOMATED_AGENTS.search(user_agent):
        return "bot"
    return None


def member_account(member_id: int) -> str:
    """The web account that stands for a member (what a personal token signs)."""
    return f"m{member_id}"


def period_key(period: str, moment: datetime, zone: ZoneInfo) -> str:
    """The credit period ``moment`` falls in, in the community's time zone."""
    local = moment.astimezone(zone)
    if period == "day":
        return local.date().isoformat()
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{local.year}-{local.month:02d}"
    return "ever"


def clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


@dataclass(frozen=True)
class Click:
    """What a tracked-link fetch carried."""

    code: str
    utm: dict[str, str]
    referrer: str | None
    user_agent: str | None


def utm_of(query: Mapping[str, str]) -> dict[str, str]:
    return {key: str(clip(query[key], 200)) for key in UTM_KEYS if query.get(key)}


def click_event(
    click: Click,
    *,
    account: str,
    event_type: str,
    campaign: str,
    credit_period: str,
    now: datetime,
    zone: ZoneInfo,
    proof: str,
) -> Event:
    """The credit for a member's click; its id names member, link and period, so a repeat in the
    same period is a duplicate the core drops."""
    period = period_key(credit_period, now, zone)
    data: dict[str, Any] = {"link": click.code, "campaign": campaign, "period": period}
    data.update(click.utm)
    if click.referrer:
        data["referrer"] = clip(urlsplit(click.referrer).netloc or click.referrer, 200)
    return Event(
        id=f"link:{click.code}:{account}:{period}",
        source=SOURCE,
        type=event_type,
        subject=account,
        time=now,
        proof=proof,
        data=data,
    )


class FormRejected(ValueError):
    """A submission that does not fit its form; the message names the field and the problem."""


def form_event(
    name: str, form: FormSettings, values: Mapping[str, Sequence[str]], *, account: str, now: datetime
) -> Event:
    """The event for one valid submission, or :class:`FormRejected` saying what is wrong.

    Identical submissions by one member count once (the id hashes the answers); a poll
    (``once``) counts one submission per member, whatever the answers.
    """
    problems = []
    unknown = sorted(set(values) - set(form.fields) - {"m", "csrf"})
    if unknown:
        problems.append(f"unknown field '{unknown[0]}' (this form takes: {', '.join(form.fields) or 'no fields'})")
    clean: dict[str, str] = {}
    for field in form.fields:
        given = values.get(field, [])
        if len(given) > 1:
            problems.append(f"field '{field}' was given {len(given)} times")
            continue
        value = given[0].strip() if given else ""
        if not value:
            if field in form.required:
                problems.append(f"field '{field}' is required")
            continue
        if len(value) > form.max_length:
            problems.append(f"field '{field}' is {len(value)} characters; at most {form.max_length}")
        elif field in form.choices and value not in form.choices[field]:
            problems.append(f"field '{field}' must be one of {', '.join(form.choices[field])}")
        elif "\x00" in value:
            problems.append(f"field '{field}' contains a NUL character")
        else:
            clean[field] = value
    if problems:
        raise FormRejected("; ".join(problems))
    digest = "once" if form.once else hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]
    try:
        return Event(
            id=f"form:{name}:{account}:{digest}",
            source=SOURCE,
            type=form.event,
            subject=account,
            time=now,
            proof=None,
            data={"form": name, "answers": clean},
        )
    except ValueError as exc:  # e.g. answers too large for an event's data
        raise FormRejected(str(exc)) from None


@dataclass(frozen=True)
class HookItem:
    """One entry of a webhook body: its event, or why it was refused."""

    index: int
    event: Event | None = None
    error: str | None = None
    id: str | None = None


def hook_items(source: str, body: Any, *, allowed_types: Sequence[str], limit: int) -> list[HookItem]:
    """Parse a webhook body (``{"events": [...]}``, a list, or one event) into per-event results.

    Each event must be a normalized event; ``source`` may be left out (it is the hook's) but
    never name another source. A bad entry is refused on its own; the others go in.
    """
    if isinstance(body, Mapping) and "events" in body:
        entries = body["events"]
    elif isinstance(body, Mapping):
        entries = [body]
    else:
        entries = body
    if not isinstance(entries, list):
        raise InvalidEvent('body must be a JSON object {"events": [...]}, a list of events, or one event')
    if not entries:
        raise InvalidEvent("no events in the body")
    if len(entries) > limit:
        raise InvalidEvent(f"{len(entries)} events in one body; at most {limit}")
    items = []
    for index, entry in enumerate(entries):
        entry_id = str(entry.get("id"))[:200] if isinstance(entry, Mapping) and entry.get("id") is not None else None
        if not isinstance(entry, Mapping):
            items.append(HookItem(index, error=f"expected a JSON object, got {json_kind(entry)}"))
            continue
        payload = dict(entry)
        given = payload.setdefault("source", source)
        if given != source:
            items.append(HookItem(index, id=entry_id, error=f"source '{given}' is not this hook's ('{source}')"))
            continue
        try:
            event = parse_event(payload)
        except InvalidEvent as exc:
            items.append(HookItem(index, id=entry_id, error=str(exc)))
            continue
        if allowed_types and event.type not in allowed_types:
            items.append(HookItem(index, id=entry_id, error=f"type '{event.type}' is not allowed for this hook"))
            continue
        items.append(HookItem(index, event=event, id=event.id))
    return items


def normalize(payload: Mapping[str, Any]) -> list[Event]:
    """A recorded web event (as stored, or as a webhook entry) back into an event."""
    return [parse_event(payload)]
