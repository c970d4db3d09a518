"""The report as one self-contained HTML file: charts inline, no scripts, no external assets."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from jinja2 import Environment, StrictUndefined, select_autoescape

from smallwins.measure.charts import all_charts
from smallwins.measure.cohorts import RETURN_DAYS
from smallwins.measure.report import Report
from smallwins.measure.sql import from_ms


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def pct_signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f} hours" if value < 48 else f"{value / 24:.1f} days"


def render_html(report: Report) -> str:
    environment = Environment(autoescape=select_autoescape(default=True), undefined=StrictUndefined)
    source = resources.files("smallwins.measure").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    template = environment.from_string(source)
    return template.render(
        report=report,
        charts={chart.id: chart for chart in all_charts(report)},
        days=RETURN_DAYS,
        pct=pct,
        pct_signed=pct_signed,
        hours=hours,
        fmt_ms=lambda ms: from_ms(ms).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_html(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
