"""The ``youtube`` plugin as the core sees it: one source, ``youtube``, reading video comments."""

from __future__ import annotations

from smallwins.adapters.youtube.normalize import EVENT_TYPES, normalize
from smallwins.adapters.youtube.settings import YouTubeSettings
from smallwins.core.contract import EventSink, PluginContext, SourceSpec
from smallwins.core.hookspecs import hookimpl


async def capture(context: PluginContext, sink: EventSink) -> None:
    """Imported lazily: listing plugins needs no Google client library."""
    from smallwins.adapters.youtube.capture import capture as poll

    await poll(context, sink)


@hookimpl
def smallwins_register_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="youtube",
            normalize=normalize,
            event_types=EVENT_TYPES,
            settings_model=YouTubeSettings,
            capture=capture,
        )
    ]
