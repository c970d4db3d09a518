"""Holdout experiments: the lift an achievement causes, treatment (shown it) vs holdout (not).

Both groups earned the achievement (it is computed for everyone); the draw decides who saw it,
so the groups differ only by chance and by seeing it. The outcome is *returned within the
window*: an action in ``[earned + 1 day, earned + 1 + window_days days)``; an earner counts
once that window has passed by ``as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, exists, select
from sqlalchemy.orm import Session

from smallwins.core.holdout import held_out
from smallwins.core.rules import Achievement, Catalogue
from smallwins.core.store import Award, Member, StoredEvent
from smallwins.measure.sql import DAY_MS, counted_action, epoch_ms, population
from smallwins.measure.stats import Difference, Proportion, SampleSize, newcombe, sample_size, wilson


@dataclass(frozen=True)
class Lift:
    achievement_id: str
    name: str
    holdout_share: float
    window_days: int
    treatment: Proportion
    holdout: Proportion
    lift: Difference  # treatment - holdout
    expected_lift: float | None
    needed: SampleSize | None  # members per group to detect expected_lift (None when not configured)
    not_yet_observable: int  # earners whose outcome window has not passed

    @property
    def relative(self) -> float | None:
        t, h = self.treatment.rate, self.holdout.rate
        return t / h - 1 if t is not None and h else None

    @property
    def powered(self) -> bool | None:
        if self.needed is None:
            return None
        return self.treatment.n >= self.needed.treatment and self.holdout.n >= self.needed.holdout


def holdout_lift(session: Session, catalogue: Catalogue, achievement: Achievement, as_of_ms: int) -> Lift:
    """The lift of one achievement that has a holdout."""
    experiment = catalogue.experiment
    earned = epoch_ms(Award.awarded_at)
    start, stop = earned + DAY_MS, earned + (1 + experiment.window_days) * DAY_MS
    ms = epoch_ms(StoredEvent.time)
    came_back = exists().where(
        StoredEvent.member_id == Award.member_id,
        counted_action(),
        ms >= start,
        ms < stop,
    )
    rows = session.execute(
        select(Award.member_id, case((stop <= as_of_ms, 1), else_=0), case((came_back, 1), else_=0))
        .join(Member, Member.id == Award.member_id)
        .where(population(), and_(Award.achievement_id == achievement.id, Award.status == "active"), earned < as_of_ms)
    ).all()
    counts = {True: [0, 0], False: [0, 0]}  # held out -> [observable earners, returned]
    pending = 0
    for member_id, observable, returned in rows:
        if not observable:
            pending += 1
            continue
        cell = counts[held_out(catalogue, achievement.id, int(member_id))]
        cell[0] += 1
        cell[1] += int(returned)
    confidence = experiment.confidence
    treatment = wilson(counts[False][1], counts[False][0], confidence)
    holdout = wilson(counts[True][1], counts[True][0], confidence)
    needed = None
    if achievement.expected_lift:
        baseline = holdout.rate if holdout.rate is not None else (treatment.rate or 0.5)
        baseline = min(max(baseline, 0.01), 0.99 - achievement.expected_lift)
        needed = sample_size(
            baseline,
            achievement.expected_lift,
            holdout_share=achievement.holdout,
            confidence=confidence,
            power=experiment.power,
        )
    return Lift(
        achievement_id=achievement.id,
        name=achievement.name,
        holdout_share=achievement.holdout,
        window_days=experiment.window_days,
        treatment=treatment,
        holdout=holdout,
        lift=newcombe(treatment, holdout),
        expected_lift=achievement.expected_lift,
        needed=needed,
        not_yet_observable=pending,
    )


def lifts(session: Session, catalogue: Catalogue, as_of_ms: int) -> list[Lift]:
    return [holdout_lift(session, catalogue, a, as_of_ms) for a in catalogue.achievements.values() if a.holdout > 0]
