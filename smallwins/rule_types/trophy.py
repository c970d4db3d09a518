"""Built-in rule type ``trophy``: a living trophy with tiers that upgrade (bronze -> platinum).

A tier is reached by a count of matching events and, optionally, activity on a minimum number
of distinct sources, so upper tiers ask for cross-channel presence. The member holds one
current tier; the engine audits and re-presents each upgrade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import NOT_MET, Progress, RuleContext, RuleType, Standing
from smallwins.rule_types.scope import EventScope, ScopedRule


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=40)
    threshold: int = Field(ge=1)
    min_sources: int = Field(default=1, ge=1)


class TrophyParams(EventScope):
    tiers: list[Tier] = Field(min_length=1)
    unit: str = Field(default="contributions", max_length=60)

    @model_validator(mode="after")
    def _ascending(self) -> TrophyParams:
        thresholds = [t.threshold for t in self.tiers]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("tiers must have strictly ascending thresholds")
        return self


class TrophyRule(ScopedRule):
    name = "trophy"
    params_model = TrophyParams

    def initial_state(self, params: TrophyParams) -> dict[str, Any]:
        return {"count": 0, "sources": []}

    def apply(
        self, params: TrophyParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        if not params.matches(event):
            return None
        sources = state.get("sources", [])
        return {
            "count": state.get("count", 0) + 1,
            "sources": sources if event.source in sources else sorted([*sources, event.source]),
        }

    def progress(self, params: TrophyParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        count, sources = state.get("count", 0), len(state.get("sources", []))
        rank = _tier_rank(params, count, sources)
        upcoming = params.tiers[min(rank, len(params.tiers) - 1)]
        detail = {"sources": sources, "next_tier": upcoming.name if rank < len(params.tiers) else None}
        if rank < len(params.tiers):
            detail["next_needs_sources"] = upcoming.min_sources
        return Progress(
            current=count,
            target=upcoming.threshold,
            unit=params.unit,
            earned=rank > 0,
            tier=params.tiers[rank - 1].name if rank else None,
            tier_rank=rank,
            detail=detail,
        )

    def standing(self, params: TrophyParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Standing:
        rank = _tier_rank(params, state.get("count", 0), len(state.get("sources", [])))
        return Standing(True, params.tiers[rank - 1].name, rank) if rank else NOT_MET


def _tier_rank(params: TrophyParams, count: int, sources: int) -> int:
    """The highest tier (1 = the first) whose count and sources are reached; 0 for none."""
    rank = 0
    for index, tier in enumerate(params.tiers, start=1):
        if count >= tier.threshold and sources >= tier.min_sources:
            rank = index
    return rank


RULE: RuleType = TrophyRule()


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
