"""The JSON documents the web API serves: a member's card (widget) and a leaderboard.

Versioned: ``schema`` names the document and its major version; fields are only ever added
within a version. The JSON Schema is served at ``/api/schema/widget.v1.json`` (see
``static/widget.v1.schema.json``). A member's private details (vouchers, linked accounts) are
in the document only when the request carried that member's signed token.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from smallwins.core import leaderboards, views
from smallwins.core.app import App
from smallwins.core.contract import MemberSnapshot

WIDGET_SCHEMA = "smallwins.widget/1"
LEADERBOARD_SCHEMA = "smallwins.leaderboard/1"
ALL_TIME = leaderboards.ALL_TIME


class NotFound(LookupError):
    """What was asked for does not exist (or is not shown to this caller)."""


class BadPeriod(ValueError):
    """A period that is not one of the board's (a 400: the request is malformed, not missing)."""


def _streak(snapshot: MemberSnapshot) -> dict[str, Any] | None:
    """The member's most alive streak: current run, longest, periods left to keep it."""
    streaks = [item for item in snapshot.progress if "longest" in item["detail"]]
    if not streaks:
        return None
    item = max(streaks, key=lambda i: (i["detail"]["current"], i["detail"]["longest"]))
    detail = item["detail"]
    return {
        "id": item["id"],
        "name": item["name"],
        "unit": str(item["unit"]).split()[0].rstrip("s"),  # "days in a row" -> "day"
        "current": detail["current"],
        "longest": detail["longest"],
        "target": item["target"],
        "left": detail.get("periods_left"),
        "act_by": detail.get("act_by"),
        "freezes": detail.get("freezes", 0),
    }


def widget_document(
    app: App, session: Session, member_id: int, *, private: bool, icon: Callable[[str, str | None], str]
) -> dict[str, Any]:
    """Everything the card shows about one member; ``private`` adds what only they may see."""
    snapshot = app.snapshot(session, member_id)
    shares = views.rarity(session)
    badges = []
    for award in snapshot.awards:
        tier = award["tier"]
        badges.append(
            {
                "id": award["id"],
                "name": award["name"],
                "description": award["description"],
                "tier": tier,
                "rarity": round(shares.get(award["id"], 0.0), 4),
                "rarity_text": award["held_by"],
                "earned_at": award["awarded_at"],
                "icon": icon(award["id"], tier),
                "alt": f"{award['name']} badge" + (f" ({tier})" if tier else ""),
            }
        )
    progress = [
        {
            "id": item["id"],
            "name": item["name"],
            "current": item["current"],
            "target": item["target"],
            "unit": item["unit"],
            "text": item["text"],
            "earned": item["earned"],
            "tier": item["tier"],
            "next_tier": item["next_tier"],
        }
        for item in views.next_targets(snapshot)
    ]
    names = {a.id: a.name for a in app.catalogue.achievements.values()}
    document: dict[str, Any] = {
        "schema": WIDGET_SCHEMA,
        "member": {
            "id": snapshot.member_id,
            "name": snapshot.display_name,
            "points": snapshot.points,
            "rank": snapshot.rank,
        },
        "badges": badges,
        "progress": progress,
        "streak": _streak(snapshot),
        "achievements_total": len(app.catalogue.achievements),
        "vouchers": None,
        "private": None,
    }
    if private:
        document["vouchers"] = [
            {**voucher, "name": names.get(voucher["achievement_id"], voucher["achievement_id"])}
            for voucher in snapshot.vouchers
        ]
        document["private"] = {
            "off_leaderboards": snapshot.private,
            "timezone": snapshot.timezone,
            "accounts": {platform: list(accounts) for platform, accounts in snapshot.identities.items()},
        }
    return document


def leaderboard_document(app: App, session: Session, board: str, *, period: str | None, limit: int) -> dict[str, Any]:
    """One board's standings: public members only (private and staff members are left out)."""
    if board == ALL_TIME:
        if period is not None:
            raise BadPeriod("the all-time board has no periods")
        rows = leaderboards.all_time(session, limit=limit)
        name, key = "All time", None
    else:
        spec = app.catalogue.leaderboards.get(board)
        if spec is None:
            known = ", ".join([ALL_TIME, *sorted(app.catalogue.leaderboards)])
            raise NotFound(f"no leaderboard '{board}'; known: {known}")
        if period is not None and not leaderboards.is_period_of(spec, period):
            raise BadPeriod(f"'{period}' is not a period of '{board}': {leaderboards.PERIOD_EXAMPLES[spec.period]}")
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(app.config.core.default_timezone)
        key = period or leaderboards.period_key(spec, app.engine.clock(), zone) or "season"
        rows = leaderboards.standings(session, board, key, limit=limit)
        name = spec.name
    return {
        "schema": LEADERBOARD_SCHEMA,
        "board": board,
        "name": name,
        "period": key,
        "rows": [{"rank": r.rank, "member_id": r.member_id, "name": r.display_name, "points": r.points} for r in rows],
    }


def boards(app: App) -> list[tuple[str, str]]:
    """Every board id with its name, all-time first."""
    return [(ALL_TIME, "All time"), *((b.id, b.name) for b in app.catalogue.leaderboards.values())]


def etag(document: Any) -> str:
    """A strong validator for a JSON document: the same content, the same tag."""
    body = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
