"""The ``discord`` plugin as the core sees it: the bot source and the role presenter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from smallwins.adapters.discord.normalize import EVENT_TYPES, CreditRules, normalize, normalize_dispatch
from smallwins.adapters.discord.settings import RolesSettings, SourceSettings
from smallwins.core.contract import EventSink, PluginContext, Presenter, PresenterSpec, SourceSpec
from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl


async def capture(context: PluginContext, sink: EventSink) -> None:
    """Imported lazily: listing plugins needs no discord.py."""
    from smallwins.adapters.discord.capture import capture as run_bot

    await run_bot(context, sink)


def create_roles(context: PluginContext) -> Presenter:
    from smallwins.adapters.discord.roles import create

    return create(context)


def configured(settings: BaseModel) -> Callable[[Mapping[str, Any]], list[Event]]:
    """Recorded dispatches normalized with the operator's channel and cooldown rules."""
    assert isinstance(settings, SourceSettings)
    rules = CreditRules.from_settings(settings)
    return lambda payload: normalize_dispatch(payload, rules)


@hookimpl
def smallwins_register_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="discord",
            normalize=normalize,
            event_types=EVENT_TYPES,
            settings_model=SourceSettings,
            capture=capture,
            configured=configured,
        )
    ]


@hookimpl
def smallwins_register_presenters() -> list[PresenterSpec]:
    return [PresenterSpec(name="discord_roles", create=create_roles, settings_model=RolesSettings)]
