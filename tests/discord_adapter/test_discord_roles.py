"""The role presenter against the fake Discord's REST: exact calls, 429 waited out, 403/404 parked
without blocking others, drift repaired (or not, per setting), roles following a merge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from discord_harness import FIRST_WORDS_ROLE, HELPER_ROLE, VOICE_SILVER_ROLE
from fake_discord import GUILD_ID, FakeDiscord
from typer.testing import CliRunner

from smallwins.cli import app as cli
from smallwins.core import outbox
from smallwins.core.app import App
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef

ALICE, BOB, CAROL, DAVE = 4001, 4002, 4003, 4004


def posts(app: App, account: int, count: int) -> int:
    start = datetime.now(UTC) - timedelta(hours=1)
    member_id = 0
    for i in range(count):
        event = Event(
            id=f"message:{account}{i}",
            source="discord",
            type="message.posted",
            subject=str(account),
            time=start + timedelta(minutes=i),
            proof=f"https://discord.com/channels/{GUILD_ID}/1/{account}{i}",
        )
        member_id = app.engine.ingest(event).member_id
    return member_id


def role_path(account: int, role: int) -> str:
    return f"/guilds/{GUILD_ID}/members/{account}/roles/{role}"


def setup(fake: FakeDiscord) -> None:
    for uid, name in [(ALICE, "alice"), (BOB, "bob"), (DAVE, "dave")]:  # carol has left the server
        fake.add_account(uid, name)
    for role in (FIRST_WORDS_ROLE, HELPER_ROLE, VOICE_SILVER_ROLE):
        fake.add_role(role, str(role))


def test_failures_are_waited_out_or_parked_and_never_block_others(
    make_app: Callable[..., App], point_discord_py_at: Callable[[FakeDiscord], None], tmp_path, database_url: str
) -> None:
    app = make_app()

    async def scenario() -> None:
        fake = await FakeDiscord().start()
        point_discord_py_at(fake)
        setup(fake)
        alice, bob, carol = posts(app, ALICE, 1), posts(app, BOB, 4), posts(app, CAROL, 1)
        # Alice's role is refused (above the bot's role), Bob's first call is rate limited, Carol left.
        fake.rate_limit_once = {role_path(BOB, FIRST_WORDS_ROLE)}
        applied = await deliver_with_alice_blocked(app, fake, FIRST_WORDS_ROLE)
        assert applied["discord_roles"] > 0
        assert fake.accounts[BOB].roles == {FIRST_WORDS_ROLE, VOICE_SILVER_ROLE}, "Bob's 429 was waited out"
        assert [p for m, p, _ in fake.calls("PUT")].count(role_path(BOB, FIRST_WORDS_ROLE)) == 2, "429, then the retry"
        assert fake.accounts[ALICE].roles == set()
        reasons = {p.member_id: p.reason for p in outbox.parked_changes(app.store, "discord_roles")}
        assert "403 Missing Permissions" in reasons[alice] and "Manage Roles" in reasons[alice]
        assert "404 Unknown Member" in reasons[carol] and bob not in reasons
        assert outbox.pending_count(app.store, "discord_roles") == 0, "the cursor moved past the parked changes"

        # The operator moves the bot's role up; retry applies what was parked; Carol's stays parked.
        done, failed = await app.retry_parked()
        assert fake.accounts[ALICE].roles == {FIRST_WORDS_ROLE}
        assert done >= 1 and failed >= 1
        assert {p.member_id for p in outbox.parked_changes(app.store)} == {carol}
        await app.close_presenters()
        await fake.stop()

    anyio.run(scenario)
    result = CliRunner().invoke(cli, ["outbox", "-c", str(tmp_path / "plugins.toml"), "--db", database_url])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "Parked changes" in flat and "Unknown" in flat and "Member" in flat, result.output


async def deliver_with_alice_blocked(app: App, fake: FakeDiscord, role: int) -> dict[str, int]:
    """Deliver while the given role is refused for Alice only (a per-member 403)."""
    original = fake.route

    def route(method, path, body, query):  # type: ignore[no-untyped-def]
        if method == "PUT" and path == role_path(ALICE, role):
            from fake_discord import error

            return error(403, "Missing Permissions", 50013)
        return original(method, path, body, query)

    fake.route = route  # type: ignore[method-assign]
    try:
        return await app.deliver()
    finally:
        fake.route = original  # type: ignore[method-assign]


@pytest.mark.parametrize("restore", [True, False], ids=["restore", "respect-removal"])
def test_drift_is_repaired_or_respected_and_roles_follow_a_merge(
    make_app: Callable[..., App], point_discord_py_at: Callable[[FakeDiscord], None], restore: bool
) -> None:
    async def scenario() -> None:
        app = make_app(roles={"restore_removed_roles": restore})
        fake = await FakeDiscord().start()
        point_discord_py_at(fake)
        setup(fake)
        bob = posts(app, BOB, 1)
        await app.deliver()
        assert fake.accounts[BOB].roles == {FIRST_WORDS_ROLE}
        fake.accounts[BOB].roles.clear()  # a moderator removes it by hand
        fake.accounts[BOB].roles.add(999)  # a role smallwins does not manage: never touched
        fake.add_role(999, "artist")
        app.engine.set_profile(bob, timezone="Europe/Paris")  # any change syncs the member again
        await app.deliver()
        expected = {FIRST_WORDS_ROLE, 999} if restore else {999}
        assert fake.accounts[BOB].roles == expected

        if restore:
            dave = posts(app, DAVE, 1)
            app.engine.grant(dave, "helping-hand", actor="test", reason="a great answer")
            code = app.engine.issue_link_code(AccountRef("discord", str(BOB)))
            survivor = app.engine.redeem_link_code(code, AccountRef("discord", str(DAVE)))
            assert survivor == bob
            await app.deliver()
            for account in (BOB, DAVE):
                assert {FIRST_WORDS_ROLE, HELPER_ROLE} <= fake.accounts[account].roles, account
        await app.close_presenters()
        await fake.stop()
        app.close()

    anyio.run(scenario)


def test_discord_sync_repairs_every_member(
    make_app: Callable[..., App], point_discord_py_at: Callable[[FakeDiscord], None]
) -> None:
    """``smallwins discord sync``: roles removed by hand come back without waiting for a change."""
    from smallwins.adapters.discord.commands import sync_roles

    app = make_app()

    async def scenario() -> None:
        fake = await FakeDiscord().start()
        point_discord_py_at(fake)
        setup(fake)
        posts(app, ALICE, 1)
        posts(app, BOB, 4)
        await app.deliver()
        await app.close_presenters()
        fake.accounts[ALICE].roles.clear()
        fake.accounts[BOB].roles.discard(VOICE_SILVER_ROLE)
        assert await sync_roles(app) == 2, "two accounts changed"
        assert fake.accounts[ALICE].roles == {FIRST_WORDS_ROLE}
        assert fake.accounts[BOB].roles == {FIRST_WORDS_ROLE, VOICE_SILVER_ROLE}
        assert await sync_roles(app) == 0, "nothing left to repair"
        await fake.stop()

    anyio.run(scenario)
