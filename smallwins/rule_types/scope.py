"""Parameters shared by rule types that look at a set of event types, optionally per source."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from smallwins.core.events import Event, EventType


class EventScope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[EventType] = Field(min_length=1, description="event types that count")
    sources: list[str] = Field(default_factory=list, description="only these sources; empty = any")

    def matches(self, event: Event) -> bool:
        return event.type in self.events and (not self.sources or event.source in self.sources)


class ScopedRule:
    """Base for rule types whose state changes only on the event types in their scope."""

    def triggers(self, params: EventScope) -> frozenset[str]:
        return frozenset(params.events)
