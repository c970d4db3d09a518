"""A rule's ``standing`` (what the engine asks after every event) says what its ``progress`` says
of met, tier and tier rank, for every built-in rule type on random timelines; a rule without one
is judged by its ``progress``."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from smallwins.core.config import DEFAULT_CONFIG, load_catalogue
from smallwins.core.events import Event
from smallwins.core.plugins import PluginHost
from smallwins.core.rules import Achievement, Progress, RuleContext, Standing

START = datetime(2021, 9, 1, tzinfo=UTC)  # the longest timeline ends before today
SOURCES = ["discord", "youtube", "email", "web"]
DEMO_CATALOGUE = DEFAULT_CONFIG.parent / "achievements.toml"
CATALOGUE_ACHIEVEMENTS = load_catalogue(DEMO_CATALOGUE, PluginHost().rule_types()).achievements


def _timeline(achievement: Achievement, rng: random.Random) -> list[tuple[Event, int | None]]:
    """Own events of the achievement's trigger types on random days (gaps of weeks included) and
    approvals of them by other members: ``(event, actor member id or None for the member)``."""
    own_types, approval_types = sorted(achievement.triggers), sorted(achievement.target_triggers)
    moment, timeline = START, []
    for n in range(rng.randint(5, 120)):
        moment += timedelta(hours=rng.choices([1, 6, 20, 30, 50, 24 * 16], weights=[3, 3, 3, 3, 2, 1])[0])
        own = Event(id=f"own{n}", source=rng.choice(SOURCES), type=rng.choice(own_types), subject="m",
                    time=moment, data={})
        timeline.append((own, None))
        for voter in range(rng.randint(0, 3) if approval_types else 0):
            approval = Event(id=f"ok{n}-{voter}", source=own.source, type=rng.choice(approval_types),
                             subject=f"v{voter}", time=moment + timedelta(hours=1), data={"target": own.key})
            timeline.append((approval, 100 + voter))
    return timeline


@pytest.mark.parametrize("achievement_id", sorted(CATALOGUE_ACHIEVEMENTS))
def test_standing_says_what_progress_says_after_every_event(achievement_id: str) -> None:
    achievement = CATALOGUE_ACHIEVEMENTS[achievement_id]
    rule, params = achievement.rule, achievement.params
    assert hasattr(rule, "standing"), "every built-in rule type answers the engine's question itself"
    seen: Counter[Standing] = Counter()
    for seed in range(40):
        rng = random.Random(seed)
        zone = ZoneInfo(rng.choice(["UTC", "America/Los_Angeles", "Asia/Tokyo"]))
        state: dict[str, Any] = rule.initial_state(params)
        first = achievement.standing(state)
        assert first == Standing.of(rule.progress(params, state)) and not first.met
        seen[first] += 1
        for event, actor in _timeline(achievement, rng):
            ctx = RuleContext(member_id=1, timezone=zone, now=event.time + timedelta(days=rng.randint(0, 20)),
                              actor_member_id=actor)
            state = rule.apply(params, state, event, ctx) or state
            standing = achievement.standing(state, ctx)
            assert standing == Standing.of(rule.progress(params, state, ctx)), (seed, event.key, state)
            seen[standing] += 1
    assert any(s.met for s in seen) and any(not s.met for s in seen), f"both sides reached: {seen}"
    if achievement.rule.name == "trophy":
        assert {s.tier_rank for s in seen} >= {0, 1, 2, 3}, f"tiers reached: {seen}"


class _Params(BaseModel):
    target: int = 2


class _ProgressOnlyRule:
    """A third party's rule type that defines ``progress`` and no ``standing``."""

    name = "progress-only"
    params_model = _Params

    def triggers(self, params: _Params) -> frozenset[str]:
        return frozenset({"message.posted"})

    def initial_state(self, params: _Params) -> dict[str, Any]:
        return {"n": 0}

    def apply(self, params: _Params, state: dict[str, Any], event: Event, ctx: RuleContext) -> dict[str, Any]:
        return {"n": state["n"] + 1}

    def progress(self, params: _Params, state: dict[str, Any], ctx: RuleContext | None = None) -> Progress:
        tier = "big" if state["n"] >= 3 else None
        return Progress(state["n"], params.target, "posts", tier=tier, tier_rank=1 if tier else 0)


def test_a_rule_without_standing_is_judged_by_its_progress() -> None:
    achievement = Achievement(id="a", name="A", description="a", rule=_ProgressOnlyRule(), params=_Params())
    assert achievement.standing({"n": 1}) == Standing(False)
    assert achievement.standing({"n": 2}) == Standing(True)
    assert achievement.standing({"n": 3}) == Standing(True, "big", 1)
