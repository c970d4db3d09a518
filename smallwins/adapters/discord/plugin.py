"""The ``discord`` plugin as the core sees it: the bot source and the role presenter."""

from __future__ import annotations

from smallwins.adapters.discord.normalize import EVENT_TYPES, normalize
from smallwins.adapters.discord.settings import RolesSettings, SourceSettings
from smallwins.core.contract import EventSink, PluginContext, Presenter, PresenterSpec, SourceSpec
from smallwins.core.hookspecs import hookimpl


async def capture(context: PluginContext, sink: EventSink) -> None:
    """Imported lazily: listing plugins needs no discord.py."""
    from smallwins.adapters.discord.capture import capture as run_bot

    await run_bot(context, sink)


def create_roles(context: PluginContext) -> Presenter:
    from smallwins.adapters.discord.roles import create

    return create(context)


@hookimpl
def smallwins_register_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="discord", normalize=normalize, event_types=EVENT_TYPES, settings_model=SourceSettings, capture=capture
        )
    ]


@hookimpl
def smallwins_register_presenters() -> list[PresenterSpec]:
    return [PresenterSpec(name="discord_roles", create=create_roles, settings_model=RolesSettings)]
