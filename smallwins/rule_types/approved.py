"""Built-in rule type ``approved_count``: contributions that others approved, not just published.

A contribution counts once it is approved by any of: ``min_reactions`` distinct other members
reacting (a reaction names the contribution in ``data.target``), or one event of an
``approvals`` type (a moderator's approval, "marked helpful") naming it. The approval may come
later, from another platform, or before the contribution itself arrives: the engine routes
events with a target to the contribution's author, in event-time order.

The window is a fact about events, not about delivery: an approval counts when it happened
within ``approval_window_days`` of the contribution. The engine hands events over in event-time
order, so once a member's newer contribution is seen, pending ones older than the window can
never be approved any more and are dropped (which keeps the state small).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from smallwins.core.events import Event, EventType
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import MAX_EVIDENCE, MET, NOT_MET, Progress, RuleContext, RuleType, Standing
from smallwins.rule_types.scope import EventScope, ScopedRule


class ApprovedParams(EventScope):
    threshold: int = Field(default=1, ge=1, le=100_000)
    unit: str = Field(default="approved contributions", max_length=60)
    reactions: list[EventType] = Field(default_factory=lambda: ["reaction.added"])
    min_reactions: int = Field(default=3, ge=0, description="0: reactions never approve")
    approvals: list[EventType] = Field(default_factory=lambda: ["moderator.approved", "answer.marked_helpful"])
    approval_window_days: int = Field(default=30, ge=1, le=3650)


#: ``date(1970, 1, 1).toordinal()``: converts states saved before times were kept (days only).
_EPOCH_ORDINAL = 719163


def _posted_at(entry: Mapping[str, Any]) -> float:
    """When a pending contribution was made, in POSIX seconds."""
    if "at" in entry:
        return float(entry["at"])
    return float((entry.get("day", _EPOCH_ORDINAL) - _EPOCH_ORDINAL) * 86400)


class ApprovedCountRule(ScopedRule):
    final_once_met = True  # the count only grows, and there are no tiers
    name = "approved_count"
    params_model = ApprovedParams

    def target_triggers(self, params: ApprovedParams) -> frozenset[str]:
        return frozenset(params.reactions) | frozenset(params.approvals)

    def initial_state(self, params: ApprovedParams) -> dict[str, Any]:
        return {"approved": 0, "pending": {}, "evidence": []}

    def apply(
        self, params: ApprovedParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        by_self = ctx.actor_member_id in (None, ctx.member_id)
        pending: dict[str, dict[str, Any]] = state.get("pending", {})
        if by_self and params.matches(event):
            if event.key in pending:
                return None
            now, window = event.time.timestamp(), params.approval_window_days * 86400
            kept = {k: p for k, p in pending.items() if p["ok"] is False and now - _posted_at(p) <= window}
            kept[event.key] = {"at": now, "by": [], "ok": False}
            return {**state, "pending": kept}
        target = event.data.get("target")
        entry = pending.get(target) if isinstance(target, str) else None
        if by_self or entry is None or entry["ok"]:
            return None
        if event.time.timestamp() - _posted_at(entry) > params.approval_window_days * 86400:
            return None  # approved too late to count
        if event.type in params.approvals:
            entry = {**entry, "ok": True}
        elif event.type in params.reactions and params.min_reactions:
            voters = entry["by"] if ctx.actor_member_id in entry["by"] else [*entry["by"], ctx.actor_member_id]
            entry = {**entry, "by": voters, "ok": len(voters) >= params.min_reactions}
        else:
            return None
        evidence = list(state.get("evidence", []))
        approved = state.get("approved", 0)
        if entry["ok"]:
            approved += 1
            if len(evidence) < MAX_EVIDENCE:
                evidence.extend([target, event.key])
        return {"approved": approved, "pending": {**pending, target: entry}, "evidence": evidence}

    def progress(self, params: ApprovedParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        waiting = sum(1 for p in state.get("pending", {}).values() if not p["ok"])
        return Progress(
            current=state.get("approved", 0), target=params.threshold, unit=params.unit, detail={"awaiting": waiting}
        )

    def standing(self, params: ApprovedParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Standing:
        return MET if state.get("approved", 0) >= params.threshold else NOT_MET


RULE: RuleType = ApprovedCountRule()


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
