"""A forum source, an awards-file presenter and a ``long_post`` rule type, in one plugin.

Enable it in plugins.toml::

    [plugins.example]                 # the entry point
    enabled = true
    forum_url = "https://forum.example"

    [plugins.example.awards_file]     # the presenter component
    path = "out/awards.jsonl"         # relative to plugins.toml

Try the source's ``normalize`` on recorded payloads without any capture task::

    smallwins ingest --source forum payloads.jsonl
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from smallwins.core.contract import MemberSnapshot, OutboxChange, PluginContext, Presenter, PresenterSpec, SourceSpec
from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import Progress, RuleContext, RuleType

# -- the source: a forum's webhook payloads -------------------------------------------------


class ForumSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    forum_url: str = "https://forum.example"


def normalize(payload: Mapping[str, Any]) -> list[Event]:
    """A forum post (``{"post": {...}}``) becomes ``message.posted``; a like names the post it likes."""
    if "post" in payload:
        post = payload["post"]
        return [
            Event(
                id=str(post["id"]),
                source="forum",
                type="message.posted",
                subject=str(post["user_id"]),
                time=datetime.fromisoformat(post["created_at"]),
                proof=f"https://forum.example/p/{post['id']}",
                data={"display_name": post.get("username", ""), "words": len(str(post.get("raw", "")).split())},
            )
        ]
    if "like" in payload:
        like = payload["like"]
        return [
            Event(
                id=f"like-{like['post_id']}-{like['user_id']}",
                source="forum",
                type="reaction.added",
                subject=str(like["user_id"]),
                time=datetime.fromisoformat(like["created_at"]),
                data={"target": f"forum:{like['post_id']}"},
            )
        ]
    return []  # other webhook kinds carry nothing to count


# -- the presenter: one JSON line per change, a file an operator can tail --------------------


class AwardsFileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    forum_url: str = "https://forum.example"
    path: str = "awards.jsonl"


class AwardsFile:
    """Appends ``{kind, member, awards}`` per outbox change; re-applying a change is harmless
    because each line carries the member's whole current state."""

    def __init__(self, context: PluginContext) -> None:
        settings = context.settings
        assert isinstance(settings, AwardsFileSettings)
        self.path = context.path(settings.path)

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {
            "change": change.id,
            "kind": change.kind,
            "member": member.display_name,
            "awards": [a["id"] for a in member.awards],
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")


def create(context: PluginContext) -> Presenter:
    return AwardsFile(context)


# -- the rule type: posts of at least ``min_words`` words ------------------------------------


class LongPostParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_words: int = Field(ge=1)
    threshold: int = Field(default=1, ge=1)


class LongPostRule:
    name = "long_post"
    params_model = LongPostParams

    def triggers(self, params: LongPostParams) -> frozenset[str]:
        return frozenset({"message.posted"})

    def initial_state(self, params: LongPostParams) -> dict[str, Any]:
        return {"count": 0}

    def apply(
        self, params: LongPostParams, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any] | None:
        if int(event.data.get("words", 0)) < params.min_words:
            return None  # never changes, whatever comes before: the rule contract allows None
        return {"count": state.get("count", 0) + 1}

    def progress(self, params: LongPostParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        return Progress(state.get("count", 0), params.threshold, "long posts")


RULE: RuleType = LongPostRule()


@hookimpl
def smallwins_register_sources() -> list[SourceSpec]:
    return [
        SourceSpec(
            name="forum",
            normalize=normalize,
            settings_model=ForumSettings,
            event_types=frozenset({"message.posted", "reaction.added"}),
        )
    ]


@hookimpl
def smallwins_register_presenters() -> list[PresenterSpec]:
    return [PresenterSpec(name="awards_file", create=create, settings_model=AwardsFileSettings)]


@hookimpl
def smallwins_register_rule_types() -> list[RuleType]:
    return [RULE]
