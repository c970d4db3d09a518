"""Cohorts by first-activity week, their retention curves, and day-N returns of first-week earners.

Definitions (also in README "Measurement"): a member's *first activity* is their earliest counted
action. *Day-N return* means at least one action in the week-long window
``[first + N days, first + N + 7 days)``; a member counts toward day N only once that window
has fully passed by ``as_of``. *Week k* of a cohort's curve is the window
``[first + 7k days, first + 7(k+1) days)``, so week 1 is the day-7 return.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, exists, func, select
from sqlalchemy.orm import Session

from smallwins.core.store import Award
from smallwins.measure.sql import DAY_MS, WEEK_MS, activity, epoch_ms
from smallwins.measure.stats import Difference, Proportion, newcombe, wilson

#: The return days the report shows.
RETURN_DAYS = (7, 30, 90)
_EPOCH = date(1970, 1, 1)


def cohort_start(week_index: int) -> date:
    """The Monday starting week ``week_index`` (weeks counted from the Monday 1970-01-05 = 1)."""
    return _EPOCH + timedelta(days=7 * week_index - 3)


def cohort_label(week_index: int) -> str:
    year, week, _ = cohort_start(week_index).isocalendar()
    return f"{year}-W{week:02d}"


def firsts(as_of_ms: int) -> Select[Any]:
    """``(member_id, first_ms, cohort)``: each counted member's first action and its week."""
    acts = activity(as_of_ms).subquery("acts")
    first = func.min(acts.c.ms)
    return select(
        acts.c.member_id.label("member_id"),
        first.label("first_ms"),
        ((first // DAY_MS + 3) // 7).label("cohort"),
    ).group_by(acts.c.member_id)


@dataclass
class CohortCurve:
    """One cohort: its size and, per week k = 1, 2, ..., the share active in week k."""

    cohort: int
    size: int
    weeks: list[Proportion] = field(default_factory=list)

    @property
    def label(self) -> str:
        return cohort_label(self.cohort)


def retention_curves(session: Session, as_of_ms: int, *, confidence: float = 0.95) -> list[CohortCurve]:
    """Per first-activity week: the share of its members active in each later week."""
    f = firsts(as_of_ms).subquery("f")
    a = activity(as_of_ms).subquery("a")
    week = (a.c.ms - f.c.first_ms) // WEEK_MS
    observed = (as_of_ms - f.c.first_ms) // WEEK_MS  # weeks k < observed have fully passed
    active_rows = session.execute(
        select(f.c.cohort, week, func.count(func.distinct(a.c.member_id)))
        .select_from(a)
        .join(f, f.c.member_id == a.c.member_id)
        .where(week < observed, week >= 1)
        .group_by(f.c.cohort, week)
    ).all()
    size_rows = session.execute(select(f.c.cohort, observed, func.count()).group_by(f.c.cohort, observed)).all()
    active = {(int(c), int(k)): int(n) for c, k, n in active_rows}
    sizes: dict[int, dict[int, int]] = defaultdict(dict)
    for cohort, weeks_seen, n in size_rows:
        sizes[int(cohort)][int(weeks_seen)] = int(n)
    curves = []
    for cohort in sorted(sizes):
        seen = sizes[cohort]
        curve = CohortCurve(cohort=cohort, size=sum(seen.values()))
        for k in range(1, max(seen) if seen else 0):
            eligible = sum(n for weeks_seen, n in seen.items() if weeks_seen > k)
            curve.weeks.append(wilson(active.get((cohort, k), 0), eligible, confidence))
        curves.append(curve)
    return curves


def member_returns(as_of_ms: int, days: tuple[int, ...] = RETURN_DAYS) -> Select[Any]:
    """Per member: first action, cohort, whether they earned any badge in their first 7 days,
    and for each N in ``days`` whether day N is observable (``seen_N``) and they returned (``back_N``)."""
    f = firsts(as_of_ms).subquery("f")
    a = activity(as_of_ms).subquery("a")
    offset = a.c.ms - f.c.first_ms
    backs = [
        func.max(case((and_(offset >= n * DAY_MS, offset < (n + 7) * DAY_MS), 1), else_=0)).label(f"back_{n}")
        for n in days
    ]
    per_member = (
        select(a.c.member_id, *backs)
        .select_from(a)
        .join(f, f.c.member_id == a.c.member_id)
        .group_by(a.c.member_id)
        .subquery("r")
    )
    earned = exists().where(
        Award.member_id == f.c.member_id,
        Award.status == "active",
        epoch_ms(Award.awarded_at) < f.c.first_ms + 7 * DAY_MS,
    )
    return (
        select(
            f.c.member_id,
            f.c.first_ms,
            f.c.cohort,
            case((earned, 1), else_=0).label("earned"),
            *[case((f.c.first_ms + (n + 7) * DAY_MS <= as_of_ms, 1), else_=0).label(f"seen_{n}") for n in days],
            *[per_member.c[f"back_{n}"] for n in days],
        )
        .select_from(f)
        .join(per_member, per_member.c.member_id == f.c.member_id)
    )


@dataclass
class EarnerReturns:
    """Day-N returns of one cohort (or all, ``cohort`` None) split by a first-week badge."""

    cohort: int | None
    members: int
    earners: int
    earned: dict[int, Proportion]
    not_earned: dict[int, Proportion]
    difference: dict[int, Difference]

    @property
    def label(self) -> str:
        return "all cohorts" if self.cohort is None else cohort_label(self.cohort)


def earner_returns(
    session: Session, as_of_ms: int, *, days: tuple[int, ...] = RETURN_DAYS, confidence: float = 0.95
) -> list[EarnerReturns]:
    """Per cohort and overall (last): day-N return of first-week earners vs the others."""
    m = member_returns(as_of_ms, days).subquery("m")
    sums = [func.sum(m.c[f"seen_{n}"]) for n in days] + [func.sum(m.c[f"seen_{n}"] * m.c[f"back_{n}"]) for n in days]
    rows = session.execute(select(m.c.cohort, m.c.earned, func.count(), *sums).group_by(m.c.cohort, m.c.earned)).all()
    cells: dict[int | None, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0] * (1 + 2 * len(days))))
    for cohort, earned, count, *numbers in rows:
        for key in (int(cohort), None):
            cell = cells[key][int(earned)]
            for i, value in enumerate([count, *numbers]):
                cell[i] += int(value or 0)
    results = []
    for key in [*sorted(k for k in cells if k is not None), None]:
        if key not in cells:
            continue
        yes, no = cells[key][1], cells[key][0]
        width = len(days)
        earned_p = {n: wilson(yes[1 + width + i], yes[1 + i], confidence) for i, n in enumerate(days)}
        other_p = {n: wilson(no[1 + width + i], no[1 + i], confidence) for i, n in enumerate(days)}
        results.append(
            EarnerReturns(
                cohort=key,
                members=yes[0] + no[0],
                earners=yes[0],
                earned=earned_p,
                not_earned=other_p,
                difference={n: newcombe(earned_p[n], other_p[n]) for n in days},
            )
        )
    return results


@dataclass
class LaunchComparison:
    """Day-7 return of members who arrived in the weeks before an achievement's launch vs after."""

    achievement_id: str
    name: str
    launched_ms: int
    window_days: int
    before: Proportion
    after: Proportion
    difference: Difference


def launch_comparison(
    session: Session,
    as_of_ms: int,
    *,
    achievement_id: str,
    name: str,
    launched_ms: int,
    window_days: int = 28,
    confidence: float = 0.95,
) -> LaunchComparison:
    """Members first active in ``[launch - window, launch)`` vs ``[launch, launch + window)``."""
    m = member_returns(as_of_ms, (7,)).subquery("m")
    side = case((m.c.first_ms < launched_ms, 0), else_=1)
    rows = session.execute(
        select(side, func.sum(m.c.seen_7), func.sum(m.c.seen_7 * m.c.back_7))
        .where(m.c.first_ms >= launched_ms - window_days * DAY_MS, m.c.first_ms < launched_ms + window_days * DAY_MS)
        .group_by(side)
    ).all()
    counts = {int(s): (int(seen or 0), int(back or 0)) for s, seen, back in rows}
    before = wilson(counts.get(0, (0, 0))[1], counts.get(0, (0, 0))[0], confidence)
    after = wilson(counts.get(1, (0, 0))[1], counts.get(1, (0, 0))[0], confidence)
    return LaunchComparison(achievement_id, name, launched_ms, window_days, before, after, newcombe(after, before))
