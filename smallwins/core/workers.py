"""Several ingest processes sharing one PostgreSQL: ``smallwins ingest FILE --workers N``.

Work is partitioned by account (``crc32(source:subject) % N``), so one account's events stay in
one process and in their order there, and processes rarely wait on each other's member locks.
Each worker streams the whole file and keeps its own share (memory stays flat), ingesting
through the same engine as one process would; the store's unique keys, row locks and the
engine's event-time replay make the outcome the same as a single process's, whatever the
interleaving. A worker that dies loses nothing stored: running the command again finishes the
job, because ingest is idempotent.
"""

from __future__ import annotations

import json
import multiprocessing
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

import structlog

from smallwins.core.events import Event

log = structlog.get_logger(__name__)


def partition_of(event: Event, workers: int) -> int:
    """Which of ``workers`` processes ingests this event: stable for an account."""
    return account_partition(event.source, event.subject, workers)


def account_partition(source: str, subject: str, workers: int) -> int:
    return zlib.crc32(f"{source}:{subject}".encode()) % workers


def _someone_elses(raw: bytes, job: WorkerJob) -> bool:
    """A cheap look at a normalized line: does it clearly belong to another worker?

    Validating an event costs far more than reading two fields, and every worker reads every
    line: lines of other partitions are skipped before validation. Anything unusual is left to
    the full parse (and reported by the command, not here).
    """
    try:
        payload = json.loads(raw)
    except ValueError:
        return True  # the command reports bad lines once; workers skip them
    if not isinstance(payload, dict):
        return True
    source, subject = payload.get("source"), payload.get("subject")
    if not isinstance(source, str) or not isinstance(subject, str):
        return False
    return account_partition(source.strip(), subject.strip(), job.workers) != job.index


@dataclass(frozen=True)
class WorkerJob:
    config: Path
    database: str
    file: Path
    source: str | None
    index: int
    workers: int


class WorkerFailed(RuntimeError):
    """One or more workers exited abnormally; what they stored stays stored."""


def _events_of(app: Any, job: WorkerJob) -> Iterator[Event]:
    from smallwins.adapters.jsonl import parse_line, read_lines

    if job.source is not None:  # platform payloads: only the source's normalizer knows the account
        normalize = app.normalizer(job.source)
        for result in read_lines(job.file, normalize=normalize):
            yield from (e for e in result.events if partition_of(e, job.workers) == job.index)
        return
    with job.file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip() or _someone_elses(raw, job):
                continue
            parsed = parse_line(number, raw)
            if parsed is not None:
                yield from (e for e in parsed.events if partition_of(e, job.workers) == job.index)


def run_worker(job: WorkerJob, progress: Synchronized, results: Any) -> None:
    """One worker process: ingest this partition, count progress, report its totals."""
    from smallwins.core.app import build_app
    from smallwins.core.engine import IngestReport
    from smallwins.core.logs import configure_logging

    configure_logging("WARNING")
    app = build_app(job.config, database_url=job.database)
    report = IngestReport()
    try:
        for outcome in app.engine.ingest_many(_events_of(app, job)):
            report.add(outcome)
            with progress.get_lock():
                progress.value += 1
    finally:
        app.close()
    results.put(
        {"index": job.index, "stored": report.stored, "duplicates": report.duplicates, "awarded": report.awarded}
    )


def ingest_parallel(
    config: Path,
    database: str,
    file: Path,
    *,
    workers: int,
    source: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    poll_seconds: float = 0.2,
) -> dict[str, int]:
    """Ingest ``file`` with ``workers`` processes; their summed totals. Raises :class:`WorkerFailed`."""
    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    progress = context.Value("q", 0)
    results = context.Queue()
    processes = [
        context.Process(
            target=run_worker,
            args=(WorkerJob(config, database, file, source, index, workers), progress, results),
            name=f"smallwins-ingest-{index}",
        )
        for index in range(workers)
    ]
    for process in processes:
        process.start()
    totals = {"stored": 0, "duplicates": 0, "awarded": 0}
    reported = 0
    while any(p.is_alive() for p in processes) or not results.empty():
        while not results.empty():
            for key, value in results.get().items():
                if key in totals:
                    totals[key] += value
            reported += 1
        if on_progress is not None:
            on_progress(progress.value)
        for process in processes:
            process.join(timeout=poll_seconds / workers)
    failed = [p for p in processes if p.exitcode != 0]
    while reported < workers - len(failed):  # a worker's last put may land after it exits
        for key, value in results.get(timeout=10).items():
            if key in totals:
                totals[key] += value
        reported += 1
    log.info("workers.finished", workers=workers, failed=len(failed), **totals)
    if failed:
        codes = ", ".join(f"worker {p.name.rsplit('-', 1)[1]} exited with {p.exitcode}" for p in failed)
        raise WorkerFailed(f"{codes}; what was stored stays: run the same command again to finish")
    return totals
