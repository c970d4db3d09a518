"""Built-in rule type ``platforms``: active on at least ``min_sources`` distinct sources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import MET, NOT_MET, Progress, RuleContext, RuleType, Standing
from smallwins.rule_types.scope import EventScope, ScopedRule


class PlatformsParams(EventScope):
    min_sources: int = Field(ge=1, le=50)
    unit: str = Field(default="platforms", max_length=60)


class PlatformsRule(ScopedRule):
    final_once_met = True  # a channel once used stays used
    name = "platforms"
    params_model = PlatformsParams

    def initial_state(self, params: PlatformsParams) -> dict[str, Any]:
        return {"sources": [], "evidence": []}

    def apply(
        self, params: PlatformsParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        if not params.matches(event) or event.source in state.get("sources", []):
            return None
        return {
            "sources": sorted([*state.get("sources", []), event.source]),
            "evidence": [*state.get("evidence", []), event.key],
        }

    def progress(self, params: PlatformsParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        sources = state.get("sources", [])
        return Progress(len(sources), params.min_sources, params.unit, detail={"sources": sources})

    def standing(self, params: PlatformsParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Standing:
        return MET if len(state.get("sources", [])) >= params.min_sources else NOT_MET


RULE: RuleType = PlatformsRule()


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
