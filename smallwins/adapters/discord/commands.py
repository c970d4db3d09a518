"""``smallwins discord backfill|sync``: the Discord plugin's part of the command line.

Registered into the main CLI by :func:`register`; discord.py is imported when a command runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import anyio
import typer
from rich.markup import escape
from sqlalchemy import select

from smallwins.adapters.discord.normalize import CreditRules
from smallwins.adapters.discord.settings import RolesSettings, SourceSettings
from smallwins.cli import ConfigOption, DatabaseOption, console, fail, opened, progress_bar
from smallwins.core.app import App
from smallwins.core.config import ConfigError
from smallwins.core.runtime import make_sink

discord_app = typer.Typer(help="The Discord bot: read channel history, resync roles.", no_args_is_help=True)


def _date(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date like 2026-11-01 (or 2026-11-01T12:00+01:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def backfill_history(smallwins: App, since: datetime) -> tuple[int, int, int]:
    """Read every counted channel from ``since``; (channels, messages, events). Moves the cursors."""
    from smallwins.adapters.discord.client import guild_of, rest_client
    from smallwins.adapters.discord.history import ChannelProgress, message_channels, read_channels, snowflake_at

    context = smallwins.context("discord")
    settings = context.settings
    assert isinstance(settings, SourceSettings)
    rules, guild_id = CreditRules.from_settings(settings), guild_of(settings)
    client = await rest_client(settings)
    try:
        channels = await message_channels(client.http, guild_id, rules)
        with progress_bar() as bar:
            task = bar.add_task("channels", total=len(channels))

            def done(channel: ChannelProgress) -> None:
                bar.update(task, advance=1, description=escape(f"#{channel.name}: {channel.messages} messages"))

            read = await read_channels(
                client.http,
                channels,
                guild_id=guild_id,
                since=lambda _: snowflake_at(since),
                rules=rules,
                sink=make_sink(smallwins, "discord"),
                cursors=context.cursors,
                on_channel=done,
            )
        await smallwins.deliver()
    finally:
        await client.close()
        await smallwins.close_presenters()
    return len(channels), sum(r.messages for r in read), sum(r.events for r in read)


async def sync_roles(smallwins: App) -> int:
    """Bring every member with a Discord account to the roles their standing earns (repairs drift)."""
    from smallwins.adapters.discord.roles import DiscordRolesPresenter, desired_roles
    from smallwins.core.store import Identity

    presenter = smallwins.presenters().get("discord_roles")
    if not isinstance(presenter, DiscordRolesPresenter):
        raise ConfigError("the discord_roles presenter is not enabled in plugins.toml")
    assert isinstance(presenter.settings, RolesSettings)
    with smallwins.store.sessions() as session:
        query = select(Identity.member_id).where(Identity.platform == "discord").distinct()
        member_ids = sorted(session.scalars(query))
    changed = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task("members", total=len(member_ids))
            for member_id in member_ids:
                with smallwins.store.sessions() as session:
                    member = smallwins.snapshot(session, member_id)
                wanted = desired_roles(presenter.settings, member)
                for account in member.identities.get("discord", []):
                    added, removed = await presenter.sync(account, wanted)
                    changed += bool(added or removed)
                bar.advance(task)
    finally:
        await smallwins.close_presenters()
    return changed


@discord_app.command("backfill")
def backfill(
    since: Annotated[str, typer.Option("--since", help="read history from this date (UTC unless given)")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Read channel history since a date (within Discord's rate limits); dedup makes re-runs safe."""
    moment = _date(since)
    with opened(config, database) as smallwins:
        if "discord" not in smallwins.sources():
            raise fail("the discord source is not enabled in plugins.toml ([plugins.discord] enabled = true)")
        try:
            channels, messages, events = anyio.run(backfill_history, smallwins, moment)
        except ConfigError as exc:
            raise fail(str(exc)) from None
    console.print(f"{channels} channels, {messages} messages read, {events} events ingested (duplicates dropped)")


@discord_app.command("sync")
def sync(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Give and take roles so every member's Discord roles match their standing now."""
    with opened(config, database) as smallwins:
        try:
            changed = anyio.run(sync_roles, smallwins)
        except ConfigError as exc:
            raise fail(str(exc)) from None
    console.print(f"{changed} accounts changed")


def register(app: typer.Typer) -> None:
    app.add_typer(discord_app, name="discord")
