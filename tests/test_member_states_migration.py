"""Migration 0011 moves rule states from a row per (member, achievement) to a row per member,
and back: a store that goes down to 0010 and up again holds the same states, read the same way."""

from __future__ import annotations

from datetime import timedelta

from alembic import command
from sqlalchemy import select, text

from smallwins.core import rule_states
from smallwins.core.engine import Engine
from smallwins.core.migrate import alembic_config, upgrade
from smallwins.core.store import MemberStates, Store
from tests.conftest import T0


def _all_states(store: Store) -> dict[int, dict[str, rule_states.SavedState]]:
    with store.sessions() as session:
        return rule_states.read(session, session.scalars(select(MemberStates.member_id)))


def test_states_survive_a_downgrade_and_an_upgrade(store: Store, catalogue, make_event, clock) -> None:
    engine = Engine(store, catalogue, clock=clock)
    for n in range(6):
        engine.ingest(make_event(subject="ada", at=T0 + timedelta(hours=n)))
        engine.ingest(make_event(subject="bob", source="youtube", type="comment.posted", at=T0 + timedelta(days=n)))
    before = _all_states(store)
    assert len(before) == 2 and all(saved.seen_time is not None for s in before.values() for saved in s.values())
    assert any(saved.met for s in before.values() for saved in s.values()), "something was earned"

    command.downgrade(alembic_config(store.engine), "0010")
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT member_id, achievement_id, met, seen_key FROM rule_states")).all()
    assert sorted((m, a, bool(met), key) for m, a, met, key in rows) == sorted(
        (m, a, saved.met, saved.seen_key) for m, states in before.items() for a, saved in states.items()
    )

    upgrade(store.engine)
    assert _all_states(store) == before
    later = engine.ingest(make_event(subject="ada", at=T0 + timedelta(hours=7)))
    assert later.stored, "the engine goes on from the migrated states"
    assert _all_states(store)[later.member_id]["regular"].state["count"] == before[later.member_id]["regular"].state[
        "count"
    ] + 1
