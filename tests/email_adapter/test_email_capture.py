"""The email source against a real Dovecot: replies become events, machine mail does not, the
cursor survives restarts and UIDVALIDITY changes, IDLE notices new mail, huge mail stays on the
server, and a message that cannot be read is logged and skipped."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import structlog
from imapclient import IMAPClient
from mailserver import PASSWORD, PASSWORD_ENV, Dovecot
from messages import ISSUE_ID, MALFORMED, NO_FROM, T0, message, raw, with_attachment
from sqlalchemy import select

from smallwins.adapters.email import capture as capture_module
from smallwins.adapters.email.capture import Watcher
from smallwins.core.app import App
from smallwins.core.config import ConfigError
from smallwins.core.cursors import CursorStore
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef
from smallwins.core.runtime import make_sink
from smallwins.core.store import Identity, StoredEvent

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@asynccontextmanager
async def watching(app: App) -> AsyncIterator[Watcher]:
    """The source's capture task running over the app's real sink; stopped on exit."""
    watcher = Watcher.from_context(app.context("email"))
    async with anyio.create_task_group() as group:
        group.start_soon(watcher.run, make_sink(app, "email"))
        with anyio.fail_after(20):
            await watcher.ready.wait()
        yield watcher
        group.cancel_scope.cancel()


def events(app: App) -> list[StoredEvent]:
    with app.store.sessions() as session:
        rows = list(session.scalars(select(StoredEvent).where(StoredEvent.source == "email").order_by(StoredEvent.id)))
        session.expunge_all()
    return rows


async def until(check: Callable[[], bool], timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while not await anyio.to_thread.run_sync(check):
            await anyio.sleep(0.05)


def run(app: App, scenario: Callable[[Watcher], Any]) -> Watcher:
    """Start watching, wait for the first catch-up, run ``scenario(watcher)``, stop."""
    result: list[Watcher] = []

    async def main() -> None:
        async with watching(app) as watcher:
            result.append(watcher)
            await scenario(watcher)

    anyio.run(main)
    return result[0]


async def nothing(watcher: Watcher) -> None:
    return None


def test_replies_become_events_and_machine_mail_does_not(
    make_app: Callable[..., App], dovecot: Dovecot, mailbox: str
) -> None:
    app = make_app()
    list(app.engine.ingest_many([_discord_event()]))  # Ada on Discord, who will link her address by code
    code = app.engine.issue_link_code(AccountRef("discord", "d-ada"))
    deliveries = [
        message("Ada Lovelace <Ada@Example.COM>", body=f"Loved it! My code is {code.lower()}"),
        message("Bob <bob@example.org>", in_reply_to=None, references=f"<older@example.org> {ISSUE_ID}"),
        message(
            "=?iso-8859-1?q?Cl=E9o_M=FCller?= <cleo@example.net>",
            to="news+2026-11@club.example",
            in_reply_to=None,
            subject="=?utf-8?b?UmU6IPCfjokgd2lucw==?=",
        ),
        message("Dan <dan@example.com>", in_reply_to=None, subject="A question"),  # not a reply
        message("Eve <eve@example.com>", headers={"Auto-Submitted": "auto-replied"}, subject="Out of office"),
        message("Fay <fay@example.com>", headers={"Precedence": "bulk"}),
        message("Gus <gus@example.com>", headers={"X-Autoreply": "yes"}),
        message("MAILER-DAEMON@mx.example.com", headers={"Return-Path": "<>"}, subject="Undelivered Mail"),
        message("Hal <hal@example.com>", headers={"List-Id": "<talk.lists.example.com>"}),
        message("News <news@club.example>"),  # our own mail coming back: a loop
        NO_FROM,
        MALFORMED,
        raw(
            """
From: Ida =?utf-8?q?N=C3=A6ss?= <ida@example.com>
To: news@club.example
Subject: Re: wins
Message-ID: <outlook-ida@example.com>
In-Reply-To: <newsletter.2026-11.a1b2c3@club.example>
Content-Type: text/html; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Sch=F6n! Count me in.</p><blockquote>quoted ZZZZ-ZZZZ</blockquote></body></html>
"""
        ),
        message("Ada Lovelace <ada@example.com>", subject="Re: Community wins, again"),  # Ada's second reply
    ]
    for item in deliveries:
        dovecot.deliver(item, mailbox)

    watcher = run(app, nothing)

    found = events(app)
    replies = {(e.subject, e.data.get("issue"), e.data.get("via")) for e in found if e.type == "email.replied"}
    assert replies == {
        ("ada@example.com", "2026-11", "In-Reply-To"),
        ("bob@example.org", "2026-11", "References"),
        ("cleo@example.net", "2026-11", "reply address"),
        ("broken@example.com", "2026-11", "In-Reply-To"),
        ("ida@example.com", "2026-11", "In-Reply-To"),
    }
    assert sum(1 for e in found if e.subject == "ada@example.com" and e.type == "email.replied") == 2
    names = {e.subject: e.data["display_name"] for e in found if e.type == "email.replied"}
    assert names["cleo@example.net"] == "Cléo Müller" and names["ida@example.com"] == "Ida Næss"
    assert next(e for e in found if e.subject == "cleo@example.net").data["subject"] == "Re: 🎉 wins"
    assert all(e.proof and e.proof.startswith("mid:") for e in found)
    links = [e for e in found if e.type == "link.code_presented"]
    assert [(e.subject, e.data["code"]) for e in links] == [("ada@example.com", code)]  # not the quoted ZZZZ-ZZZZ
    with app.store.sessions() as session:
        owners = {i.platform: i.member_id for i in session.scalars(select(Identity)) if "ada" in i.account}
    assert owners["email"] == owners["discord"]  # the code linked Ada's address to her Discord member
    assert watcher.stats.messages == len(deliveries)
    assert watcher.stats.skipped == len(deliveries) - 6  # 6 messages gave events (Ada twice)
    assert {"automated", "not a reply to a newsletter issue", "no readable From address"} <= set(watcher.stats.reasons)


@SQLITE_ONLY
def test_a_message_that_breaks_the_reader_is_logged_with_its_uid_and_skipped(
    make_app: Callable[..., App], dovecot: Dovecot, mailbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = capture_module.normalize_message

    def fragile(msg: Any, *args: Any, **kwargs: Any) -> Any:
        if "boom" in str(msg.get("Subject", "")):
            raise UnicodeError("a reader bug this message triggers")
        return real(msg, *args, **kwargs)

    monkeypatch.setattr(capture_module, "normalize_message", fragile)
    for subject in ("Re: one", "Re: boom", "Re: three"):
        dovecot.deliver(message(f"Kim <kim-{subject[-3:]}@example.com>", subject=subject), mailbox)
    app = make_app()
    with structlog.testing.capture_logs() as logs:
        watcher = run(app, nothing)
    assert watcher.stats.messages == 3 and watcher.stats.unreadable == 1
    broken = [entry for entry in logs if entry["event"] == "email.malformed_message"]
    assert len(broken) == 1 and broken[0]["uid"] == 2 and "UnicodeError" in broken[0]["error"]
    assert {e.subject for e in events(app)} == {"kim-one@example.com", "kim-ree@example.com"}
    assert CursorStore(app.store, "email").get("folder:INBOX") == {
        "uidvalidity": watcher_uidvalidity(app),
        "last_uid": 3,
    }


def test_restart_neither_recounts_nor_misses(make_app: Callable[..., App], dovecot: Dovecot, mailbox: str) -> None:
    app = make_app()
    for n in range(3):
        dovecot.deliver(message(f"R{n} <r{n}@example.com>"), mailbox)
    first = run(app, nothing)
    assert first.stats.messages == 3 and len(events(app)) == 3
    cursor = CursorStore(app.store, "email").get("folder:INBOX")
    assert cursor is not None and cursor["last_uid"] == 3

    for n in range(3, 5):  # mail that arrives while smallwins is down
        dovecot.deliver(message(f"R{n} <r{n}@example.com>"), mailbox)
    restarted = make_app()  # a new process: same database, same plugins.toml
    second = run(restarted, nothing)
    assert second.stats.messages == 2  # only what is new was read
    assert sorted(e.subject for e in events(restarted)) == [f"r{n}@example.com" for n in range(5)]
    assert CursorStore(restarted.store, "email").get("folder:INBOX") == {
        "uidvalidity": cursor["uidvalidity"],
        "last_uid": 5,
    }


@SQLITE_ONLY
@pytest.mark.parametrize("idle", [True, False], ids=["idle", "polling"])
def test_new_mail_is_noticed_while_running(
    make_app: Callable[..., App], dovecot: Dovecot, mailbox: str, idle: bool
) -> None:
    app = make_app(idle=idle, poll_seconds=0.3)

    async def scenario(watcher: Watcher) -> None:
        assert events(app) == []
        started = anyio.current_time()
        dovecot.deliver(message("Late Lou <lou@example.com>"), mailbox)
        await until(lambda: len(events(app)) == 1, timeout=10)
        noticed_after = anyio.current_time() - started
        assert noticed_after < 5
        if idle:
            assert watcher.stats.idle_wakeups >= 1
        dovecot.deliver(message("Late Lou <lou@example.com>", subject="Re: again"), mailbox)
        await until(lambda: len(events(app)) == 2, timeout=10)

    watcher = run(app, scenario)
    assert watcher.stats.messages == 2


@SQLITE_ONLY
def test_uidvalidity_change_reads_again_without_counting_twice(
    make_app: Callable[..., App], dovecot: Dovecot, mailbox: str
) -> None:
    app = make_app()
    for n in range(4):
        dovecot.deliver(message(f"V{n} <v{n}@example.com>"), mailbox)
    run(app, nothing)
    before = CursorStore(app.store, "email").get("folder:INBOX")
    assert before is not None and len(events(app)) == 4

    dovecot.set_uidvalidity(mailbox, before["uidvalidity"] + 1000)  # the mailbox was rebuilt
    dovecot.deliver(message("V4 <v4@example.com>"), mailbox)
    with structlog.testing.capture_logs() as logs:
        watcher = run(make_app(), nothing)
    assert watcher.stats.rescans == 1 and watcher.stats.messages == 5  # everything read again
    assert sorted(e.subject for e in events(app)) == [f"v{n}@example.com" for n in range(5)]  # counted once
    assert any(entry["event"] == "email.uidvalidity_changed" for entry in logs)
    after = CursorStore(app.store, "email").get("folder:INBOX")
    assert after == {"uidvalidity": before["uidvalidity"] + 1000, "last_uid": 5}


@SQLITE_ONLY
def test_a_20_mb_attachment_is_never_downloaded(make_app: Callable[..., App], dovecot: Dovecot, mailbox: str) -> None:
    dovecot.deliver(with_attachment(20 * 1024 * 1024, body="Here are the photos. Code WXYZ-2345 inside."), mailbox)
    dovecot.deliver(message("Small Sue <sue@example.com>"), mailbox)
    app = make_app()
    watcher = run(app, nothing)
    assert {e.subject for e in events(app) if e.type == "email.replied"} == {"big@example.com", "sue@example.com"}
    assert [e.data["code"] for e in events(app) if e.type == "link.code_presented"] == ["WXYZ-2345"]
    assert watcher.stats.fetched_bytes < 100_000
    # Dovecot's own account of what it sent this mailbox's sessions (logged at logout).
    sent = [int(n) for n in re.findall(rf"imap\({mailbox}\).*Logged out in=\d+ out=(\d+)", dovecot.log())]
    assert sent and sum(sent) < 200_000


@SQLITE_ONLY
def test_implicit_tls_and_processed_mail_flagged_and_moved(
    make_app: Callable[..., App], dovecot: Dovecot, mailbox: str
) -> None:
    dovecot.deliver(message("Reply Rae <rae@example.com>"), mailbox)
    dovecot.deliver(message("Asking Abe <abe@example.com>", in_reply_to=None, subject="A question"), mailbox)
    app = make_app(security="ssl", port=dovecot.tls_port, flag_processed="$smallwins", move_counted_to="Counted")
    run(app, nothing)
    assert [e.subject for e in events(app)] == ["rae@example.com"]

    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    with IMAPClient("127.0.0.1", port=dovecot.tls_port, ssl=True, ssl_context=context, timeout=5) as client:
        client.login(mailbox, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        inbox = client.fetch(client.search("ALL"), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (FROM)]"])
        client.select_folder("Counted", readonly=True)
        counted = client.fetch(client.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (FROM)]"])
    assert [b"abe@example.com" in d[b"BODY[HEADER.FIELDS (FROM)]"] for d in inbox.values()] == [True]
    assert all(b"$smallwins" in d[b"FLAGS"] and b"\\Seen" not in d[b"FLAGS"] for d in inbox.values())
    assert [b"rae@example.com" in d[b"BODY[HEADER.FIELDS (FROM)]"] for d in counted.values()] == [True]


@SQLITE_ONLY
def test_a_refused_login_stops_with_a_clear_error(
    make_app: Callable[..., App], dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(ConfigError, match=r"IMAP login to 127\.0\.0\.1 as 'reader\d+' was refused"):
        anyio.run(Watcher.from_context(app.context("email")).run, make_sink(app, "email"))
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(ConfigError, match=f"names environment variable {PASSWORD_ENV}, which is not set"):
        Watcher.from_context(app.context("email"))


def watcher_uidvalidity(app: App) -> int:
    cursor = CursorStore(app.store, "email").get("folder:INBOX")
    return int(cursor["uidvalidity"]) if cursor else -1


def _discord_event() -> Event:
    return Event(
        id="d1", source="discord", type="message.posted", subject="d-ada", time=T0, data={"display_name": "Ada"}
    )


@SQLITE_ONLY
def test_a_dropped_connection_is_reopened_and_idle_is_renewed(
    make_app: Callable[..., App], dovecot: Dovecot, mailbox: str
) -> None:
    app = make_app(idle_seconds=1)  # IDLE re-issued every second (servers allow 29 minutes)

    async def scenario(watcher: Watcher) -> None:
        await until(lambda: watcher.stats.idle_renewals >= 1, timeout=5)  # IDLE renewed without news
        dovecot.doveadm("kick", mailbox)  # the server drops the session, as servers do
        dovecot.deliver(message("After Kick <kick@example.com>"), mailbox)
        await until(lambda: [e.subject for e in events(app)] == ["kick@example.com"], timeout=15)

    with structlog.testing.capture_logs() as logs:
        watcher = run(app, scenario)
    lost = [entry for entry in logs if entry["event"] == "email.connection_lost"]
    assert len(lost) == 1 and lost[0]["retry_in"] == 1.0
    assert watcher.stats.connections == 2
