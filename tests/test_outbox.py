"""The outbox: presenters get every change; one that is down loses nothing."""

import json
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select

from smallwins.core.contract import MemberSnapshot, OutboxChange, PermanentDeliveryError
from smallwins.core.engine import Engine
from smallwins.core.outbox import deliver, delivery_state, parked_changes, pending_count, retry_parked
from smallwins.core.store import PresenterCursor, Store, open_store
from smallwins.presenters.web_widget import WebWidgetPresenter


class FlakyPresenter:
    """Fails while ``down`` is set, like a platform API that is unreachable."""

    def __init__(self) -> None:
        self.down = True
        self.seen: list[int] = []

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        if self.down:
            raise ConnectionError("platform unreachable")
        self.seen.append(change.id)


def test_presenter_down_loses_nothing(engine: Engine, store: Store, make_event) -> None:
    for i in range(5):
        engine.ingest(make_event(subject=f"u{i % 2}"))  # 2 members: First Words each, Regular for none
    flaky = FlakyPresenter()
    assert anyio.run(deliver, store, engine.catalogue, {"flaky": flaky}) == {"flaky": 0}
    assert pending_count(store, "flaky") == 4  # each member joined, each earned First Words
    state = delivery_state(store, "flaky")
    assert str(state["status"]).startswith("failing on change") and "unreachable" in str(state["status"])
    flaky.down = False
    assert anyio.run(deliver, store, engine.catalogue, {"flaky": flaky}) == {"flaky": 4}
    assert anyio.run(deliver, store, engine.catalogue, {"flaky": flaky}) == {"flaky": 0}
    assert len(flaky.seen) == 4 and pending_count(store, "flaky") == 0
    state = delivery_state(store, "flaky")
    assert state == {"pending": 0, "parked": 0, "status": "ok"}, "the failure is forgotten once past"
    with store.sessions() as session:
        assert session.scalars(select(PresenterCursor.last_outbox_id)).one() == max(flaky.seen)


class PickyPresenter:
    """Refuses one member for good (like a Discord member above the bot's role): others go through."""

    def __init__(self, refused: int) -> None:
        self.refused: int | None = refused
        self.seen: list[int] = []

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        if member.member_id == self.refused:
            raise PermanentDeliveryError(f"403 Missing Permissions for member {member.member_id}")
        self.seen.append(change.id)


def test_permanent_failure_is_parked_and_does_not_block_others(engine: Engine, store: Store, make_event) -> None:
    first = engine.ingest(make_event(subject="u0")).member_id
    second = engine.ingest(make_event(subject="u1")).member_id
    picky = PickyPresenter(refused=first)
    assert anyio.run(deliver, store, engine.catalogue, {"picky": picky}) == {"picky": 2}, "u1's two changes"
    assert pending_count(store, "picky") == 0, "the cursor moved past the refused changes"
    parked = parked_changes(store, "picky")
    assert [p.member_id for p in parked] == [first, first] and "Missing Permissions" in parked[0].reason
    assert delivery_state(store, "picky")["parked"] == 2
    assert anyio.run(retry_parked, store, engine.catalogue, {"picky": picky}) == (0, 2)
    assert parked_changes(store, "picky")[0].attempts == 2, "a failed retry is counted"
    picky.refused = None  # the operator fixed the permission
    assert anyio.run(retry_parked, store, engine.catalogue, {"picky": picky}) == (2, 0)
    assert parked_changes(store) == [] and len(picky.seen) == 4
    assert second != first


def test_web_widget_is_idempotent_and_repairs_drift(engine: Engine, store: Store, tmp_path: Path, make_event) -> None:
    member_id = engine.ingest(make_event(display_name="Ada")).member_id
    widget = WebWidgetPresenter(tmp_path)
    anyio.run(deliver, store, engine.catalogue, {"web_widget": widget})
    path = widget.path_for(member_id)
    document = json.loads(path.read_text())
    assert document["display_name"] == "Ada" and [a["id"] for a in document["awards"]] == ["first-words"]
    assert {p["id"]: p["text"] for p in document["progress"]}["regular"] == "1 of 5 contributions"
    before = path.stat().st_mtime_ns
    change = OutboxChange(id=0, member_id=member_id, kind="award", payload={})
    from smallwins.core.views import member_snapshot

    with store.sessions() as session:
        snapshot = member_snapshot(session, engine.catalogue, member_id)
    anyio.run(widget.apply, change, snapshot)
    assert path.stat().st_mtime_ns == before, "the same state twice writes nothing"
    path.write_text("{}")  # drift: someone edited the file by hand
    anyio.run(widget.apply, change, snapshot)
    assert json.loads(path.read_text()) == document


def test_every_member_gets_a_widget_file_others_can_read(
    engine: Engine, store: Store, tmp_path: Path, make_event
) -> None:
    """A member with nothing earned still has a document (no 404s), written 0644 under umask 022."""
    import os

    old_umask = os.umask(0o022)
    try:
        from smallwins.presenters import web_widget

        widget = web_widget.WebWidgetPresenter(tmp_path)
        web_widget.FILE_MODE = web_widget._file_mode()
        member_id = engine.ingest(make_event("reaction.added", subject="lurker")).member_id
        assert member_id is not None
        anyio.run(deliver, store, engine.catalogue, {"web_widget": widget})
        path = widget.path_for(member_id)
        assert json.loads(path.read_text())["awards"] == []
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old_umask)


class SlowRecorder:
    """A presenter that takes a moment per change, so two runtimes would overlap."""

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        await anyio.sleep(0.002)
        self.seen.append(change.id)


@pytest.mark.postgres
def test_two_runtimes_on_postgresql_deliver_each_change_once(engine: Engine, store: Store, make_event) -> None:
    if store.dialect != "postgresql":
        pytest.skip("the delivery lease is PostgreSQL's; SQLite has one runtime per file")
    for i in range(40):
        engine.ingest(make_event(subject=f"u{i % 20}"))
    other = open_store(store.engine.url.render_as_string(hide_password=False))
    seen: list[int] = []

    async def both() -> list[dict[str, int]]:
        results: list[dict[str, int]] = []

        async def run(on: Store) -> None:
            results.append(await deliver(on, engine.catalogue, {"widget": SlowRecorder(seen)}, batch_size=10))

        async with anyio.create_task_group() as group:
            group.start_soon(run, store)
            group.start_soon(run, other)
        return results

    try:
        results = anyio.run(both)
    finally:
        other.close()
    assert sorted(r["widget"] for r in results) == [0, len(seen)], "one runtime held the lease, the other skipped"
    assert len(seen) == len(set(seen)) == pending_total(store), "every change applied exactly once"


def pending_total(store: Store) -> int:
    from smallwins.core.store import OutboxItem

    with store.sessions() as session:
        return len(list(session.scalars(select(OutboxItem.id))))
