"""Descriptors a plugin hands to the core: sources and presenters, and what they receive."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from smallwins.core.events import Event


class NoSettings(BaseModel):
    """For a plugin that takes no settings: any key given is an error."""

    model_config = {"extra": "forbid"}


class EventSink(Protocol):
    """Where a capture task delivers the events it normalized."""

    async def __call__(self, events: list[Event]) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """A source adapter: normalizes platform payloads and may run a capture task."""

    name: str
    normalize: Callable[[Mapping[str, Any]], list[Event]]
    event_types: frozenset[str] = frozenset()
    settings_model: type[BaseModel] = NoSettings
    capture: Callable[[BaseModel, EventSink], Coroutine[Any, Any, None]] | None = None


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


@dataclass(frozen=True)
class OutboxChange:
    """One change a presenter consumes: an award, a revocation, a merge."""

    id: int
    member_id: int
    kind: str
    payload: dict[str, Any]


class Presenter(Protocol):
    """A configured presenter instance; ``apply`` must be idempotent and repair drift."""

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None: ...


@dataclass(frozen=True)
class PresenterSpec:
    """A presenter plugin: a settings model and a factory for a configured instance."""

    name: str
    create: Callable[[BaseModel], Presenter]
    settings_model: type[BaseModel] = NoSettings
