"""Achievement definitions, the rule-type contract, and progress.

A *rule type* (count, streak, ...) is a plugin: it validates its own parameters and turns
``(state, event) -> state`` so that evaluation is incremental, one event at a time, with no
rescan of a member's history. An *achievement* is one configured use of a rule type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from smallwins.core.events import Event

#: Audit evidence kept per achievement: enough for a moderator to check, bounded in size.
MAX_EVIDENCE = 50


@dataclass(frozen=True)
class Progress:
    """Where a member stands on one achievement: "3 of 5 helpful replies"."""

    current: int
    target: int
    unit: str

    @property
    def met(self) -> bool:
        return self.current >= self.target

    @property
    def remaining(self) -> int:
        return max(self.target - self.current, 0)

    @property
    def fraction(self) -> float:
        return min(self.current / self.target, 1.0) if self.target else 1.0

    def text(self) -> str:
        return f"{min(self.current, self.target)} of {self.target} {self.unit}"


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know beyond the event: whose state it is and their local time zone."""

    member_id: int
    timezone: ZoneInfo
    now: datetime | None = None


@runtime_checkable
class RuleType(Protocol):
    """The contract a rule-type plugin implements. Parameters come from the catalogue TOML."""

    name: str
    params_model: type[BaseModel]

    def triggers(self, params: Any) -> frozenset[str]:
        """Event types that can change this rule's state (the engine routes only those)."""

    def initial_state(self, params: Any) -> dict[str, Any]:
        """State of a member who has done nothing yet; must be JSON-serializable."""

    def apply(self, params: Any, state: Mapping[str, Any], event: Event, ctx: RuleContext) -> dict[str, Any] | None:
        """New state after ``event``, or ``None`` when the event does not concern this rule."""

    def progress(self, params: Any, state: Mapping[str, Any]) -> Progress:
        """Progress toward the achievement from a state."""


@dataclass(frozen=True)
class Achievement:
    """One entry of the catalogue: what is earned, how, and how it is shown."""

    id: str
    name: str
    description: str
    rule: RuleType
    params: Any
    points: int = 0
    tier: str | None = None
    ladder: str | None = None

    @property
    def triggers(self) -> frozenset[str]:
        return self.rule.triggers(self.params)


@dataclass
class Catalogue:
    """All achievements, the points each event type is worth, and a trigger index."""

    achievements: dict[str, Achievement]
    event_points: dict[str, int] = field(default_factory=dict)
    by_trigger: dict[str, list[Achievement]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_trigger = {}
        for achievement in self.achievements.values():
            for event_type in achievement.triggers:
                self.by_trigger.setdefault(event_type, []).append(achievement)

    def triggered_by(self, event_type: str) -> list[Achievement]:
        return self.by_trigger.get(event_type, [])

    def get(self, achievement_id: str) -> Achievement:
        try:
            return self.achievements[achievement_id]
        except KeyError:
            known = ", ".join(sorted(self.achievements)) or "(none)"
            raise KeyError(f"no achievement '{achievement_id}' in the catalogue; known: {known}") from None

    @property
    def known_event_types(self) -> frozenset[str]:
        return frozenset(self.by_trigger) | frozenset(self.event_points)
