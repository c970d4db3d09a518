"""Several ingest processes sharing one PostgreSQL: ``smallwins ingest FILE --workers N``.

Work is partitioned by account (:mod:`smallwins.core.partitions`), so one account's events stay
in one process and in their order there. Each worker streams the whole file and keeps its own
share (memory stays flat), ingesting through the same engine as one process would; a line whose
owner cannot be told (broken JSON, no account) is worker 0's to parse and report, so the command
needs no pass over the file of its own before the workers start. An approval
for a contribution of another partition's member is handed to that member's worker instead of
locking the member (:mod:`smallwins.core.pipeline.handoff`), so workers do not wait for each
other's batches; when they are done, the command replays whatever handoff is left. The store's
unique keys, row locks and the engine's event-time replay make the outcome the same as a single
process's, whatever the interleaving. A worker that dies loses nothing stored: running the
command again finishes the job, because ingest is idempotent.
"""

from __future__ import annotations

import codecs
import json
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import structlog

from smallwins.core.events import Event
from smallwins.core.partitions import Partition, account_partition
from smallwins.core.pipeline.ingest import BULK_BATCH_SIZE
from smallwins.core.pipeline.outcomes import IngestReport

log = structlog.get_logger(__name__)

#: Warnings (an unknown event type, a retraction of another source's event) each worker sends
#: back for the command to print; a file full of them is summed up beyond this.
MAX_WARNINGS = 1_000
#: Events a worker ingests between updates of the command's progress counter.
PROGRESS_EVERY = 500


def partition_of(event: Event, workers: int) -> int:
    """Which of ``workers`` processes ingests this event: stable for an account."""
    return account_partition(event.source, event.subject, workers)


def owner_of_line(raw: bytes, workers: int) -> int:
    """A cheap look at a normalized line: which worker's is it?

    Validating an event costs far more than reading two fields, and every worker reads every
    line: lines of other partitions are skipped before validation. A line whose account cannot
    be read this way (broken JSON, not an object, no string source or subject) is worker 0's:
    its full parse reports the problem, once.
    """
    try:
        payload = json.loads(raw.removeprefix(codecs.BOM_UTF8))  # as the full parse reads a first line
    except ValueError:
        return 0
    if not isinstance(payload, dict):
        return 0
    source, subject = payload.get("source"), payload.get("subject")
    if not isinstance(source, str) or not isinstance(subject, str):
        return 0
    return account_partition(source.strip(), subject.strip(), workers)


@dataclass(frozen=True)
class WorkerJob:
    config: Path
    database: str
    file: Path
    source: str | None
    index: int
    workers: int
    batch_size: int


class WorkerFailed(RuntimeError):
    """One or more workers exited abnormally; what they stored stays stored."""


@dataclass
class ParallelReport(IngestReport):
    """The workers' summed totals, and the lines they refused: (line number, why), in file order."""

    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)


def _events_of(app: Any, job: WorkerJob, rejected: list[tuple[int, str]]) -> Iterator[Event]:
    """This worker's events of the file; the lines it is to report as refused go to ``rejected``."""
    from smallwins.adapters.jsonl import parse_line, read_lines

    if job.source is not None:  # platform payloads: only the source's normalizer knows the account
        normalize = app.normalizer(job.source)
        for result in read_lines(job.file, normalize=normalize):
            if result.error is not None and job.index == 0:  # every worker met it: one reports it
                rejected.append((result.line_number, result.error))
            yield from (e for e in result.events if partition_of(e, job.workers) == job.index)
        return
    with job.file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip() or owner_of_line(raw, job.workers) != job.index:
                continue
            parsed = parse_line(number, raw)
            if parsed is None:
                continue
            if parsed.error is not None:
                rejected.append((number, parsed.error))
            yield from (e for e in parsed.events if partition_of(e, job.workers) == job.index)


def run_worker(job: WorkerJob, progress: Synchronized, results: Any) -> None:
    """One worker process: ingest this partition, count progress, report its totals."""
    from smallwins.core.app import build_app
    from smallwins.core.logs import configure_logging

    configure_logging("WARNING")
    app = build_app(job.config, database_url=job.database)
    app.engine.partition = Partition(job.index, job.workers)
    report = IngestReport()
    rejected: list[tuple[int, str]] = []
    counted = 0
    try:
        for outcome in app.engine.ingest_many(_events_of(app, job, rejected), batch_size=job.batch_size):
            report.add(outcome)
            counted += 1
            if counted == PROGRESS_EVERY:  # the shared counter's lock is taken now and then, not per event
                with progress.get_lock():
                    progress.value += counted
                counted = 0
    finally:
        app.close()
    with progress.get_lock():
        progress.value += counted
    results.put(
        {
            "index": job.index,
            "stored": report.stored,
            "duplicates": report.duplicates,
            "awarded": report.awarded,
            "warnings": report.told()[:MAX_WARNINGS],
            "warnings_left_out": max(0, len(report.told()) - MAX_WARNINGS),
            "rejected": len(rejected),
            "rejections": rejected[:MAX_WARNINGS],
        }
    )


def ingest_parallel(
    config: Path,
    database: str,
    file: Path,
    *,
    workers: int,
    source: str | None = None,
    batch_size: int = BULK_BATCH_SIZE,
    on_progress: Callable[[int], None] | None = None,
    poll_seconds: float = 0.2,
) -> ParallelReport:
    """Ingest ``file`` with ``workers`` processes; their summed totals, warnings and refused lines
    (at most :data:`MAX_WARNINGS` of each per worker). Raises :class:`WorkerFailed`."""
    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    progress = context.Value("q", 0)
    results = context.Queue()
    processes = [
        context.Process(
            target=run_worker,
            args=(WorkerJob(config, database, file, source, index, workers, batch_size), progress, results),
            name=f"smallwins-ingest-{index}",
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    totals = ParallelReport()
    reported = 0
    while any(p.is_alive() for p in processes) or not results.empty():
        while not results.empty():
            _add_worker_result(totals, results.get())
            reported += 1
        if on_progress is not None:
            on_progress(progress.value)
        for process in processes:
            process.join(timeout=poll_seconds / workers)
    failed = [p for p in processes if p.exitcode != 0]
    while reported < workers - len(failed):  # a worker's last put may land after it exits
        _add_worker_result(totals, results.get(timeout=10))
        reported += 1
    totals.rejections.sort()
    totals.awarded += drain_handoffs(config, database)
    log.info(
        "workers.finished", workers=workers, failed=len(failed), stored=totals.stored,
        duplicates=totals.duplicates, awarded=totals.awarded,
    )
    if failed:
        codes = ", ".join(f"worker {p.name.rsplit('-', 1)[1]} exited with {p.exitcode}" for p in failed)
        raise WorkerFailed(f"{codes}; what was stored stays: run the same command again to finish")
    return totals


def _add_worker_result(totals: ParallelReport, result: dict[str, Any]) -> None:
    totals.stored += result["stored"]
    totals.duplicates += result["duplicates"]
    totals.awarded += result["awarded"]
    totals.warnings += result["warnings"]
    if result["warnings_left_out"]:
        totals.warnings.append(f"worker {result['index']}: {result['warnings_left_out']} more warnings left out")
    totals.rejected += result["rejected"]
    totals.rejections += [(number, error) for number, error in result["rejections"]]


def drain_handoffs(config: Path, database: str) -> int:
    """Apply the approvals handed to a worker that had finished (or died); what they awarded."""
    from smallwins.core.app import build_app

    app = build_app(config, database_url=database)
    try:
        return app.engine.drain_handoffs()
    finally:
        app.close()
