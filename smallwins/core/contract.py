"""Descriptors a plugin hands to the core: sources and presenters, and what they receive."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from smallwins.core.events import Event

if TYPE_CHECKING:
    from smallwins.core.app import App
    from smallwins.core.cursors import CursorStore


class NoSettings(BaseModel):
    """For a plugin that takes no settings: any key given is an error."""

    model_config = {"extra": "forbid"}


class EventSink(Protocol):
    """Where a capture task delivers the events it normalized."""

    async def __call__(self, events: list[Event]) -> None: ...


@dataclass(frozen=True)
class PluginContext:
    """What a configured component gets from the core: its settings and where it runs.

    ``config_dir`` is the folder of the plugins.toml in use: relative paths in settings mean
    paths there, whatever the current folder (use :meth:`path`). ``app`` is the running
    smallwins (store, engine, catalogue, member snapshots) for components that answer members
    directly, such as a bot's slash commands.
    """

    name: str
    plugin: str
    settings: BaseModel
    config_dir: Path
    app: App

    def path(self, value: str | Path) -> Path:
        """A path from the settings, resolved against the folder of plugins.toml."""
        return (self.config_dir / Path(value).expanduser()).resolve()

    @property
    def cursors(self) -> CursorStore:
        """This source's persisted cursors (last message id, page token, IMAP UID...)."""
        from smallwins.core.cursors import CursorStore

        return CursorStore(self.app.store, self.name)


@dataclass(frozen=True)
class SourceSpec:
    """A source adapter: normalizes platform payloads and may run a capture task.

    ``capture(context, sink)`` runs until cancelled and hands normalized events to ``sink``.
    ``normalize`` uses the source's defaults; ``configured(settings)``, when given, returns the
    normalizer for the operator's settings (which channels count, cooldowns), so recorded
    payloads ingested with ``smallwins ingest --source`` count as the live source would count them.
    """

    name: str
    normalize: Callable[[Mapping[str, Any]], list[Event]]
    event_types: frozenset[str] = frozenset()
    settings_model: type[BaseModel] = NoSettings
    capture: Callable[[PluginContext, EventSink], Coroutine[Any, Any, None]] | None = None
    configured: Callable[[BaseModel], Callable[[Mapping[str, Any]], list[Event]]] | None = None
    #: Source names its events carry besides ``name``, given its settings (the web source's
    #: webhooks: one per configured hook), so the engine does not take them for typos.
    also_emits: Callable[[BaseModel], Iterable[str]] | None = None


@dataclass(frozen=True)
class MemberSnapshot:
    """Everything a presenter needs to render one member, recomputed from the store."""

    member_id: int
    display_name: str
    identities: dict[str, list[str]]
    points: int
    rank: int | None
    awards: list[dict[str, Any]]
    progress: list[dict[str, Any]]
    merged_into: int | None = None
    roles: list[str] = field(default_factory=list)
    vouchers: list[dict[str, Any]] = field(default_factory=list)
    timezone: str = "UTC"
    private: bool = False
    #: Achievements a moderator revoked (id, name, revoked_at): shown as revoked, never as "next".
    revoked: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class OutboxChange:
    """One change a presenter consumes: an award, a revocation, a merge."""

    id: int
    member_id: int
    kind: str
    payload: dict[str, Any]


class PermanentDeliveryError(Exception):
    """Raised by a presenter for a change that retrying cannot fix (no permission, member left).

    The change is parked with this message as its reason and delivery goes on with the next
    change; any other exception is taken as transient: the presenter stops there and the same
    change is tried again on the next delivery.
    """


class Presenter(Protocol):
    """A configured presenter instance; ``apply`` must be idempotent and repair drift."""

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None: ...


@dataclass(frozen=True)
class PresenterSpec:
    """A presenter plugin: a settings model and a factory for a configured instance."""

    name: str
    create: Callable[[PluginContext], Presenter]
    settings_model: type[BaseModel] = NoSettings
