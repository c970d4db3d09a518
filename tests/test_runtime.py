"""`smallwins run`'s machinery: the jsonl source follows a growing file; presenters get the results."""

import json
from pathlib import Path

import anyio
from sqlalchemy import func, select

from smallwins.core.app import build_app
from smallwins.core.store import StoredEvent

REPO = Path(__file__).resolve().parent.parent


def test_capture_tasks_and_outbox_run_together(tmp_path: Path, database_url: str) -> None:
    from smallwins.core.runtime import run

    incoming = tmp_path / "incoming.jsonl"
    (tmp_path / "achievements.toml").write_text((REPO / "tests/data/catalogue.toml").read_text())
    (tmp_path / "plugins.toml").write_text(
        f"[plugins.jsonl]\nenabled = true\npath = '{incoming}'\npoll_seconds = 0.05\n"
        f"[plugins.web_widget]\nenabled = true\noutput_dir = '{tmp_path / 'widgets'}'\n"
    )
    app = build_app(tmp_path / "plugins.toml", database_url=database_url)

    def line(i: int) -> str:
        return (
            json.dumps(
                {
                    "id": f"m{i}",
                    "source": "discord",
                    "type": "message.posted",
                    "subject": "d1",
                    "time": "2026-03-02T12:00:00Z",
                }
            )
            + "\n"
        )

    def awarded(widget: Path) -> set[str]:
        return {a["id"] for a in json.loads(widget.read_text())["awards"]} if widget.exists() else set()

    def stored() -> int:
        with app.store.sessions() as session:
            return session.scalar(select(func.count()).select_from(StoredEvent)) or 0

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: run(app, outbox_interval=0.05))
            incoming.write_text("".join(line(i) for i in range(3)))
            with anyio.fail_after(20):
                while stored() < 3:
                    await anyio.sleep(0.05)
                with incoming.open("a") as handle:  # the file grows while we run
                    handle.write(line(3) + line(4)[:20])  # a writer caught mid-line
                await anyio.sleep(0.2)
                with incoming.open("a") as handle:
                    handle.write(line(4)[20:] + line(0))  # m0 again: a duplicate
                widget = tmp_path / "widgets" / "members" / "1.json"
                while "regular" not in awarded(widget):
                    await anyio.sleep(0.05)
            group.cancel_scope.cancel()

    anyio.run(scenario)
    assert stored() == 5
    app.close()


def test_a_failing_presenter_backs_off_and_loses_nothing(tmp_path: Path, database_url: str) -> None:
    from smallwins.core.contract import MemberSnapshot, OutboxChange
    from smallwins.core.events import parse_event
    from smallwins.core.outbox import pending_count
    from smallwins.core.runtime import backoff_seconds, dispatch_forever

    assert [backoff_seconds(n, 2.0) for n in range(5)] == [0.0, 4.0, 8.0, 16.0, 32.0]
    assert backoff_seconds(20, 2.0) == 300.0, "capped at five minutes"
    (tmp_path / "plugins.toml").write_text(
        f"[smallwins]\ncatalogue = '{REPO / 'tests/data/catalogue.toml'}'\n"
        f"[plugins.web_widget]\nenabled = true\noutput_dir = '{tmp_path / 'widgets'}'\n"
    )
    app = build_app(tmp_path / "plugins.toml", database_url=database_url)
    attempts: list[int] = []

    class Down:
        async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
            attempts.append(change.id)
            raise ConnectionError("platform unreachable")

    app._presenters = {"web_widget": Down()}
    event = {"id": "m1", "source": "discord", "type": "message.posted", "subject": "d1", "time": "2026-03-02T12:00:00Z"}
    app.engine.ingest(parse_event(json.dumps(event)))

    async def for_a_while() -> None:
        with anyio.move_on_after(0.62):
            await dispatch_forever(app, interval=0.02)

    try:
        anyio.run(for_a_while)
        # Every 0.02 s would be ~30 tries; resting 0.04, 0.08, 0.16, 0.32 s between them leaves ~5.
        assert 2 <= len(attempts) <= 6, attempts
        assert pending_count(app.store, "web_widget") == 2, "nothing was skipped while it failed"
    finally:
        app.close()
