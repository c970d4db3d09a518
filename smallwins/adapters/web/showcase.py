"""``smallwins demo --serve``: the demo community on the web, ready for a person to try.

It picks a member one tracked-link click away from a badge (asking each rule what one more
``link.clicked`` from the web would do, so it works for any rule type), makes a tracked link
that leads back to the member's own card, and prints where to look.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from smallwins.adapters.web.links import create_link
from smallwins.adapters.web.normalize import SOURCE
from smallwins.core import rule_states
from smallwins.core.app import App
from smallwins.core.events import Event
from smallwins.core.holdout import held_out
from smallwins.core.rules import RuleContext
from smallwins.core.store import Award, Member

CLICK = "link.clicked"


@dataclass(frozen=True)
class Showcase:
    member_id: int
    display_name: str
    achievement: str
    link_code: str


def one_click_away(app: App, *, now: datetime, candidates: int = 500) -> tuple[int, str, str] | None:
    """A public member (most points first) whom one web ``link.clicked`` would give a badge."""
    reachable = [a for a in app.catalogue.achievements.values() if CLICK in a.triggers]
    if not reachable:
        return None
    zone = ZoneInfo(app.config.core.default_timezone)
    with app.store.sessions() as session:
        members = session.execute(
            select(Member.id, Member.display_name, Member.timezone)
            .where(Member.merged_into_id.is_(None), Member.staff.is_(False), Member.private.is_(False))
            .order_by(Member.points.desc(), Member.id)
            .limit(candidates)
        ).all()
        for member_id, name, timezone in members:
            held = set(session.scalars(select(Award.achievement_id).where(Award.member_id == member_id)))
            states = {a: saved.state for a, saved in rule_states.read(session, [member_id]).get(member_id, {}).items()}
            ctx = RuleContext(member_id=member_id, timezone=ZoneInfo(timezone) if timezone else zone, now=now)
            click = Event(id="showcase", source=SOURCE, type=CLICK, subject=f"m{member_id}", time=now)
            for achievement in reachable:
                if achievement.id in held or held_out(app.catalogue, achievement.id, member_id):
                    continue  # already held, or a badge this member is not shown (holdout)
                if not achievement.accepts(click):
                    continue
                state = states.get(achievement.id) or achievement.rule.initial_state(achievement.params)
                after = achievement.rule.apply(achievement.params, state, click, ctx)
                if after is not None and achievement.standing(after, ctx).met:
                    return member_id, name, achievement.name
    return None


def prepare(app: App, *, base_url: str) -> Showcase | None:
    """Choose the member and make the tracked link (it leads to ``/me``: their own card)."""
    found = one_click_away(app, now=app.engine.clock())
    if found is None:
        return None
    member_id, name, achievement = found
    link = create_link(
        app.store, url=f"{base_url}/me", campaign="demo", event_type=CLICK, credit_period="day", note="demo"
    )
    return Showcase(member_id=member_id, display_name=name, achievement=achievement, link_code=link.code)
