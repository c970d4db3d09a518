"""Volume and quality over time: contribution depth per week, the inflation warning, time from
first action to first badge, and the voucher claim rate."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from smallwins.core.rules import Catalogue
from smallwins.core.store import Award, Member, Voucher
from smallwins.measure.cohorts import cohort_label, firsts
from smallwins.measure.sql import DAY_MS, activity, epoch_ms, population
from smallwins.measure.stats import Proportion, wilson

#: The inflation warning fires when contributions rose by at least this share while approvals
#: per contribution fell by at least this share (latest full week vs the up to 3 before it).
INFLATION_CHANGE = 0.2


@dataclass(frozen=True)
class Week:
    week: int
    complete: bool
    actions: int
    active_members: int
    contributions: int
    approvals: int
    awards: int

    @property
    def label(self) -> str:
        return cohort_label(self.week)

    @property
    def depth(self) -> float:
        """Actions per active member."""
        return self.actions / self.active_members if self.active_members else 0.0

    @property
    def approvals_per_contribution(self) -> float | None:
        return self.approvals / self.contributions if self.contributions else None


def quality_types(catalogue: Catalogue) -> tuple[frozenset[str], frozenset[str]]:
    """(contribution types, approval types) named by the catalogue's quality-gated rules."""
    contributions: set[str] = set()
    approvals: set[str] = set()
    for achievement in catalogue.achievements.values():
        if achievement.rule.name == "approved_count":
            params = achievement.params
            contributions.update(getattr(params, "events", None) or [])
            approvals.update(getattr(params, "reactions", None) or [])
            approvals.update(getattr(params, "approvals", None) or [])
    return frozenset(contributions), frozenset(approvals)


def weekly(session: Session, catalogue: Catalogue, as_of_ms: int) -> list[Week]:
    """Per UTC ISO week: actions, active members, contributions, approvals, badges awarded."""
    contributions, approvals = quality_types(catalogue)
    a = activity(as_of_ms).subquery("a")
    week = (a.c.ms // DAY_MS + 3) // 7
    rows = session.execute(
        select(
            week,
            func.count(),
            func.count(func.distinct(a.c.member_id)),
            func.sum(case((a.c.type.in_(sorted(contributions) or [""]), 1), else_=0)),
            func.sum(case((a.c.type.in_(sorted(approvals) or [""]), 1), else_=0)),
        ).group_by(week)
    ).all()
    award_week = (epoch_ms(Award.awarded_at) // DAY_MS + 3) // 7
    awarded = dict(
        session.execute(
            select(award_week, func.count())
            .join(Member, Member.id == Award.member_id)
            .where(population(), Award.status == "active", epoch_ms(Award.awarded_at) < as_of_ms)
            .group_by(award_week)
        ).all()
    )
    return [
        Week(
            week=int(w),
            complete=(7 * int(w) + 4) * DAY_MS <= as_of_ms,
            actions=int(n),
            active_members=int(members),
            contributions=int(c or 0),
            approvals=int(ap or 0),
            awards=int(awarded.get(w, 0)),
        )
        for w, n, members, c, ap in sorted(rows)
    ]


def inflation_warning(weeks: list[Week], catalogue: Catalogue) -> str | None:
    """A sentence when volume rises while approvals per contribution fall; else None."""
    contributions, approvals = quality_types(catalogue)
    if not contributions or not approvals:
        return None
    full = [w for w in weeks if w.complete and w.contributions]
    if len(full) < 2:
        return None
    latest, before = full[-1], full[-4:-1]
    volume_before = statistics.fmean(w.contributions for w in before)
    ratio_before = statistics.fmean(w.approvals_per_contribution or 0.0 for w in before)
    ratio_now = latest.approvals_per_contribution or 0.0
    if volume_before <= 0 or ratio_before <= 0:
        return None
    volume_change = latest.contributions / volume_before - 1
    ratio_change = ratio_now / ratio_before - 1
    if volume_change >= INFLATION_CHANGE and ratio_change <= -INFLATION_CHANGE:
        return (
            f"Inflation warning: in {latest.label} contributions rose {volume_change:+.0%} while approvals per "
            f"contribution fell {ratio_change:+.0%} (vs the {len(before)} weeks before): more volume, less "
            "approved quality. Check whether badges reward noise."
        )
    return None


@dataclass(frozen=True)
class FirstBadge:
    """Time from a member's first action to their first badge, over members who have one."""

    members: int
    with_badge: int
    hours: list[float]

    def quantile(self, q: float) -> float | None:
        if not self.hours:
            return None
        if len(self.hours) == 1:
            return self.hours[0]
        return statistics.quantiles(self.hours, n=100, method="inclusive")[round(q * 100) - 1] if 0 < q < 1 else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.hours) if self.hours else None


def first_badge(session: Session, as_of_ms: int) -> FirstBadge:
    f = firsts(as_of_ms).subquery("f")
    first_award = (
        select(Award.member_id, func.min(epoch_ms(Award.awarded_at)).label("award_ms"))
        .where(Award.status == "active", epoch_ms(Award.awarded_at) < as_of_ms)
        .group_by(Award.member_id)
        .subquery("fa")
    )
    members = session.scalar(select(func.count()).select_from(f)) or 0
    delays = session.scalars(
        select(first_award.c.award_ms - f.c.first_ms)
        .select_from(f)
        .join(first_award, first_award.c.member_id == f.c.member_id)
    ).all()
    hours = sorted(max(0, int(d)) / 3_600_000 for d in delays)  # a badge granted before acting counts as 0
    return FirstBadge(members=members, with_badge=len(hours), hours=hours)


@dataclass(frozen=True)
class Vouchers:
    issued: int
    claimed: Proportion  # of those issued
    expired: int
    open: int


def vouchers(session: Session, as_of_ms: int, *, confidence: float = 0.95) -> Vouchers:
    claimed_by_then = case((Voucher.claimed_at.is_not(None) & (epoch_ms(Voucher.claimed_at) < as_of_ms), 1), else_=0)
    expired = case(
        (
            (claimed_by_then == 0) & (epoch_ms(Voucher.expires_at) <= as_of_ms),
            1,
        ),
        else_=0,
    )
    issued, claimed, lapsed = session.execute(
        select(func.count(), func.sum(claimed_by_then), func.sum(expired))
        .join(Member, Member.id == Voucher.member_id)
        .where(population(), epoch_ms(Voucher.issued_at) < as_of_ms)
    ).one()
    issued, claimed, lapsed = int(issued or 0), int(claimed or 0), int(lapsed or 0)
    return Vouchers(issued, wilson(claimed, issued, confidence), lapsed, issued - claimed - lapsed)
