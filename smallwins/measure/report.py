"""The whole report, computed once and then rendered to the terminal or to HTML."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from smallwins.core.rules import Catalogue
from smallwins.measure import activity, cohorts, completion, experiment, survival
from smallwins.measure.sql import DAY_MS, from_ms, latest_event_ms, to_ms

log = structlog.get_logger(__name__)


class NothingToReport(LookupError):
    """The store holds no counted actions yet."""


@dataclass
class Report:
    as_of: datetime
    first_activity: datetime
    members: int
    confidence: float
    completions: list[completion.Completion]
    funnels: list[completion.Funnel]
    curves: list[cohorts.CohortCurve]
    returns: list[cohorts.EarnerReturns]
    launches: list[cohorts.LaunchComparison]
    weeks: list[activity.Week]
    inflation: str | None
    first_badge: activity.FirstBadge
    vouchers: activity.Vouchers
    streaks: list[survival.StreakSurvival]
    lifts: list[experiment.Lift]

    @property
    def overall_returns(self) -> cohorts.EarnerReturns | None:
        return next((r for r in self.returns if r.cohort is None), None)


def default_as_of(session: Session) -> datetime:
    """The end of the UTC day of the latest counted action: history, not the wall clock, sets it."""
    latest = latest_event_ms(session)
    if latest is None:
        raise NothingToReport("no actions in the store yet: ingest some events first")
    return from_ms((latest // DAY_MS + 1) * DAY_MS)


def build_report(
    session: Session, catalogue: Catalogue, *, as_of: datetime | None = None, launch_window_days: int = 28
) -> Report:
    """Every metric of the report as of ``as_of`` (default: the end of the last day with activity)."""
    as_of = as_of or default_as_of(session)
    as_of_ms = to_ms(as_of)
    confidence = catalogue.experiment.confidence
    started = datetime.now()
    completions, funnels = completion.completion(session, catalogue, as_of_ms, confidence=confidence)
    first_badge = activity.first_badge(session, as_of_ms)
    if not first_badge.members:
        raise NothingToReport(f"no actions before {as_of.isoformat()}: nothing to measure yet")
    weeks = activity.weekly(session, catalogue, as_of_ms)
    launches = [
        cohorts.launch_comparison(
            session,
            as_of_ms,
            achievement_id=a.id,
            name=a.name,
            launched_ms=to_ms(launched),
            window_days=launch_window_days,
            confidence=confidence,
        )
        for a in catalogue.achievements.values()
        if (launched := a.launched_at or (a.window.start if a.window else None)) is not None and launched < as_of
    ]
    report = Report(
        as_of=as_of,
        first_activity=from_ms(min(w.week for w in weeks) * 7 * DAY_MS - 3 * DAY_MS) if weeks else as_of,
        members=first_badge.members,
        confidence=confidence,
        completions=completions,
        funnels=funnels,
        curves=cohorts.retention_curves(session, as_of_ms, confidence=confidence),
        returns=cohorts.earner_returns(session, as_of_ms, confidence=confidence),
        launches=launches,
        weeks=weeks,
        inflation=activity.inflation_warning(weeks, catalogue),
        first_badge=first_badge,
        vouchers=activity.vouchers(session, as_of_ms, confidence=confidence),
        streaks=survival.streak_survival(session, catalogue, as_of_ms, confidence=confidence),
        lifts=experiment.lifts(session, catalogue, as_of_ms),
    )
    log.info("report.built", members=report.members, seconds=(datetime.now() - started) / timedelta(seconds=1))
    return report
