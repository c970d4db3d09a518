"""Built-in rule type ``comeback``: welcome back after at least ``inactive_days`` days away.

Active days are kept as intervals in the member's time zone, so a late event fills its gap;
once a return has been seen it stays earned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import Progress, RuleContext, RuleType
from smallwins.rule_types.calendar import add_period, gaps, period_label, period_of
from smallwins.rule_types.scope import EventScope


class ComebackParams(EventScope):
    inactive_days: int = Field(ge=1, le=3650, description="days without activity before a return counts")


class ComebackRule:
    name = "comeback"
    params_model = ComebackParams

    def triggers(self, params: ComebackParams) -> frozenset[str]:
        return frozenset(params.events)

    def initial_state(self, params: ComebackParams) -> dict[str, Any]:
        return {"days": [], "returned_on": None}

    def apply(
        self, params: ComebackParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        if not params.matches(event):
            return None
        days = add_period(state.get("days", []), period_of(event.time, ctx.timezone, "day"))
        if days is None:
            return None
        returned_on = state.get("returned_on")
        if returned_on is None:
            back = [after for before, after in gaps(days) if after - before - 1 >= params.inactive_days]
            returned_on = period_label(back[0], "day") if back else None
        return {"days": days, "returned_on": returned_on}

    def progress(self, params: ComebackParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        returned = state.get("returned_on")
        return Progress(1 if returned else 0, 1, "return", detail={"returned_on": returned} if returned else {})


RULE: RuleType = ComebackRule()


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
