"""The report in the terminal: rich tables, one per question."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from smallwins.measure.cohorts import RETURN_DAYS
from smallwins.measure.html import hours, pct, pct_signed
from smallwins.measure.report import Report


def _lifts(report: Report) -> Table:
    table = Table(title="Holdout lift: returned within the window after earning", title_justify="left")
    for column in ("achievement", "shown", "held out", "lift (CI)", "needed per group"):
        table.add_column(column)
    for lift in report.lifts:
        needed = (
            f"{lift.needed.treatment} + {lift.needed.holdout} for {pct_signed(lift.expected_lift)} "
            f"({'enough' if lift.powered else 'not enough yet'})"
            if lift.needed
            else "set expected_lift"
        )
        style = "green" if lift.lift.excludes_zero and (lift.lift.estimate or 0) > 0 else ""
        table.add_row(
            escape(f"{lift.name} (holdout {pct(lift.holdout_share)}, {lift.window_days} days)"),
            lift.treatment.text(),
            lift.holdout.text(),
            Text(lift.lift.text(), style=style),
            needed,
        )
    return table


def _returns(report: Report) -> Table:
    table = Table(title="Day-N return by first-activity cohort: earned a badge in week 1 vs not", title_justify="left")
    table.add_column("cohort")
    table.add_column("members", justify="right")
    table.add_column("earners", justify="right")
    for n in RETURN_DAYS:
        table.add_column(f"day {n}: earners")
        table.add_column(f"day {n}: others")
    for row in report.returns:
        cells = [c for n in RETURN_DAYS for c in (row.earned[n].text(), row.not_earned[n].text())]
        table.add_row(row.label, str(row.members), str(row.earners), *cells, style="bold" if row.cohort is None else "")
    return table


def _metrics(report: Report) -> Table:
    table = Table(title="The metric table", title_justify="left")
    table.add_column("metric")
    table.add_column("value")
    for c in report.completions:
        table.add_row(escape(f"completion: {c.name}"), c.holders.text())
    for funnel in report.funnels:
        steps = " → ".join(
            f"{s.label} {s.count}" + (f" ({s.conversion:.0%})" if s.conversion is not None else "")
            for s in funnel.steps
        )
        table.add_row(escape(funnel.name), escape(f"{funnel.members} members → {steps}"))
    overall = report.overall_returns
    if overall:
        table.add_row("7-day return: first-week earners", overall.earned[7].text())
        table.add_row("7-day return: the others", overall.not_earned[7].text())
    full = [w for w in report.weeks if w.complete] or report.weeks
    if full:
        latest = full[-1]
        table.add_row(f"contribution depth ({latest.label})", f"{latest.depth:.2f} actions per active member")
    for s in report.streaks:
        table.add_row(
            escape(f"streak survival: {s.name}"), f"{pct(s.at(7))} of first streaks last 7 days (n={s.streaks})"
        )
        table.add_row(escape(f"back after first missed day: {s.name}"), s.after_missed_day.text())
    table.add_row("voucher claim rate", report.vouchers.claimed.text())
    fb = report.first_badge
    table.add_row("first action → first badge", f"median {hours(fb.median)} ({fb.with_badge} of {fb.members} members)")
    for launch in report.launches:
        table.add_row(
            escape(f"day-7 return around the launch of {launch.name}"),
            f"before {launch.before.text()}, after {launch.after.text()}, difference {launch.difference.text()}",
        )
    table.add_row("inflation", Text(report.inflation, style="yellow") if report.inflation else "no warning")
    return table


def _cohorts(report: Report) -> Table:
    table = Table(title="Retention by cohort: share active in week k after the first action", title_justify="left")
    table.add_column("cohort")
    table.add_column("members", justify="right")
    longest = max((len(c.weeks) for c in report.curves), default=0)
    for k in range(1, longest + 1):
        table.add_column(f"week {k}", justify="right")
    for curve in report.curves:
        table.add_row(curve.label, str(curve.size), *[pct(p.rate) for p in curve.weeks])
    return table


def report_tables(report: Report) -> RenderableType:
    header = Text(
        f"smallwins report: {report.members} members, as of {report.as_of:%Y-%m-%d %H:%M} UTC; "
        f"{report.confidence:.0%} intervals",
        style="bold",
    )
    parts: list[RenderableType] = [header, _metrics(report), _cohorts(report), _returns(report)]
    if report.lifts:
        parts.append(_lifts(report))
    return Group(*parts)
