"""End to end: the real discord.py bot on a fake Discord, capture -> award -> role, and slash commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from discord_harness import FIRST_WORDS_ROLE, HELPER_ROLE, VOICE_SILVER_ROLE
from fake_discord import ANNOUNCE, GUILD_ID, MOD_ROLE, OFFTOPIC, FakeDiscord
from sqlalchemy import func, select

from smallwins.adapters.discord.capture import capture
from smallwins.core.app import App
from smallwins.core.runtime import make_sink
from smallwins.core.store import AuditEntry, Award, StoredEvent

ALICE, BOB, CAROL, MO = 4001, 4002, 4003, 4009


async def until(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    with anyio.fail_after(timeout, shield=False):
        while not await anyio.to_thread.run_sync(check):
            await anyio.sleep(0.05)
    assert await anyio.to_thread.run_sync(check), what


def awards_of(app: App, account: int) -> set[str]:
    with app.store.sessions() as session:
        rows = session.execute(
            select(Award.achievement_id)
            .join(StoredEvent, StoredEvent.member_id == Award.member_id)
            .where(StoredEvent.subject == str(account), Award.status == "active")
        ).all()
    return {r[0] for r in rows}


def stored(app: App) -> int:
    with app.store.sessions() as session:
        return session.scalar(select(func.count()).select_from(StoredEvent)) or 0


async def command(fake: FakeDiscord, invoker: int, name: str, **kwargs: Any) -> dict[str, Any]:
    before = len(fake.callbacks)
    await fake.dispatch("INTERACTION_CREATE", fake.interaction(invoker, name, **kwargs))
    with anyio.fail_after(10):
        while len(fake.callbacks) == before:
            await anyio.sleep(0.02)
    return fake.callbacks[-1]


def setup_community(fake: FakeDiscord) -> None:
    fake.add_account(ALICE, "alice")
    fake.add_account(BOB, "bob")
    fake.add_account(CAROL, "carol")
    fake.add_account(MO, "mo", roles={MOD_ROLE})
    for role, name in [(FIRST_WORDS_ROLE, "First Words"), (HELPER_ROLE, "Helper"), (VOICE_SILVER_ROLE, "Voice")]:
        fake.add_role(role, name)


def test_messages_and_reactions_become_awards_roles_and_answers(
    make_app: Callable[..., App], point_discord_py_at: Callable[[FakeDiscord], None]
) -> None:
    app = make_app(roles={"announce_channel_id": str(ANNOUNCE)}, exclude_channels=[str(OFFTOPIC)])
    now = datetime.now(UTC).replace(microsecond=0)

    async def scenario() -> None:
        fake = await FakeDiscord().start()
        point_discord_py_at(fake)
        setup_community(fake)
        async with anyio.create_task_group() as group:
            group.start_soon(capture, app.context("discord"), make_sink(app, "discord"))
            with anyio.fail_after(15):
                await fake.ready.wait()
                while not fake.commands:
                    await anyio.sleep(0.02)
            assert {c["name"] for c in fake.commands} == {
                "progress",
                "leaderboard",
                "link",
                "privacy",
                "grant",
                "revoke",
                "Mark helpful",
            }, "commands are synced to the guild"
            assert fake.calls("PUT", f"/applications/{fake.commands[0]['application_id']}/guilds/{GUILD_ID}/commands")

            hello = fake.message(ALICE, "hello everyone, glad to be here", at=now - timedelta(minutes=30))
            await fake.dispatch("MESSAGE_CREATE", hello)
            await fake.dispatch("MESSAGE_CREATE", fake.message(BOB, "welcome alice!", at=now - timedelta(minutes=29)))
            # None of these count: a bot, a webhook, a join notice, an excluded channel.
            fake.add_account(4100, "helperbot").bot = True
            await fake.dispatch("MESSAGE_CREATE", fake.message(4100, "I am a bot", at=now - timedelta(minutes=28)))
            await fake.dispatch(
                "MESSAGE_CREATE", fake.message(CAROL, "via hook", at=now - timedelta(minutes=28), webhook_id="77")
            )
            await fake.dispatch("MESSAGE_CREATE", fake.message(CAROL, "", at=now - timedelta(minutes=27), type=7))
            await fake.dispatch(
                "MESSAGE_CREATE", fake.message(CAROL, "memes", at=now - timedelta(minutes=27), channel=OFFTOPIC)
            )
            # Two peers approve alice's post; her own reaction does not count.
            await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(ALICE, hello))
            await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(BOB, hello))
            await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(CAROL, hello))
            await until(lambda: "helping-hand" in awards_of(app, ALICE), "two peer reactions approve the post")
            assert stored(app) == 4, "alice's and bob's messages, bob's and carol's reactions; nothing else"
            assert awards_of(app, BOB) == {"first-words"} and awards_of(app, CAROL) == set()

            await app.deliver()
            assert fake.accounts[ALICE].roles == {FIRST_WORDS_ROLE, HELPER_ROLE}
            assert fake.accounts[BOB].roles == {FIRST_WORDS_ROLE}
            assert sorted(p for m, p, _ in fake.calls("PUT", "/guilds/")) == sorted(
                [
                    f"/guilds/{GUILD_ID}/members/{ALICE}/roles/{FIRST_WORDS_ROLE}",
                    f"/guilds/{GUILD_ID}/members/{ALICE}/roles/{HELPER_ROLE}",
                    f"/guilds/{GUILD_ID}/members/{BOB}/roles/{FIRST_WORDS_ROLE}",
                ]
            ), "each role is given once, however many changes a member had"
            titles = [e["title"] for p in fake.posted if p["channel"] == ANNOUNCE for e in p.get("embeds", [])]
            assert "New badge: Helping Hand" in titles and "New badge: First Words" in titles

            answer = await command(fake, ALICE, "progress")
            assert answer["type"] == 4 and answer["data"]["flags"] & 64, "an ephemeral message"
            text = answer["data"]["content"]
            assert "First Words" in text and "Helping Hand" in text and "held by" in text
            assert "Regular: 1 of 3 messages" in text, text

            # Carol takes her reaction back: the post is no longer approved; the award and role go.
            await fake.dispatch(
                "MESSAGE_REACTION_REMOVE",
                {k: v for k, v in fake.reaction(CAROL, hello).items() if k not in ("member", "message_author_id")},
            )
            await until(lambda: "helping-hand" not in awards_of(app, ALICE), "the retraction revokes the award")
            await app.deliver()
            assert fake.accounts[ALICE].roles == {FIRST_WORDS_ROLE}
            assert fake.calls("DELETE", f"/guilds/{GUILD_ID}/members/{ALICE}/roles/{HELPER_ROLE}")

            # A member may not mark helpful; the moderator may, and it is the approval that counts.
            refused = await command(
                fake, BOB, "Mark helpful", kind=3, target_id=hello["id"], resolved={"messages": {hello["id"]: hello}}
            )
            assert "Only moderators" in refused["data"]["content"]
            marked = await command(
                fake, MO, "Mark helpful", kind=3, target_id=hello["id"], resolved={"messages": {hello["id"]: hello}}
            )
            assert "Marked helpful" in marked["data"]["content"]
            await until(lambda: "helping-hand" in awards_of(app, ALICE), "a moderator's approval counts")

            # A moderator revokes, audited with their Discord id.
            revoke = await command(
                fake,
                MO,
                "revoke",
                options=[
                    {"name": "member", "type": 6, "value": str(BOB)},
                    {"name": "achievement", "type": 3, "value": "first-words"},
                    {"name": "reason", "type": 3, "value": "spam"},
                ],
                resolved={
                    "users": {str(BOB): fake.accounts[BOB].member()["user"]},
                    "members": {str(BOB): {k: v for k, v in fake.accounts[BOB].member().items() if k != "user"}},
                },
            )
            assert "revoked (audited)" in revoke["data"]["content"], revoke
            await app.deliver()
            assert fake.accounts[BOB].roles == set()
            with app.store.sessions() as session:
                entry = session.scalars(select(AuditEntry).where(AuditEntry.actor == f"discord:{MO}")).one()
            assert entry.action == "revoke" and entry.reason == "spam" and entry.achievement_id == "first-words"

            board = (await command(fake, BOB, "leaderboard"))["data"]["content"]
            assert board.startswith("**This month**") and board.index("alice") < board.index("bob"), board
            private = await command(fake, ALICE, "privacy", options=[{"name": "private", "type": 5, "value": True}])
            assert "Private mode is on" in private["data"]["content"]
            board = (await command(fake, BOB, "leaderboard"))["data"]["content"]
            assert "alice" not in board, "a private member leaves the public board"

            link = await command(fake, BOB, "link")
            assert "Your link code" in link["data"]["content"]
            group.cancel_scope.cancel()
        await app.close_presenters()
        await fake.stop()

    anyio.run(scenario)


@pytest.mark.parametrize("cooldown", [60])
def test_cooldown_credits_one_message_per_window_in_any_order(
    make_app: Callable[..., App], point_discord_py_at: Callable[[FakeDiscord], None], cooldown: int
) -> None:
    """Five quick messages earn one credit; a deleted credited message takes its credit back."""
    app = make_app(cooldown_seconds=cooldown, min_length=3, commands=False)
    start = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)

    async def scenario() -> None:
        fake = await FakeDiscord().start()
        point_discord_py_at(fake)
        setup_community(fake)
        async with anyio.create_task_group() as group:
            group.start_soon(capture, app.context("discord"), make_sink(app, "discord"))
            with anyio.fail_after(15):
                await fake.ready.wait()
            burst = [fake.message(ALICE, f"message number {i}", at=start + timedelta(seconds=5 * i)) for i in range(5)]
            later = fake.message(ALICE, "a minute later", at=start + timedelta(seconds=70))
            short = fake.message(ALICE, "ok", at=start + timedelta(seconds=130))
            for message in [later, *reversed(burst), short]:  # out of order on purpose
                await fake.dispatch("MESSAGE_CREATE", message)
            await until(lambda: stored(app) == 2, "one credit per window: the burst's and the later one's")
            # Deleting a message that was not the credited one changes nothing; deleting the credited one retracts.
            with app.store.sessions() as session:
                proofs = set(session.scalars(select(StoredEvent.proof)))
            credited = next(m for m in burst if m["id"] in "".join(p for p in proofs if p))
            uncredited = next(m for m in burst if m is not credited)
            for gone in (uncredited, credited):
                await fake.dispatch(
                    "MESSAGE_DELETE", {"id": gone["id"], "channel_id": gone["channel_id"], "guild_id": str(GUILD_ID)}
                )
            await until(lambda: stored(app) == 3, "one deletion event stored")
            with app.store.sessions() as session:
                retracted = session.scalar(select(func.count()).where(StoredEvent.retracted.is_(True)))
            assert retracted == 1
            group.cancel_scope.cancel()
        await fake.stop()

    anyio.run(scenario)
