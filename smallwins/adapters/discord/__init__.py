"""Built-in plugin ``discord``: a bot that captures messages and reactions (source ``discord``,
with slash commands) and gives roles for achievements (presenter ``discord_roles``).

Importing the plugin loads no discord.py: it is imported when the bot or the presenter starts,
so the rest works without the ``discord`` extra.
"""

from __future__ import annotations

from smallwins.adapters.discord.plugin import smallwins_register_presenters, smallwins_register_sources

__all__ = ["smallwins_register_presenters", "smallwins_register_sources"]
