"""Built-in rule type ``count``: first-action badges and milestone ladders (1st, 5th, 25th).

Counts each matching event once (the store already dropped duplicates), optionally only from
some sources, and is met when the count reaches ``threshold``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import MAX_EVIDENCE, MET, NOT_MET, Progress, RuleContext, RuleType, Standing
from smallwins.rule_types.scope import EventScope, ScopedRule


class CountParams(EventScope):
    threshold: int = Field(default=1, ge=1, le=1_000_000)
    unit: str = Field(default="contributions", max_length=60, description="shown as '3 of 5 UNIT'")


class CountRule(ScopedRule):
    """Counts matching events; met at ``threshold``."""
    final_once_met = True  # the count only grows, and there are no tiers

    name = "count"
    params_model = CountParams

    def initial_state(self, params: CountParams) -> dict[str, Any]:
        return {"count": 0, "evidence": []}

    def apply(
        self, params: CountParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        if not params.matches(event):
            return None
        evidence = list(state.get("evidence", []))
        if len(evidence) < min(params.threshold, MAX_EVIDENCE):
            evidence.append(event.key)
        return {"count": state.get("count", 0) + 1, "evidence": evidence}

    def progress(self, params: CountParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        return Progress(current=state.get("count", 0), target=params.threshold, unit=params.unit)

    def standing(self, params: CountParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Standing:
        return MET if state.get("count", 0) >= params.threshold else NOT_MET


RULE: RuleType = CountRule()


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
