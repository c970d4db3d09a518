"""Done means: `smallwins report --html` on the demo community (whose members respond to First
Words with a seeded effect) recovers that effect within its interval, and the HTML file shows its
charts in a real headless Chromium (Debian's, driven by Playwright). Screenshot: artifacts/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = REPO / "artifacts"
CHARTS = {"retention", "returns", "funnels", "survival", "lift", "weekly"}


def run(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).parent / "smallwins"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLWINS_")}
    env["COLUMNS"] = "300"
    result = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"smallwins {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return re.sub(r"\s+", " ", result.stdout)


def percent(text: str) -> float:
    return float(text.rstrip("%")) / 100


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    folder = tmp_path_factory.mktemp("report-demo")
    shutil.copy(REPO / "plugins.toml", folder)
    shutil.copy(REPO / "achievements.toml", folder)
    demo = run("demo", "--members", "300", "--weeks", "4", "--db", "demo.db", cwd=folder)
    report = run("report", "--db", f"sqlite:///{folder / 'demo.db'}", "--html", "out/report.html", cwd=folder)
    return demo, report, folder / "out" / "report.html"


def test_report_recovers_the_seeded_effect(demo_report: tuple[str, str, Path]) -> None:
    demo, report, _ = demo_report
    seeded = re.search(r"true lift in this community ([+-][\d.]+%) over (\d+) earners", demo)
    assert seeded, demo
    true_lift, earners = percent(seeded.group(1)), int(seeded.group(2))
    row = re.search(
        r"First Words \(holdout 30%, 7 days\) │ [\d.]+% \((\d+)/(\d+);.*?│ [\d.]+% \((\d+)/(\d+);.*?│ "
        r"([+-][\d.]+%) \(([+-][\d.]+%) to ([+-][\d.]+%)\)",
        report,
    )
    assert row, report
    shown, held = int(row.group(2)), int(row.group(4))
    assert shown + held == earners, "the report's earners are exactly the generator's"
    assert 0.2 < held / earners < 0.45, "about 30% held out"
    estimate, low, high = (percent(row.group(i)) for i in (5, 6, 7))
    assert low <= estimate <= high
    assert low <= true_lift <= high, f"seeded {true_lift:+.1%} outside the interval {low:+.1%} to {high:+.1%}"
    assert low > 0, "the effect is large enough for this community to detect"
    for shown_in_terminal in (
        "The metric table",
        "Retention by cohort",
        "completion: First Words",
        "voucher claim rate",
    ):
        assert shown_in_terminal in report


def test_html_report_shows_its_charts_in_chromium(demo_report: tuple[str, str, Path]) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    executable = os.environ.get("SMALLWINS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: run the tests through ./scripts/test, which installs it")
        pytest.skip("no Chromium: run through ./scripts/test, which installs Debian's chromium")
    _, _, html = demo_report
    text = html.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text, "self-contained, static"
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(html.as_uri())
        figures = page.locator("figure img.chart")
        ids = {i.removeprefix("chart-") for i in page.locator("figure").evaluate_all("els => els.map(e => e.id)")}
        assert ids == CHARTS
        sizes = figures.evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(sizes) == len(CHARTS) and all(done and w > 300 and h > 150 for done, w, h in sizes), sizes
        assert all(alt for alt in figures.evaluate_all("imgs => imgs.map(i => i.alt)"))
        assert "Holdout experiments" in page.inner_text("#experiment") and "First Words" in page.inner_text(
            "#experiment"
        )
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        page.locator("#experiment").screenshot(path=str(ARTIFACTS / "report-lift.png"))
        browser.close()
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000


def test_a_time_with_an_offset_is_measured_and_shown_as_that_instant_in_utc(
    demo_report: tuple[str, str, Path],
) -> None:
    _, _, html = demo_report
    folder = html.parent.parent
    shown = run("report", "--db", f"sqlite:///{folder / 'demo.db'}", "--as-of", "2026-09-20T00:00:00+12:00", cwd=folder)
    assert "as of 2026-09-19 12:00 UTC" in shown, shown[:300]
