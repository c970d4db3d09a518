"""The newsletter block: content, privacy, escaping, templates, merge fields, SMTP sending, a
screenshot in headless Chromium, and the whole loop: a reply to a sent issue becomes an award."""

from __future__ import annotations

import csv
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import anyio
import pytest
from mailserver import PASSWORD, PASSWORD_ENV, Dovecot
from messages import message
from sqlalchemy import select
from typer.testing import CliRunner

from smallwins.cli import app as cli
from smallwins.core.app import App
from smallwins.core.events import Event
from smallwins.core.runtime import run
from smallwins.core.store import Award, Identity

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
NOV = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SCRIPT_NAME = "<script>alert(1)</script>"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def event(n: int, type: str, subject: str, source: str, day: float, name: str, **data: Any) -> Event:
    return Event(
        id=f"{source}-{n}",
        source=source,
        type=type,
        subject=subject,
        time=NOV + timedelta(days=day),
        data={"display_name": name, **data},
    )


def community(app: App) -> dict[str, int]:
    """Ada (3 replies: Pen Pal), Bob (2 replies), Priya (private, 3 replies), a member named like a
    script tag (10 Discord messages: Chatty), a moderator, and an October regular."""
    events = []
    n = 0
    for who, name, replies in (
        ("ada@example.com", "Ada", 3),
        ("bob@example.org", "Bob", 2),
        ("priya@example.net", "Priya", 3),
    ):
        for i in range(replies):
            n += 1
            events.append(event(n, "email.replied", who, "email", 1 + i, name))
    for i in range(10):
        n += 1
        events.append(event(n, "message.posted", "d-script", "discord", 2 + i / 10, SCRIPT_NAME))
    n += 1
    events.append(event(n, "moderator.approved", "d-mod", "discord", 3, "Mod Mia", target="discord:discord-20"))
    n += 1
    events.append(
        Event(id="old-1", source="discord", type="message.posted", subject="d-old", time=NOV - timedelta(days=20),
              data={"display_name": "October Olga"})
    )  # fmt: skip
    list(app.engine.ingest_many(events))
    with app.store.sessions() as session:
        ids = {i.account: i.member_id for i in session.scalars(select(Identity))}
    app.engine.set_profile(ids["priya@example.net"], private=True)
    return ids


def newsletter_app(make_app: Callable[..., App], tmp_path: Path, **newsletter: Any) -> App:
    return make_app(
        newsletter={"enabled": True, "output_dir": str(tmp_path / "out"), "title": "Club wins"} | newsletter
    )


def invoke(app: App, *args: str) -> Any:
    config = app.config.path
    result = CliRunner().invoke(
        cli,
        [
            "newsletter",
            *args,
            "-c",
            str(config),
            "--db",
            str(app.store.engine.url.render_as_string(hide_password=False)),
        ],
    )
    return result


def test_the_block_lists_public_members_and_each_reader_gets_their_progress(
    make_app: Callable[..., App], tmp_path: Path
) -> None:
    app = newsletter_app(make_app, tmp_path)
    ids = community(app)
    result = invoke(app, "--issue", "2026-11", "--until", "2026-11-20", "--per-recipient")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "2026-11"
    html = (folder / "block.html").read_text()
    text = (folder / "block.txt").read_text()

    # names and counts
    assert "Issue 2026-11" in text and "2 Nov 2026 to 20 Nov 2026" not in text  # the month starts on the 1st
    assert "1 Nov 2026 to 20 Nov 2026" in text
    # rarity counts every member but staff: Ada and private Priya of 5 hold Pen Pal; only Ada is named
    assert "Pen Pal (silver), held by 40% of members: Ada\n" in text
    assert "Chatty, held by 20% of members: " + SCRIPT_NAME in text  # plain text: not escaped
    assert f"Rarest badge this time: Chatty, earned by {SCRIPT_NAME}." in text
    assert "New badges (5)" in text
    top = re.findall(r"#(\d)\s+(.+?) - (\d+) points", text)
    assert top == [("1", SCRIPT_NAME, "50"), ("2", "Ada", "49"), ("3", "Bob", "16")]
    # privacy: the private member and staff appear in no public list
    for hidden in ("Priya", "Mod Mia", "October Olga"):
        assert hidden not in html and hidden not in text
    # escaping and email safety
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "<style" not in html and "class=" not in html and "http" not in html
    assert all("style=" in tag for tag in re.findall(r"<table[^>]*>", html))

    with (folder / "merge-fields.csv").open() as handle:
        rows = {row["email"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"ada@example.com", "bob@example.org", "priya@example.net"}
    assert rows["bob@example.org"]["SW_NEXT"] == "2 of 3 replies to earn Pen Pal"
    assert rows["ada@example.com"]["SW_NEW_BADGES"] == "First Words, Pen Pal"
    assert rows["priya@example.net"]["SW_NEW_BADGES"] == "First Words, Pen Pal"  # her own, shown to her only
    own = (folder / "recipients" / f"{ids['bob@example.org']}-bob@example.org.html").read_text()
    assert "Your progress, Bob" in own and "2 of 3 replies to earn Pen Pal" in own and 'width="67%"' in own

    # the same issue again gives the same block (its window was remembered), a later issue starts after it
    again = invoke(app, "--issue", "2026-11")
    assert again.exit_code == 0 and (folder / "block.html").read_text() == html
    later = invoke(app, "--issue", "2026-12-a", "--until", "2026-12-05")
    assert (
        later.exit_code == 0
        and "20 Nov 2026 to 5 Dec 2026" in (tmp_path / "out" / "2026-12-a" / "block.txt").read_text()
    )


@SQLITE_ONLY
def test_an_operator_overrides_templates_and_mistakes_are_named(make_app: Callable[..., App], tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "block.txt").write_text("Wins of {{ block.issue }}: {{ block.new_badges | length }} badges\n")
    app = newsletter_app(make_app, tmp_path, template_dir=str(templates))
    community(app)
    result = invoke(app, "--issue", "nov", "--since", "2026-11-01", "--until", "2026-11-20")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "nov" / "block.txt").read_text() == "Wins of nov: 5 badges\n"
    assert "<table" in (tmp_path / "out" / "nov" / "block.html").read_text()  # the built-in one fills in
    (templates / "block.txt").write_text("{{ block.nonexistent }}")
    broken = invoke(app, "--issue", "nov")
    assert broken.exit_code == 2 and "template block.txt" in broken.output and "nonexistent" in broken.output
    (templates / "block.txt").write_text("{% for %}")
    assert "line 1" in invoke(app, "--issue", "nov").output
    assert "must be letters" in invoke(app, "--issue", "../etc").output
    assert "window is empty" in invoke(app, "--issue", "x", "--since", "2026-11-20", "--until", "2026-11-01").output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sink:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    from aiosmtpd.controller import Controller

    sink, port = Sink(), free_port()  # Controller(port=0) is not supported: pick a free port first
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, port
    controller.stop()


@SQLITE_ONLY
def test_sent_issues_are_replied_to_and_replies_become_awards(
    make_app: Callable[..., App], tmp_path: Path, smtp_sink: tuple[Sink, int], dovecot: Dovecot, mailbox: str
) -> None:
    sink, port = smtp_sink
    app = newsletter_app(
        make_app,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        from_address="news@club.example",
        from_name="Club News",
    )
    ids = community(app)
    sent = invoke(app, "--issue", "2026-11", "--until", "2026-11-20", "--send", "--subject", "Club wins, November")
    assert sent.exit_code == 0, sent.output
    assert "sent 3, already sent before 0, failed 0" in sent.output
    received = {
        env.rcpt_tos[0]: message_from_bytes(env.original_content, policy=policy.default) for env in sink.envelopes
    }
    assert set(received) == {"ada@example.com", "bob@example.org", "priya@example.net"}
    bob = received["bob@example.org"]
    assert re.fullmatch(r"<newsletter\.2026-11\.[0-9a-f]{16}@club\.example>", bob["Message-ID"])
    assert bob["Reply-To"] == "news+2026-11@club.example" and bob["Subject"] == "Club wins, November"
    assert str(bob["From"]) == "Club News <news@club.example>"
    body_html = bob.get_body(("html",)).get_content()
    assert "2 of 3 replies to earn Pen Pal" in body_html and "&lt;script&gt;" in body_html and "Priya" not in body_html
    assert "2 of 3 replies to earn Pen Pal" in bob.get_body(("plain",)).get_content()
    priya_text = received["priya@example.net"].get_body(("plain",)).get_content()
    assert "Your progress, Priya" in priya_text
    again = invoke(app, "--issue", "2026-11", "--send")  # a re-run sends nobody twice
    assert "sent 0, already sent before 3, failed 0" in again.output and len(sink.envelopes) == 3

    if os.environ.get("SMALLWINS_CHROMIUM") or shutil.which("chromium") or Path("/usr/bin/chromium").exists():
        screenshot(received["ada@example.com"].get_body(("html",)).get_content(), tmp_path)
    elif os.environ.get("CI"):
        pytest.fail("Chromium is missing in CI: run the tests through ./scripts/test, which installs it")

    # Bob answers the issue from his mail client; smallwins run sees it and awards Pen Pal.
    dovecot.deliver(
        message("Bob <Bob@Example.org>", in_reply_to=bob["Message-ID"], subject="Re: Club wins, November"), mailbox
    )
    os.environ[PASSWORD_ENV] = PASSWORD

    def bob_awards() -> set[str]:
        with app.store.sessions() as session:
            rows = session.scalars(select(Award.achievement_id).where(Award.member_id == ids["bob@example.org"]))
            return set(rows)

    own_file = tmp_path / "out" / "recipients" / f"{ids['bob@example.org']}.html"

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: run(app, outbox_interval=0.1))
            with anyio.fail_after(20):
                while "pen-pal" not in bob_awards() or not own_file.exists() or "Pen Pal" in own_file.read_text():
                    await anyio.sleep(0.1)
            group.cancel_scope.cancel()

    anyio.run(scenario)
    # the presenter keeps Bob's own block current: Pen Pal is earned, so it is no longer "next"
    assert "Your progress, Bob" in own_file.read_text()


def screenshot(html: str, tmp_path: Path) -> None:
    """The message as a reader's mail client would show it (inline styles only), for a person to check."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("SMALLWINS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    page_file = tmp_path / "issue.html"
    page_file.write_text(html)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 680, "height": 900}, java_script_enabled=False)
            page.goto(page_file.as_uri())
            assert page.locator("text=Pen Pal").count() >= 1
            assert page.locator("text=" + SCRIPT_NAME).count() >= 1  # shown as text, never run
            page.screenshot(path=str(ARTIFACTS / "newsletter-issue.png"), full_page=True)
        finally:
            browser.close()


def test_merge_fields_are_inert_in_a_spreadsheet() -> None:
    """A member who names themselves `=HYPERLINK(...)` gets no live formula into the operator's CSV."""
    from smallwins.adapters.email.commands import inert_cell

    assert inert_cell('=HYPERLINK("http://evil.example","click")') == '\'=HYPERLINK("http://evil.example","click")'
    assert [inert_cell(v) for v in ("+1", "-2", "@SUM(A1)", "\tx")] == ["'+1", "'-2", "'@SUM(A1)", "'\tx"]
    assert [inert_cell(v) for v in ("Ada", "3 of 5 replies", "", "a=b")] == ["Ada", "3 of 5 replies", "", "a=b"]
