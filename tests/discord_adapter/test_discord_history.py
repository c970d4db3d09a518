"""Catch-up: what was posted while the bot was down is read from channel history on start, and
``smallwins discord backfill --since`` reads a date range with a progress bar; dedup makes both safe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from fake_discord import GENERAL, OFFTOPIC, FakeDiscord, ThreadedFake
from sqlalchemy import func, select
from typer.testing import CliRunner

from smallwins.adapters.discord.capture import capture
from smallwins.cli import app as cli
from smallwins.core.app import App
from smallwins.core.runtime import make_sink
from smallwins.core.store import Award, StoredEvent

ALICE, BOB, CAROL = 4001, 4002, 4003


def counts(app: App) -> tuple[int, set[str]]:
    with app.store.sessions() as session:
        events = session.scalar(select(func.count()).select_from(StoredEvent)) or 0
        awards = set(session.scalars(select(Award.achievement_id).where(Award.status == "active")))
    return events, awards


def community(fake: FakeDiscord) -> None:
    for uid, name in [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")]:
        fake.add_account(uid, name)


async def run_bot_until(app: App, fake: FakeDiscord, done: Callable[[], bool]) -> None:
    async with anyio.create_task_group() as group:
        group.start_soon(capture, app.context("discord"), make_sink(app, "discord"))
        with anyio.fail_after(20):
            await fake.ready.wait()
            while not await anyio.to_thread.run_sync(done):
                await anyio.sleep(0.05)
        group.cancel_scope.cancel()
    fake.ready.clear()


def test_on_start_the_bot_reads_what_it_missed(
    make_app: Callable[..., App], point_discord_py_at: Callable[[FakeDiscord], None]
) -> None:
    app = make_app(commands=False)
    now = datetime.now(UTC)

    async def scenario() -> None:
        fake = await FakeDiscord().start()
        point_discord_py_at(fake)
        community(fake)
        seen = fake.message(ALICE, "first live message", at=now - timedelta(hours=3))

        async def live() -> None:
            await fake.ready.wait()
            await fake.dispatch("MESSAGE_CREATE", seen)

        async with anyio.create_task_group() as group:
            group.start_soon(live)
            await run_bot_until(app, fake, lambda: counts(app)[0] == 1)
        # While the bot is down: 150 messages (two pages) and two peer reactions on one.
        missed = [fake.message(BOB, f"missed message {i}", at=now - timedelta(hours=2, seconds=-i)) for i in range(150)]
        fake.reaction(ALICE, missed[3])
        fake.reaction(CAROL, missed[3])
        fake.message(CAROL, "never counted", at=now - timedelta(hours=1), channel=OFFTOPIC)  # no cursor there
        await run_bot_until(app, fake, lambda: counts(app)[0] == 1 + 150 + 2)
        _, awards = counts(app)
        assert "helping-hand" in awards, "reactions read from history approve the post"
        pages = [q for m, p, q in fake.calls("GET", f"/channels/{GENERAL}/messages")]
        assert len(pages) >= 2, "history is paged 100 at a time"
        assert not fake.calls("GET", f"/channels/{OFFTOPIC}/messages"), "channels never seen are not read on start"
        await fake.stop()

    anyio.run(scenario)


@pytest.fixture
def threaded_fake(point_discord_py_at: Callable[[FakeDiscord], None]) -> Iterator[FakeDiscord]:
    server = ThreadedFake()
    point_discord_py_at(server.fake)
    yield server.fake
    server.stop()


def test_backfill_command_reads_history_since_a_date_once(
    make_app: Callable[..., App], threaded_fake: FakeDiscord, tmp_path: Path, database_url: str
) -> None:
    app = make_app(commands=False)
    community(threaded_fake)
    old = datetime(2026, 10, 1, tzinfo=UTC)
    threaded_fake.message(ALICE, "before the range", at=old)
    for i in range(3):
        threaded_fake.message(BOB, f"in range {i}", at=datetime(2026, 11, 2, 12, i, tzinfo=UTC))
    threaded_fake.message(CAROL, "off topic counts too", at=datetime(2026, 11, 3, tzinfo=UTC), channel=OFFTOPIC)
    args = ["discord", "backfill", "--since", "2026-11-01", "-c", str(tmp_path / "plugins.toml"), "--db", database_url]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "4 messages read, 4 events ingested" in " ".join(result.output.split()), result.output
    events, awards = counts(app)
    assert events == 4 and {"first-words", "regular"} <= awards
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and counts(app)[0] == 4, "a second backfill adds nothing"
    bad = CliRunner().invoke(
        cli, ["discord", "backfill", "--since", "last tuesday", "-c", str(tmp_path / "plugins.toml")]
    )
    assert bad.exit_code != 0 and "not a date" in bad.output


def test_backfill_skips_a_channel_it_may_not_read_and_reads_the_others(
    make_app: Callable[..., App], threaded_fake: FakeDiscord, tmp_path: Path, database_url: str
) -> None:
    app = make_app(commands=False)
    community(threaded_fake)
    threaded_fake.unreadable_channels.add(OFFTOPIC)
    threaded_fake.message(BOB, "readable", at=datetime(2026, 11, 2, tzinfo=UTC))
    threaded_fake.message(CAROL, "hidden from the bot", at=datetime(2026, 11, 3, tzinfo=UTC), channel=OFFTOPIC)
    args = ["discord", "backfill", "--since", "2026-11-01", "-c", str(tmp_path / "plugins.toml"), "--db", database_url]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "1 messages read" in " ".join(result.output.split()) and counts(app)[0] == 1
