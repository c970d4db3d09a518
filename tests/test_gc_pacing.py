"""Full garbage collections are paced while an ingest runs, and the process's pacing comes back."""

import gc
import threading
from collections.abc import Callable, Iterator

from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.gc_pacing import FULL_COLLECTION_EVERY, fewer_full_collections


def test_an_ingest_paces_full_collections_and_restores_the_pacing(
    engine: Engine, make_event: Callable[..., Event]
) -> None:
    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []

    def events() -> Iterator[Event]:
        for n in range(5):
            during.append(gc.get_threshold())
            yield make_event(subject=f"gc{n}")

    outcomes = list(engine.ingest_many(events(), batch_size=2))
    assert [o.stored for o in outcomes] == [True] * 5
    assert during and all(threshold[2] >= FULL_COLLECTION_EVERY for threshold in during)
    assert during[0][:2] == before[:2], "young generations keep their pacing"
    assert gc.get_threshold() == before


def test_an_abandoned_ingest_restores_the_pacing(engine: Engine, make_event: Callable[..., Event]) -> None:
    before = gc.get_threshold()
    outcomes = engine.ingest_many((make_event(subject=f"a{n}") for n in range(4)), batch_size=2)
    assert next(outcomes).stored
    assert gc.get_threshold()[2] >= FULL_COLLECTION_EVERY
    outcomes.close()
    assert gc.get_threshold() == before


def test_overlapping_uses_restore_the_pacing_when_the_last_ends() -> None:
    before = gc.get_threshold()
    first_inside, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        with fewer_full_collections():
            first_inside.set()
            release.wait(5)

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert first_inside.wait(5)
    with fewer_full_collections():
        with fewer_full_collections():
            pass
        assert gc.get_threshold()[2] >= FULL_COLLECTION_EVERY, "an inner use ending keeps the outer pacing"
    assert gc.get_threshold()[2] >= FULL_COLLECTION_EVERY, "the other thread's ingest still runs"
    release.set()
    thread.join(5)
    assert gc.get_threshold() == before
