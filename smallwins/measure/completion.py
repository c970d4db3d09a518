"""Completion: the share of members holding each achievement, and each ladder as a funnel."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from smallwins.core.rules import Achievement, Catalogue
from smallwins.core.store import Award, Member
from smallwins.measure.cohorts import firsts
from smallwins.measure.sql import epoch_ms, population
from smallwins.measure.stats import Proportion, wilson


@dataclass(frozen=True)
class Completion:
    achievement_id: str
    name: str
    ladder: str | None
    holders: Proportion  # holders among members who have acted


@dataclass(frozen=True)
class FunnelStep:
    label: str
    count: int
    #: Of the members who reached the step before (the first step: of all members).
    conversion: float | None


@dataclass(frozen=True)
class Funnel:
    name: str
    members: int
    steps: list[FunnelStep]


def _target(achievement: Achievement) -> int:
    """Where a ladder step sits: the number its rule asks for (5 for "five contributions")."""
    try:
        return achievement.rule.progress(achievement.params, achievement.rule.initial_state(achievement.params)).target
    except Exception:  # a third-party rule that cannot say: keep catalogue order
        return 0


def _held(session: Session, as_of_ms: int) -> dict[str, dict[str | None, int]]:
    """Active awards held by counted members, by achievement and tier."""
    rows = session.execute(
        select(Award.achievement_id, Award.tier, func.count())
        .join(Member, Member.id == Award.member_id)
        .where(population(), Award.status == "active", epoch_ms(Award.awarded_at) < as_of_ms)
        .group_by(Award.achievement_id, Award.tier)
    )
    held: dict[str, dict[str | None, int]] = defaultdict(dict)
    for achievement_id, tier, n in rows:
        held[achievement_id][tier] = int(n)
    return held


def completion(
    session: Session, catalogue: Catalogue, as_of_ms: int, *, confidence: float = 0.95
) -> tuple[list[Completion], list[Funnel]]:
    """Completion per achievement, and a funnel per ladder (and per tiered trophy)."""
    members = session.scalar(select(func.count()).select_from(firsts(as_of_ms).subquery())) or 0
    held = _held(session, as_of_ms)
    rates = [
        Completion(a.id, a.name, a.ladder, wilson(sum(held.get(a.id, {}).values()), members, confidence))
        for a in catalogue.achievements.values()
    ]
    funnels: list[Funnel] = []
    ladders: dict[str, list[Achievement]] = defaultdict(list)
    for achievement in catalogue.achievements.values():
        if achievement.ladder:
            ladders[achievement.ladder].append(achievement)
    for ladder, steps in ladders.items():
        ordered = sorted(steps, key=_target)
        counts = [(a.name, sum(held.get(a.id, {}).values())) for a in ordered]
        funnels.append(_funnel(f"Ladder: {ladder}", members, counts))
    for achievement in catalogue.achievements.values():
        tiers = [str(t.name) for t in getattr(achievement.params, "tiers", None) or [] if hasattr(t, "name")]
        if tiers:
            by_tier = held.get(achievement.id, {})
            # A member holds one tier at a time: reaching tier i means holding i or above.
            counts = [(tier, sum(by_tier.get(t, 0) for t in tiers[i:])) for i, tier in enumerate(tiers)]
            funnels.append(_funnel(f"Trophy: {achievement.name}", members, counts))
    return rates, funnels


def _funnel(name: str, members: int, counts: list[tuple[str, Any]]) -> Funnel:
    steps, previous = [], members
    for label, count in counts:
        steps.append(FunnelStep(label, int(count), count / previous if previous else None))
        previous = int(count)
    return Funnel(name, members, steps)
