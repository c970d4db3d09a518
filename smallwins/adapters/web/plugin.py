"""The ``web`` source as the core sees it: its settings, event types and capture task."""

from __future__ import annotations

from typing import cast

from pydantic import BaseModel

from smallwins.adapters.web.normalize import normalize
from smallwins.adapters.web.settings import WebSettings
from smallwins.core.contract import EventSink, PluginContext, SourceSpec
from smallwins.core.hookspecs import hookimpl

EVENT_TYPES = frozenset({"link.clicked", "form.submitted"})


async def capture(context: PluginContext, sink: EventSink) -> None:
    """Imported lazily: the core lists plugins without starting (or importing) a web server."""
    from smallwins.adapters.web.capture import capture as serve

    await serve(context, sink)


def hook_sources(settings: BaseModel) -> list[str]:
    """Each configured webhook is a source of its own (``[plugins.web.hooks.shop]``: "shop")."""
    return list(cast(WebSettings, settings).hooks)


@hookimpl
def smallwins_register_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="web",
            normalize=normalize,
            event_types=EVENT_TYPES,
            settings_model=WebSettings,
            capture=capture,
            also_emits=hook_sources,
        )
    ]
