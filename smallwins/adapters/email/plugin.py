"""The ``email`` plugin as the core sees it: the mailbox source and the newsletter presenter."""

from __future__ import annotations

from smallwins.adapters.email.normalize import EVENT_TYPES, normalize
from smallwins.adapters.email.settings import MailboxSettings, NewsletterSettings
from smallwins.core.contract import EventSink, PluginContext, Presenter, PresenterSpec, SourceSpec
from smallwins.core.hookspecs import hookimpl


async def capture(context: PluginContext, sink: EventSink) -> None:
    """Imported lazily: listing plugins needs no IMAP library."""
    from smallwins.adapters.email.capture import capture as watch

    await watch(context, sink)


def create_newsletter(context: PluginContext) -> Presenter:
    from smallwins.adapters.email.presenter import create

    return create(context)


@hookimpl
def smallwins_register_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="email", normalize=normalize, event_types=EVENT_TYPES, settings_model=MailboxSettings, capture=capture
        )
    ]


@hookimpl
def smallwins_register_presenters() -> list[PresenterSpec]:
    return [PresenterSpec(name="newsletter", create=create_newsletter, settings_model=NewsletterSettings)]
