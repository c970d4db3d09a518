"""The long-running process: every enabled source's capture task plus the outbox dispatcher.

Sources hand batches of events to a sink; ingest runs in a worker thread (database I/O is
blocking) so one slow database call does not stall a gateway's heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import structlog

from smallwins.core import outbox
from smallwins.core.app import App
from smallwins.core.contract import EventSink
from smallwins.core.engine import IngestReport
from smallwins.core.events import Event

log = structlog.get_logger(__name__)


def make_sink(app: App, source: str) -> EventSink:
    async def sink(events: list[Event]) -> None:
        if not events:
            return
        report = IngestReport()

        def ingest() -> None:
            for outcome in app.engine.ingest_many(events):
                report.add(outcome)

        await anyio.to_thread.run_sync(ingest)
        log.info(
            "runtime.ingested",
            source=source,
            stored=report.stored,
            duplicates=report.duplicates,
            awarded=report.awarded,
        )
        for warning in report.told():
            log.warning("runtime.event_warning", source=source, warning=warning)

    return sink


#: Longest wait before trying a failing presenter again.
MAX_BACKOFF_SECONDS = 300.0


def backoff_seconds(failures: int, interval: float) -> float:
    """How long a presenter that failed ``failures`` rounds in a row rests: doubling, capped."""
    return 0.0 if failures <= 0 else min(interval * 2.0**failures, MAX_BACKOFF_SECONDS)


async def dispatch_forever(app: App, *, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Deliver every ``interval`` seconds; a presenter whose platform keeps failing backs off
    (2, 4, 8... intervals, at most five minutes) instead of being hammered every round."""
    failures: dict[str, int] = {}
    resting_until: dict[str, float] = {}
    while True:
        now = clock()
        due = {name for name in app.presenter_names() if resting_until.get(name, 0.0) <= now}
        applied = await app.deliver(only=due) if due else {}
        if any(applied.values()):
            log.info("runtime.presented", applied=applied)
        for name in due:
            if outbox.delivery_state(app.store, name)["status"] == "ok":
                failures.pop(name, None)
                continue
            failures[name] = failures.get(name, 0) + 1
            wait = backoff_seconds(failures[name], interval)
            resting_until[name] = now + wait
            log.warning("runtime.presenter_backing_off", presenter=name, failures=failures[name], seconds=wait)
        await anyio.sleep(interval)


async def run(app: App, *, outbox_interval: float = 2.0) -> None:
    """Run until cancelled (Ctrl-C). A capture task that crashes stops the process loudly."""
    log.info(
        "runtime.started", sources=sorted(app.sources()), presenters=app.presenter_names(), store=app.store.dialect
    )
    async with anyio.create_task_group() as group:
        for name, spec in app.sources().items():
            if spec.capture is not None:
                log.info("runtime.source_started", source=name, plugin=app.components[name].plugin)
                group.start_soon(spec.capture, app.context(name), make_sink(app, name))
        group.start_soon(lambda: dispatch_forever(app, interval=outbox_interval))
