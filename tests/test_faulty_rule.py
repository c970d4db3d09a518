"""A rule that raises (a plugin's bug) on one event: the ingest goes on, the batch is stored, the
event's outcome names the achievement, the rule and the error, and standing is the same in any
delivery order (a live ingest and a replay both skip the event for that achievement)."""

import random
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from smallwins.core.config import parse_catalogue
from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.plugins import PluginHost
from smallwins.core.rules import Progress, RuleContext
from smallwins.core.store import Store, StoredEvent, open_store
from tests.conftest import T0, Clock
from tests.rules_helpers import held


class CountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: int = 3


class ExplodingCount:
    """Counts posts, and raises on one that carries ``data.explode``."""

    name = "exploding_count"
    params_model = CountParams

    def triggers(self, params: CountParams) -> frozenset[str]:
        return frozenset({"message.posted"})

    def initial_state(self, params: CountParams) -> dict[str, Any]:
        return {"n": 0}

    def apply(self, params: CountParams, state: Mapping[str, Any], event: Event, ctx: RuleContext) -> dict[str, Any]:
        if event.data.get("explode"):
            raise ValueError("rule exploded")
        return {"n": state["n"] + 1}

    def progress(self, params: CountParams, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        return Progress(state["n"], params.target, "posts")


def engine_with_faulty_rule(store: Store, clock: Clock) -> Engine:
    rule_types = {**PluginHost().rule_types(), "exploding_count": ExplodingCount()}
    catalogue = parse_catalogue(
        {
            "achievements": {
                "fragile": {"name": "Fragile", "description": "three posts", "rule": "exploding_count", "target": 3},
                "first": {"name": "First", "description": "one post", "rule": "count", "events": ["message.posted"]},
            }
        },
        rule_types,
        path=Path("test.toml"),
    )
    return Engine(store, catalogue, clock=clock)


def posts(make_event: Callable[..., Event]) -> list[Event]:
    """Four posts of one member, the second exploding, and one post of another member."""
    return [
        *(
            make_event(subject="ada", at=T0 + timedelta(hours=n), id=f"p{n}", **({"explode": True} if n == 1 else {}))
            for n in range(4)
        ),
        make_event(subject="bob", at=T0, id="b0"),
    ]


def test_a_rule_that_raises_skips_the_event_and_the_batch_goes_on(
    store: Store, clock: Clock, make_event: Callable[..., Event]
) -> None:
    engine = engine_with_faulty_rule(store, clock)
    outcomes = list(engine.ingest_many(posts(make_event)))
    assert all(outcome.stored for outcome in outcomes)
    warning = outcomes[1].warning or ""
    assert "'fragile'" in warning and "'exploding_count'" in warning and "ValueError: rule exploded" in warning
    assert [o.warning for i, o in enumerate(outcomes) if i != 1] == [None] * 4
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredEvent)) == 5
    # The exploding post counts for the other achievement, and three good posts still earn this one.
    assert held(store, "discord:ada") == {"fragile": None, "first": None}
    assert held(store, "discord:bob") == {"first": None}


def test_a_faulty_rule_gives_the_same_standing_in_any_order(
    tmp_path: Path, clock: Clock, make_event: Callable[..., Event]
) -> None:
    events = posts(make_event)[:3]  # two good posts and the exploding one: not yet three
    standings = []
    for attempt in range(4):
        order = events[:]
        random.Random(attempt).shuffle(order)
        store = open_store(f"sqlite:///{tmp_path}/order{attempt}.db")
        try:
            engine = engine_with_faulty_rule(store, clock)
            for event in order:  # one by one: a late earlier event makes the batch replay from history
                engine.ingest(event)
            standings.append(held(store, "discord:ada"))
        finally:
            store.close()
    assert standings == [{"first": None}] * 4
