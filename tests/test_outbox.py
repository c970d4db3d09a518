"""The outbox: presenters get every change; one that is down loses nothing."""

import json
from pathlib import Path

import anyio
from sqlalchemy import select

from smallwins.core.contract import MemberSnapshot, OutboxChange
from smallwins.core.engine import Engine
from smallwins.core.outbox import deliver, pending_count
from smallwins.core.store import PresenterCursor, Store
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
    assert pending_count(store, "flaky") == 2
    flaky.down = False
    assert anyio.run(deliver, store, engine.catalogue, {"flaky": flaky}) == {"flaky": 2}
    assert anyio.run(deliver, store, engine.catalogue, {"flaky": flaky}) == {"flaky": 0}
    assert len(flaky.seen) == 2 and pending_count(store, "flaky") == 0
    with store.sessions() as session:
        assert session.scalars(select(PresenterCursor.last_outbox_id)).one() == max(flaky.seen)


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
