"""Streak survival: how long members' first streak of active days lasts, and whether they come
back the day after their first missed day (when a one-day grace would have saved the streak).

A streak here is a run of consecutive UTC calendar days with at least one of the streak
achievement's events (the rule itself counts days in each member's time zone; the report uses
UTC so the whole computation stays in SQL). Each member's first streak is one unit; a streak
still running when observation stops (the day after it is not over yet) is censored, and the
curve is the Kaplan-Meier estimate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from smallwins.core.rules import Catalogue
from smallwins.measure.sql import DAY_MS, activity
from smallwins.measure.stats import Proportion, kaplan_meier, wilson


@dataclass(frozen=True)
class StreakSurvival:
    achievement_id: str
    name: str
    target: int
    streaks: int  # members with a first streak
    ended: dict[int, int]
    censored: dict[int, int]
    curve: list[float]  # S(d) for d = 1..len(curve): share of first streaks lasting >= d days
    after_missed_day: Proportion  # back the day after their first missed day

    def at(self, days: int) -> float | None:
        return self.curve[days - 1] if 0 < days <= len(self.curve) else None


def streak_survival(
    session: Session, catalogue: Catalogue, as_of_ms: int, *, longest: int = 28, confidence: float = 0.95
) -> list[StreakSurvival]:
    """One survival table per day-streak achievement in the catalogue."""
    found = []
    for achievement in catalogue.achievements.values():
        params = achievement.params
        if achievement.rule.name != "streak" or getattr(params, "unit", "day") != "day":
            continue
        types = frozenset(getattr(params, "events", None) or []) or None
        found.append(
            _survival(
                session, achievement.id, achievement.name, int(params.target), types, as_of_ms, longest, confidence
            )
        )
    return found


def _survival(
    session: Session,
    achievement_id: str,
    name: str,
    target: int,
    types: frozenset[str] | None,
    as_of_ms: int,
    longest: int,
    confidence: float,
) -> StreakSurvival:
    acts = activity(as_of_ms, types=types).subquery("acts")
    days = select(acts.c.member_id, (acts.c.ms // DAY_MS).label("day")).distinct().subquery("days")
    islands = select(
        days.c.member_id,
        days.c.day,
        (days.c.day - func.row_number().over(partition_by=days.c.member_id, order_by=days.c.day)).label("island"),
    ).subquery("islands")
    runs = (
        select(
            islands.c.member_id,
            func.min(islands.c.day).label("start"),
            func.max(islands.c.day).label("stop"),
            func.count().label("length"),
        )
        .group_by(islands.c.member_id, islands.c.island)
        .subquery("runs")
    )
    # One pass, no self-join: each member's runs in order, with the start of the run after it.
    ordered = select(
        runs,
        func.row_number().over(partition_by=runs.c.member_id, order_by=runs.c.start).label("rank"),
        func.lead(runs.c.start).over(partition_by=runs.c.member_id, order_by=runs.c.start).label("next_start"),
    ).subquery("ordered")
    first = select(ordered).where(ordered.c.rank == 1).subquery("first_run")
    horizon = as_of_ms // DAY_MS  # days before this one are over
    ended = case((first.c.stop + 1 < horizon, 1), else_=0)
    missed_seen = case((first.c.stop + 2 < horizon, 1), else_=0)
    came_back = case((and_(first.c.stop + 2 < horizon, first.c.next_start == first.c.stop + 2), 1), else_=0)
    rows = session.execute(
        select(first.c.length, ended, func.count(), func.sum(missed_seen), func.sum(came_back)).group_by(
            first.c.length, ended
        )
    ).all()
    done: dict[int, int] = defaultdict(int)
    alive: dict[int, int] = defaultdict(int)
    seen = back = 0
    for length, is_ended, count, missed, returned in rows:
        (done if is_ended else alive)[int(length)] += int(count)
        seen += int(missed or 0)
        back += int(returned or 0)
    span = max(longest, target)
    return StreakSurvival(
        achievement_id=achievement_id,
        name=name,
        target=target,
        streaks=sum(done.values()) + sum(alive.values()),
        ended=dict(done),
        censored=dict(alive),
        curve=kaplan_meier(done, alive, span),
        after_missed_day=wilson(back, seen, confidence),
    )
