"""Building an engine around a handcrafted catalogue, for rule tests on exact timelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from smallwins.core.config import parse_catalogue
from smallwins.core.engine import Engine
from smallwins.core.plugins import PluginHost
from smallwins.core.store import Award, Store
from smallwins.core.views import find_member

_HOST = PluginHost()


def catalogue_of(achievements: dict[str, dict[str, Any]], **extra: Any):
    tables = {
        key: {"name": key.title(), "description": f"{key} test achievement.", **table}
        for key, table in achievements.items()
    }
    return parse_catalogue({"achievements": tables, **extra}, _HOST.rule_types(), path=Path("test.toml"))


def engine_of(store: Store, clock, achievements: dict[str, dict[str, Any]], *, timezone: str = "UTC", **extra: Any):
    return Engine(store, catalogue_of(achievements, **extra), clock=clock, default_timezone=timezone)


def held(store: Store, ref: str) -> dict[str, str | None]:
    """Active awards of the member behind ``ref``: achievement -> tier."""
    with store.sessions() as session:
        member = find_member(session, ref)
        rows = session.scalars(select(Award).where(Award.member_id == member.id, Award.status == "active"))
        return {row.achievement_id: row.tier for row in rows}


def progress_of(engine: Engine, store: Store, ref: str, achievement_id: str):
    from smallwins.core import rule_states
    from smallwins.core.rules import RuleContext

    with store.sessions() as session:
        member = find_member(session, ref)
        row = rule_states.read(session, [member.id]).get(member.id, {}).get(achievement_id)
        achievement = engine.catalogue.achievements[achievement_id]
        state = row.state if row else achievement.rule.initial_state(achievement.params)
        ctx = RuleContext(member_id=member.id, timezone=engine._context(member).timezone, now=engine.clock())
        return achievement.rule.progress(achievement.params, state, ctx)
