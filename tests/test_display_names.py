"""A member's display name is the one their latest event (in event time) carried, whatever order
events arrive in, in one batch or many; a merge keeps the later of the two names."""

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef
from smallwins.core.rules import Catalogue
from smallwins.core.store import Store, open_store
from smallwins.core.views import find_member
from tests.conftest import T0, Clock


def name_of(store: Store, ref: str) -> str:
    with store.sessions() as session:
        return find_member(session, ref).display_name


def history(make_event: Callable[..., Event]) -> list[Event]:
    """Ada renames herself twice; one event carries no name; Bob's two events share a moment."""
    return [
        make_event(subject="ada", at=T0, id="a0", display_name="ada_l"),
        make_event(subject="ada", at=T0 + timedelta(hours=1), id="a1"),
        make_event(subject="ada", at=T0 + timedelta(hours=2), id="a2", display_name="Ada L."),
        make_event(subject="ada", at=T0 + timedelta(hours=3), id="a3", display_name="Ada Lovelace"),
        make_event(subject="ada", at=T0 + timedelta(hours=4), id="a4"),
        make_event(subject="bob", at=T0, id="b0", display_name="Bob"),
        make_event(subject="bob", at=T0, id="b1", display_name="Bobby"),
    ]


def test_the_latest_named_event_names_the_member_in_any_order(
    tmp_path: Path, catalogue: Catalogue, clock: Clock, make_event: Callable[..., Event]
) -> None:
    events = history(make_event)
    for attempt in range(6):
        order = events[:]
        random.Random(attempt).shuffle(order)
        store = open_store(f"sqlite:///{tmp_path}/names{attempt}.db")
        try:
            engine = Engine(store, catalogue, clock=clock)
            if attempt % 2:  # one batch, or one event per transaction
                list(engine.ingest_many(order))
            else:
                for event in order:
                    engine.ingest(event)
            assert (name_of(store, "discord:ada"), name_of(store, "discord:bob")) == ("Ada Lovelace", "Bobby"), order
        finally:
            store.close()


def test_a_first_event_without_a_name_does_not_leave_a_placeholder(
    engine: Engine, store: Store, make_event: Callable[..., Event]
) -> None:
    list(engine.ingest_many([
        make_event(type="reaction.added", subject="5001", at=T0, target="discord:zzz"),
        make_event(subject="5001", at=T0 + timedelta(hours=1), display_name="Ada"),
    ]))
    assert name_of(store, "discord:5001") == "Ada"
    engine.ingest(make_event(subject="5001", at=T0 + timedelta(hours=2), display_name="Ada Lovelace"))
    assert name_of(store, "Ada Lovelace") == "Ada Lovelace"


def test_a_merge_keeps_the_later_name(engine: Engine, store: Store, make_event: Callable[..., Event]) -> None:
    engine.ingest(make_event(subject="d1", at=T0 + timedelta(hours=5), display_name="Ada (Discord)"))
    engine.ingest(make_event(subject="UCyt1", source="youtube", type="comment.posted", at=T0, display_name="Ada YT"))
    code = engine.issue_link_code(AccountRef("youtube", "UCyt1"))  # the YouTube member survives
    engine.redeem_link_code(code, AccountRef("discord", "d1"))
    assert name_of(store, "youtube:UCyt1") == name_of(store, "discord:d1") == "Ada (Discord)"
