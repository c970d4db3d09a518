"""Achievement definitions, the rule-type contract, and progress.

A *rule type* (count, streak, ...) is a plugin: it validates its own parameters and turns
``(state, event) -> state`` so that evaluation is incremental, one event at a time, with no
rescan of a member's history. An *achievement* is one configured use of a rule type, plus what
every achievement may have whatever its rule: a season window, a voucher, a role it grants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import structlog
from pydantic import BaseModel

from smallwins.core.events import Event

log = structlog.get_logger(__name__)

#: Audit evidence kept per achievement: enough for a moderator to check, bounded in size.
MAX_EVIDENCE = 50


@dataclass(frozen=True)
class Progress:
    """Where a member stands on one achievement: "3 of 5 helpful replies".

    ``earned`` overrides ``current >= target`` for rules whose shown number is not what earns
    (a streak shows the current run but is earned by the longest). Tiered rules (living trophies)
    report the tier held; ``tier_rank`` 0 means none yet.
    """

    current: int
    target: int
    unit: str
    earned: bool | None = None
    tier: str | None = None
    tier_rank: int = 0
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return self.earned if self.earned is not None else self.current >= self.target

    def text(self) -> str:
        return f"{min(self.current, self.target)} of {self.target} {self.unit}"


class Standing(NamedTuple):
    """What the engine needs of a state after each event: whether it is met, and the tier held.

    :class:`Progress` is for people (the number shown, the detail); the engine asks for this
    once per event and achievement, so a rule may answer it without building any of that (see
    ``standing`` in :class:`RuleType`).
    """

    met: bool
    tier: str | None = None
    tier_rank: int = 0

    @classmethod
    def of(cls, progress: Progress) -> Standing:
        return cls(progress.met, progress.tier, progress.tier_rank)


MET = Standing(True)
NOT_MET = Standing(False)


@dataclass(frozen=True)
class RuleContext:
    """What a rule may know beyond the event: whose state it is, their time zone, who acted.

    ``actor_member_id`` differs from ``member_id`` when the event is someone else's approval of
    this member's contribution (a peer reaction, a moderator's approval).
    """

    member_id: int
    timezone: ZoneInfo
    now: datetime | None = None
    actor_member_id: int | None = None


@runtime_checkable
class RuleType(Protocol):
    """The contract a rule-type plugin implements. Parameters come from the catalogue TOML.

    A rule may also define ``target_triggers(params) -> frozenset[str]``: event types that
    concern the author of the event named in their ``data.target`` (approvals, reactions)
    rather than the member who acted. The engine routes those, also when they arrive before
    the contribution they name.

    A rule may also set ``final_once_met = True``: once ``progress`` says met, applying a later
    event (in event-time order: an earlier one arriving late is replayed from history instead)
    never unmeets it or changes its tier, under the same parameters (a count). The engine then
    does not ask for the standing (below) of a state already met after applying an event to it (it
    asks once per event and achievement otherwise); a changed catalogue is re-evaluated by
    ``smallwins backfill``.
    Without it, the engine asks every time.

    A rule may also define ``standing(params, state, ctx) -> Standing``: what ``progress`` says
    of met, tier and tier rank, without the shown number and detail. The engine asks for it after
    every event it applies, where ``progress`` (a streak's deadline, a label) would be built for
    nobody; without it, the engine takes them from ``progress``.
    """

    @property
    def name(self) -> str:
        """The name achievements use in ``rule = "..."``."""

    @property
    def params_model(self) -> type[BaseModel]:
        """The pydantic model that validates an achievement's rule parameters."""

    def triggers(self, params: Any) -> frozenset[str]:
        """Event types that can change this rule's state for the member who acted."""

    def initial_state(self, params: Any) -> dict[str, Any]:
        """State of a member who has done nothing yet; must be JSON-serializable."""

    def apply(self, params: Any, state: Mapping[str, Any], event: Event, ctx: RuleContext) -> dict[str, Any] | None:
        """New state after ``event``, or ``None`` when the event does not concern this rule.

        ``None`` must hold whatever other events come before this one (the engine does not
        revisit it when an earlier event arrives late): return it only for events that can never
        change the state, such as a type out of scope or a fact the state already records.
        """

    def progress(self, params: Any, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        """Progress from a state; ``ctx.now`` (when given) lets time-based rules say what is left."""


@dataclass(frozen=True)
class Window:
    """A season: the achievement can be earned only by events in ``[start, end)``.

    The catalogue gives its bounds in UTC, the zone events are stored in: an instant compared
    with another of the same zone skips both offsets (tens of times faster, once per event).
    """

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


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
    window: Window | None = None
    voucher_hours: float | None = None
    role: str | None = None
    #: Share of members held out of seeing it (an experiment; see ``smallwins.core.holdout``).
    holdout: float = 0.0
    #: The lift in the return rate the holdout experiment is sized to detect (absolute, 0..1).
    expected_lift: float | None = None
    #: When it was launched, for the report's before/after comparison.
    launched_at: datetime | None = None

    @property
    def triggers(self) -> frozenset[str]:
        return self.rule.triggers(self.params)

    @property
    def target_triggers(self) -> frozenset[str]:
        method = getattr(self.rule, "target_triggers", None)
        return method(self.params) if method is not None else frozenset()

    def standing(self, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Standing:
        """Met, tier and tier rank of ``state``: the rule's own ``standing`` when it has one."""
        return self._standing(self.params, state, ctx)

    @cached_property
    def _standing(self) -> Callable[[Any, Mapping[str, Any], RuleContext | None], Standing]:
        method: Callable[[Any, Mapping[str, Any], RuleContext | None], Standing] | None = getattr(
            self.rule, "standing", None
        )
        if method is not None:
            return method
        progress = self.rule.progress
        return lambda params, state, ctx: Standing.of(progress(params, state, ctx))

    def accepts(self, event: Event) -> bool:
        """Whether the event may count at all (a seasonal achievement ignores the off-season)."""
        return self.window is None or event.time in self.window


@dataclass(frozen=True)
class LeaderboardSpec:
    """A time-boxed leaderboard: points earned per week, month, or inside one season window."""

    id: str
    name: str
    period: str  # week | month | season
    window: Window | None = None


@dataclass(frozen=True)
class Experiment:
    """How holdout experiments are drawn and judged (the catalogue's ``[experiment]`` table).

    ``salt`` seeds who is held out; ``window_days`` is the outcome window (returned within that
    many days after earning); ``confidence`` and ``power`` size the intervals and sample sizes.
    """

    salt: str = ""
    window_days: int = 7
    confidence: float = 0.95
    power: float = 0.8


@dataclass
class Catalogue:
    """All achievements, the points each event type is worth, leaderboards, trigger indexes."""

    achievements: dict[str, Achievement]
    event_points: dict[str, int] = field(default_factory=dict)
    leaderboards: dict[str, LeaderboardSpec] = field(default_factory=dict)
    fingerprint: str = ""
    experiment: Experiment = field(default_factory=Experiment)
    by_trigger: dict[str, list[Achievement]] = field(init=False)
    by_target_trigger: dict[str, list[Achievement]] = field(init=False)
    #: Event types that are contributions others' approvals count for (a rule triggered by
    #: the type also counts approvals of it).
    collecting_approvals: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_trigger, self.by_target_trigger = {}, {}
        for achievement in self.achievements.values():
            for event_type in achievement.triggers:
                self.by_trigger.setdefault(event_type, []).append(achievement)
            for event_type in achievement.target_triggers:
                self.by_target_trigger.setdefault(event_type, []).append(achievement)
        self.collecting_approvals = frozenset(
            event_type
            for event_type, achievements in self.by_trigger.items()
            if any(a.target_triggers for a in achievements)
        )

    def triggered_by(self, event_type: str) -> list[Achievement]:
        return self.by_trigger.get(event_type, [])

    def target_triggered_by(self, event_type: str) -> list[Achievement]:
        return self.by_target_trigger.get(event_type, [])

    @property
    def has_target_rules(self) -> bool:
        return bool(self.by_target_trigger)

    def get(self, achievement_id: str) -> Achievement:
        try:
            return self.achievements[achievement_id]
        except KeyError:
            known = ", ".join(sorted(self.achievements)) or "(none)"
            raise KeyError(f"no achievement '{achievement_id}' in the catalogue; known: {known}") from None

    @property
    def known_event_types(self) -> frozenset[str]:
        return frozenset(self.by_trigger) | frozenset(self.by_target_trigger) | frozenset(self.event_points)

    @property
    def named_sources(self) -> frozenset[str]:
        """Sources the achievements' scopes name (``sources = [...]``): known to the catalogue
        even when no installed plugin is called so (events imported from elsewhere)."""
        return frozenset(
            source for a in self.achievements.values() for source in getattr(a.params, "sources", None) or ()
        )


def rule_failed(achievement: Achievement, event: Event, exc: Exception) -> str:
    """Log a rule that raised on an event, and say what happened in one line.

    A rule (a plugin's, often) that raises must not stop an ingest or lose the batch around the
    event: the engine treats the event as changing nothing for that achievement, the same in a
    live ingest and in a replay, so standing still does not depend on delivery order. Once the
    rule is fixed, ``smallwins backfill`` applies the history again.
    """
    log.error(
        "rule.failed",
        achievement=achievement.id,
        rule=achievement.rule.name,
        event_key=event.key,
        error=f"{type(exc).__name__}: {exc}",
    )
    return (
        f"achievement '{achievement.id}' (rule '{achievement.rule.name}') failed on this event "
        f"({type(exc).__name__}: {exc}): the event is stored, that achievement skipped it"
    )
