"""The report's charts, drawn with matplotlib (Agg: no display needed) into inline PNGs.

Each chart is a :class:`Chart` holding a ``data:`` URI, so the HTML report stays one file.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # before pyplot: never look for a display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from smallwins.measure.report import Report
from smallwins.measure.stats import Proportion

PALETTE = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#4b5563", "#db2777"]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    alt: str
    data_uri: str


def _encode(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _errors(points: list[Proportion]) -> list[list[float]]:
    rates = [p.rate or 0.0 for p in points]
    return [
        [r - p.low for r, p in zip(rates, points, strict=True)],
        [p.high - r for r, p in zip(rates, points, strict=True)],
    ]


def retention_chart(report: Report) -> Chart | None:
    curves = [c for c in report.curves if c.weeks]
    if not curves:
        return None
    figure, axis = plt.subplots(figsize=(7.5, 4))
    for i, curve in enumerate(curves):
        weeks = list(range(1, len(curve.weeks) + 1))
        rates = [p.rate or 0.0 for p in curve.weeks]
        colour = PALETTE[i % len(PALETTE)]
        axis.plot(weeks, rates, marker="o", color=colour, label=f"{curve.label} (n={curve.size})")
        axis.fill_between(weeks, [p.low for p in curve.weeks], [p.high for p in curve.weeks], color=colour, alpha=0.08)
    axis.set_xlabel("weeks since first activity")
    axis.set_ylabel("share active that week")
    axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.set_ylim(0, 1)
    axis.set_xticks(range(1, max(len(c.weeks) for c in curves) + 1))
    axis.grid(alpha=0.3)
    axis.legend(title="cohort (first-activity week)", fontsize=8)
    alt = "; ".join(f"{c.label}: week 1 {c.weeks[0].rate or 0:.0%}" for c in curves)
    return Chart("retention", "Retention curves by cohort", f"Retention by cohort. {alt}", _encode(figure))


def returns_chart(report: Report) -> Chart | None:
    overall = report.overall_returns
    if overall is None:
        return None
    days = [n for n in overall.earned if overall.earned[n].n or overall.not_earned[n].n]
    if not days:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 3.6))
    width = 0.38
    for offset, (label, cells, colour) in enumerate(
        (("earned a badge in week 1", overall.earned, PALETTE[0]), ("did not", overall.not_earned, PALETTE[6]))
    ):
        points = [cells[n] for n in days]
        xs = [i + (offset - 0.5) * width for i in range(len(days))]
        axis.bar(xs, [p.rate or 0 for p in points], width, yerr=_errors(points), capsize=4, color=colour, label=label)
        for x, p in zip(xs, points, strict=True):
            axis.annotate(f"n={p.n}", (x, 0.02), ha="center", fontsize=7, color="white")
    axis.set_xticks(range(len(days)), [f"day {n}" for n in days])
    axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.set_ylim(0, 1)
    axis.set_ylabel("returned in [N, N+7) days")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    alt = "; ".join(
        f"day {n}: {overall.earned[n].rate or 0:.0%} vs {overall.not_earned[n].rate or 0:.0%}" for n in days
    )
    return Chart("returns", "Day-N return: first-week earners vs the others", f"Returns. {alt}", _encode(figure))


def funnel_chart(report: Report) -> Chart | None:
    funnels = [f for f in report.funnels if f.steps]
    if not funnels:
        return None
    figure, axes = plt.subplots(len(funnels), 1, figsize=(7.5, 1.2 + 0.55 * sum(len(f.steps) + 1 for f in funnels)))
    axes_list = list(axes) if len(funnels) > 1 else [axes]
    for axis, funnel in zip(axes_list, funnels, strict=True):
        labels = ["members", *[s.label for s in funnel.steps]]
        counts = [funnel.members, *[s.count for s in funnel.steps]]
        ys = list(range(len(labels)))[::-1]
        axis.barh(ys, counts, color=[PALETTE[6], *[PALETTE[0]] * len(funnel.steps)])
        axis.set_yticks(ys, labels)
        for y, count, step in zip(ys, counts, [None, *funnel.steps], strict=True):
            share = f" ({step.conversion:.0%} of previous)" if step and step.conversion is not None else ""
            axis.annotate(f" {count}{share}", (count, y), va="center", fontsize=8)
        axis.set_xlim(0, max(counts) * 1.45 or 1)
        axis.set_title(funnel.name, fontsize=10, loc="left")
        axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    alt = "; ".join(f"{f.name}: " + ", ".join(f"{s.label} {s.count}" for s in f.steps) for f in funnels)
    return Chart("funnels", "Completion funnels", f"Funnels. {alt}", _encode(figure))


def survival_chart(report: Report) -> Chart | None:
    streaks = [s for s in report.streaks if s.streaks]
    if not streaks:
        return None
    figure, axis = plt.subplots(figsize=(6.5, 3.6))
    for i, streak in enumerate(streaks):
        days = list(range(1, len(streak.curve) + 1))
        colour = PALETTE[i % len(PALETTE)]
        axis.step(days, streak.curve, where="post", color=colour, label=f"{streak.name} (n={streak.streaks})")
        if (value := streak.at(streak.target)) is not None:
            axis.plot([streak.target], [value], "o", color=colour)
            axis.annotate(f" day {streak.target}: {value:.0%}", (streak.target, value), fontsize=8)
    axis.set_xlabel("days in a row")
    axis.set_ylabel("share of first streaks still alive")
    axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    alt = "; ".join(
        f"{s.name}: {s.at(2) or 0:.0%} reach day 2, {s.at(s.target) or 0:.0%} day {s.target}" for s in streaks
    )
    return Chart("survival", "Streak survival", f"Streak survival. {alt}", _encode(figure))


def lift_chart(report: Report) -> Chart | None:
    lifts = [x for x in report.lifts if x.lift.estimate is not None]
    if not lifts:
        return None
    figure, (rates_axis, lift_axis) = plt.subplots(1, 2, figsize=(9, 1.6 + 0.7 * len(lifts)))
    ys = list(range(len(lifts)))[::-1]
    for offset, (label, colour) in enumerate((("shown (treatment)", PALETTE[0]), ("held out", PALETTE[1]))):
        points = [x.treatment if offset == 0 else x.holdout for x in lifts]
        yy = [y + (0.15 if offset == 0 else -0.15) for y in ys]
        rates_axis.errorbar(
            [p.rate or 0 for p in points], yy, xerr=_errors(points), fmt="o", color=colour, capsize=4, label=label
        )
    rates_axis.set_yticks(ys, [x.name for x in lifts])
    rates_axis.set_ylim(-0.6, len(lifts) - 0.4)
    lift_axis.set_ylim(-0.6, len(lifts) - 0.4)
    rates_axis.xaxis.set_major_formatter(PercentFormatter(1.0))
    rates_axis.set_xlim(0, 1)
    rates_axis.set_title("returned within the window", fontsize=10)
    rates_axis.legend(fontsize=8, loc="lower right")
    rates_axis.grid(axis="x", alpha=0.3)
    estimates = [x.lift.estimate or 0.0 for x in lifts]
    low = [e - (x.lift.low or 0.0) for e, x in zip(estimates, lifts, strict=True)]
    high = [(x.lift.high or 0.0) - e for e, x in zip(estimates, lifts, strict=True)]
    lift_axis.errorbar(
        estimates, ys, xerr=[low, high], fmt="s", color=PALETTE[2], capsize=5, label=f"lift, {report.confidence:.0%} CI"
    )
    for y, x in zip(ys, lifts, strict=True):
        if x.expected_lift:
            lift_axis.plot([x.expected_lift], [y], "|", markersize=18, color=PALETTE[3], label="expected lift")
    lift_axis.axvline(0, color="black", linewidth=0.8)
    lift_axis.set_yticks(ys, [""] * len(ys))
    lift_axis.xaxis.set_major_formatter(PercentFormatter(1.0))
    lift_axis.set_title("lift: treatment minus holdout", fontsize=10)
    handles, labels = lift_axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    lift_axis.legend(unique.values(), unique.keys(), fontsize=8)
    lift_axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    alt = "; ".join(f"{x.name}: lift {x.lift.text()}" for x in lifts)
    return Chart("lift", "Holdout lift with its interval", f"Lift. {alt}", _encode(figure))


def weekly_chart(report: Report) -> Chart | None:
    weeks = report.weeks
    if len(weeks) < 2:
        return None
    figure, axis = plt.subplots(figsize=(7.5, 3.4))
    xs = list(range(len(weeks)))
    axis.bar(xs, [w.contributions for w in weeks], color=PALETTE[0], alpha=0.6, label="contributions")
    axis.set_ylabel("contributions per week")
    axis.set_xticks(xs, [w.label + ("" if w.complete else "*") for w in weeks], rotation=45, fontsize=8)
    twin = axis.twinx()
    twin.plot(
        xs,
        [w.approvals_per_contribution or 0 for w in weeks],
        "o-",
        color=PALETTE[3],
        label="approvals per contribution",
    )
    twin.plot(xs, [w.depth for w in weeks], "s--", color=PALETTE[2], label="actions per active member")
    twin.set_ylabel("ratio")
    lines = axis.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    figure.tight_layout()
    return Chart(
        "weekly",
        "Volume and quality per week",
        "Contributions, approvals per contribution and depth per week.",
        _encode(figure),
    )


def all_charts(report: Report) -> list[Chart]:
    made = [
        chart(report)
        for chart in (retention_chart, returns_chart, funnel_chart, survival_chart, lift_chart, weekly_chart)
    ]
    return [c for c in made if c is not None]
