"""The long-running process: every enabled source's capture task plus the outbox dispatcher.

Sources hand batches of events to a sink; ingest runs in a worker thread (database I/O is
blocking) so one slow database call does not stall a gateway's heartbeat.
"""

from __future__ import annotations

import anyio
import structlog

from smallwins.core.app import App
from smallwins.core.contract import EventSink, PresenterSpec
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
        for warning in report.warnings:
            log.warning("runtime.event_warning", source=source, warning=warning)

    return sink


async def dispatch_forever(app: App, *, interval: float) -> None:
    while True:
        applied = await app.deliver()
        if any(applied.values()):
            log.info("runtime.presented", applied=applied)
        await anyio.sleep(interval)


async def run(app: App, *, outbox_interval: float = 2.0) -> None:
    """Run until cancelled (Ctrl-C). A capture task that crashes stops the process loudly."""
    presenters = sorted(name for name, c in app.components.items() if isinstance(c.spec, PresenterSpec))
    log.info("runtime.started", sources=sorted(app.sources()), presenters=presenters, store=app.store.dialect)
    async with anyio.create_task_group() as group:
        for name, spec in app.sources().items():
            if spec.capture is not None:
                log.info("runtime.source_started", source=name, plugin=app.components[name].plugin)
                group.start_soon(spec.capture, app.context(name), make_sink(app, name))
        group.start_soon(lambda: dispatch_forever(app, interval=outbox_interval))
