"""Built-in rule type ``comeback``: welcome back after at least ``inactive_days`` days away.

Active days are kept as intervals in the member's time zone, and the state says only which
days were active, so any arrival order gives the same state. A late event that fills the gap
a welcome-back was awarded for shows the member never left: the engine revokes it (audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import MET, NOT_MET, Progress, RuleContext, RuleType, Standing
from smallwins.rule_types.calendar import add_period, gaps, period_label, period_of
from smallwins.rule_types.scope import EventScope, ScopedRule


class ComebackParams(EventScope):
    inactive_days: int = Field(ge=1, le=3650, description="days without activity before a return counts")


class ComebackRule(ScopedRule):
    name = "comeback"
    params_model = ComebackParams

    def initial_state(self, params: ComebackParams) -> dict[str, Any]:
        return {"days": []}

    def apply(
        self, params: ComebackParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        if not params.matches(event):
            return None
        days = add_period(state.get("days", []), period_of(event.time, ctx.timezone, "day"))
        return None if days is None else {"days": days}

    def progress(self, params: ComebackParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        back = _returns(params, state)
        detail = {"returned_on": period_label(back[0], "day")} if back else {}
        return Progress(1 if back else 0, 1, "return", detail=detail)

    def standing(self, params: ComebackParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Standing:
        return MET if _returns(params, state) else NOT_MET


def _returns(params: ComebackParams, state: Mapping[str, Any]) -> list[int]:
    """The days the member came back on after at least ``inactive_days`` away."""
    return [after for before, after in gaps(state.get("days", [])) if after - before - 1 >= params.inactive_days]


RULE: RuleType = ComebackRule()


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
