"""The bot's application commands, synced to the configured guild.

Members: ``/progress``, ``/leaderboard``, ``/link``, ``/privacy`` (answers only they see).
Moderators (a role in ``moderator_roles``, or Manage Server when none is configured): ``/grant``,
``/revoke`` and the message command "Mark helpful", which emits the approval event for that
message. Every answer is computed in a worker thread by :mod:`answers`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import discord
import structlog
from discord import app_commands

from smallwins.adapters.discord import answers
from smallwins.adapters.discord.normalize import marked_helpful

if TYPE_CHECKING:
    from smallwins.adapters.discord.capture import SmallwinsBot

log = structlog.get_logger(__name__)


def is_moderator(bot: SmallwinsBot, user: discord.abc.User) -> bool:
    if not isinstance(user, discord.Member):
        return False
    if bot.settings.moderator_roles:
        return any(str(role.id) in bot.settings.moderator_roles for role in user.roles)
    return user.guild_permissions.manage_guild


async def reply(interaction: discord.Interaction, compute: Callable[[], str]) -> None:
    """Answer ephemerally with what ``compute`` says (run off the event loop)."""
    text = await anyio.to_thread.run_sync(compute)
    await interaction.response.send_message(text, ephemeral=True)
    log.info("discord.command_answered", command=interaction.command.name if interaction.command else None)


def install(bot: SmallwinsBot) -> None:
    """Register the commands on ``bot.tree`` for the configured guild."""
    tree, app, guild = bot.tree, bot.context.app, discord.Object(id=int(bot.guild_id))
    boards = answers.board_names(app)

    @tree.command(name="progress", description="Your badges, streaks and what is next", guild=guild)
    async def progress(interaction: discord.Interaction) -> None:
        await reply(interaction, partial(answers.progress, app, str(interaction.user.id)))

    @tree.command(name="leaderboard", description="Who leads this period", guild=guild)
    @app_commands.describe(board="which leaderboard")
    @app_commands.choices(board=[app_commands.Choice(name=n[:100], value=b) for b, n in list(boards.items())[:25]])
    async def leaderboard(interaction: discord.Interaction, board: str | None = None) -> None:
        await reply(interaction, partial(answers.leaderboard, app, board))

    @tree.command(name="link", description="Link your accounts: get a code, or redeem one", guild=guild)
    @app_commands.describe(code="a code you got on another platform (leave empty to get one)")
    async def link(interaction: discord.Interaction, code: str | None = None) -> None:
        await reply(interaction, partial(answers.link, app, str(interaction.user.id), code))

    @tree.command(name="privacy", description="Private mode: leave public leaderboards", guild=guild)
    async def privacy(interaction: discord.Interaction, private: bool) -> None:
        await reply(interaction, partial(answers.privacy, app, str(interaction.user.id), private))

    async def moderate(
        action: str, interaction: discord.Interaction, member: discord.Member, achievement: str, reason: str
    ) -> None:
        if not is_moderator(bot, interaction.user):
            await interaction.response.send_message("Only moderators can do that.", ephemeral=True)
            return
        compute = partial(answers.moderate, app, action, str(interaction.user.id), str(member.id), achievement, reason)
        await reply(interaction, compute)

    @tree.command(name="grant", description="Moderators: grant an achievement (audited)", guild=guild)
    @app_commands.default_permissions(manage_roles=True)
    async def grant(interaction: discord.Interaction, member: discord.Member, achievement: str, reason: str) -> None:
        await moderate("grant", interaction, member, achievement, reason)

    @tree.command(name="revoke", description="Moderators: revoke an achievement (audited)", guild=guild)
    @app_commands.default_permissions(manage_roles=True)
    async def revoke(interaction: discord.Interaction, member: discord.Member, achievement: str, reason: str) -> None:
        await moderate("revoke", interaction, member, achievement, reason)

    @grant.autocomplete("achievement")
    @revoke.autocomplete("achievement")
    async def achievements(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        found = [a for a in app.catalogue.achievements.values() if current.casefold() in a.id + a.name.casefold()]
        return [app_commands.Choice(name=a.name[:100], value=a.id) for a in found[:25]]

    @tree.context_menu(name="Mark helpful", guild=guild)
    @app_commands.default_permissions(manage_messages=True)
    async def mark_helpful(interaction: discord.Interaction, message: discord.Message) -> None:
        if not is_moderator(bot, interaction.user):
            await interaction.response.send_message("Only moderators can mark messages helpful.", ephemeral=True)
            return
        raw: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel.id),
            "guild_id": bot.guild_id,
            "author": {"id": str(message.author.id), "bot": message.author.bot},
        }
        if isinstance(message.channel, discord.Thread):
            raw["parent_id"] = str(message.channel.parent_id)
        event = marked_helpful(str(interaction.user.id), raw, bot.rules)
        if event is None:
            await interaction.response.send_message("That message cannot be marked helpful.", ephemeral=True)
            return
        await bot.sink([event])
        await interaction.response.send_message(f"Marked helpful: {message.jump_url}", ephemeral=True)
