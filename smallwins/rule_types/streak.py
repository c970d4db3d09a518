"""Built-in rule type ``streak``: consecutive days (or weeks) active, in the member's time zone.

The state is only the set of active periods, so late and out-of-order events land where they
belong; everything else (current and longest streak, freeze tokens, the deadline) is derived.

- ``grace``: per gap, this many missed periods are forgiven without cost.
- freeze tokens: every ``freeze_every`` active periods in a streak earn one (at most
  ``max_freezes`` held); a gap longer than the grace spends one token per extra missed period,
  automatically, if enough are held; otherwise the streak breaks (tokens are kept).
- The streak counts active periods; it is earned when the longest streak reaches ``target``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import MET, NOT_MET, Progress, RuleContext, RuleType, Standing
from smallwins.rule_types.calendar import add_period, period_end, period_of
from smallwins.rule_types.scope import EventScope, ScopedRule


class StreakParams(EventScope):
    unit: Literal["day", "week"] = "day"
    target: int = Field(ge=1, le=10_000, description="streak length that earns the achievement")
    grace: int = Field(default=0, ge=0, le=30, description="missed periods forgiven per gap")
    freeze_every: int | None = Field(default=None, ge=1, description="active periods per freeze token")
    max_freezes: int = Field(default=2, ge=0, le=30)


@dataclass(frozen=True)
class StreakSummary:
    current: int
    longest: int
    freezes: int
    freezes_used: int
    last_active: int | None
    deadline: int | None  # last period in which activity keeps the current streak alive


def summarize(intervals: list[list[int]], params: StreakParams, today: int | None = None) -> StreakSummary:
    """Walk the active periods once, in order, applying grace and freeze tokens."""
    tokens = used = run = longest = since_token = 0
    previous_last: int | None = None
    for first, last in intervals:
        if previous_last is not None:
            excess = max(first - previous_last - 1 - params.grace, 0)
            if excess <= tokens:
                tokens -= excess
                used += excess
            else:
                run = since_token = 0
        length = last - first + 1
        if params.freeze_every:
            earned, since_token = divmod(since_token + length, params.freeze_every)
            tokens = min(params.max_freezes, tokens + earned)
        run += length
        longest = max(longest, run)
        previous_last = last
    if previous_last is None:
        return StreakSummary(0, 0, tokens, used, None, None)
    deadline = previous_last + 1 + params.grace + tokens
    current = run if today is None or today <= deadline else 0
    return StreakSummary(current, longest, tokens, used, previous_last, deadline if current else None)


class StreakRule(ScopedRule):
    final_once_met = True  # a period added after the last one never shortens the longest streak
    name = "streak"
    params_model = StreakParams

    def initial_state(self, params: StreakParams) -> dict[str, Any]:
        return {"periods": []}

    def apply(
        self, params: StreakParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        if not params.matches(event):
            return None
        periods = add_period(state.get("periods", []), period_of(event.time, ctx.timezone, params.unit))
        return None if periods is None else {"periods": periods}

    def progress(self, params: StreakParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        today = period_of(ctx.now, ctx.timezone, params.unit) if ctx and ctx.now else None
        summary = summarize(state.get("periods", []), params, today)
        detail: dict[str, Any] = {
            "current": summary.current,
            "longest": summary.longest,
            "freezes": summary.freezes,
            "freezes_used": summary.freezes_used,
        }
        if summary.deadline is not None:
            detail["act_by"] = period_end(summary.deadline, params.unit).isoformat()
            if today is not None:
                detail["periods_left"] = summary.deadline - today + 1
        unit = f"{params.unit}s in a row"
        return Progress(
            current=summary.current,
            target=params.target,
            unit=unit,
            earned=summary.longest >= params.target,
            detail=detail,
        )

    def standing(self, params: StreakParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Standing:
        # earned by the longest streak, which does not depend on today (nor, so, on ctx.now)
        return MET if summarize(state.get("periods", []), params).longest >= params.target else NOT_MET


RULE: RuleType = StreakRule()


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
