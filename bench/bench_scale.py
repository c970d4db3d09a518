"""Ingest throughput at scale, against a raw batched INSERT of the same rows in the same database.

One command, a table and ``bench/results.json``::

    python bench/bench_scale.py                       # 30,000 events / 3,000 members, SQLite + PostgreSQL
    python bench/bench_scale.py --backend sqlite      # one backend
    python bench/bench_scale.py --full                # the issue's scale: 1,000,000 events / 100,000 members
    python bench/bench_scale.py --events 200000 --members 20000 --profile bench/profile.txt

The community is generated as a stream (memory stays flat): members with heavy-tailed activity on
Discord, YouTube, email and the web, reactions naming recent posts of others, a moderator
approving some posts a day or two later, 3% duplicate deliveries, the demo catalogue
(``smallwins/defaults/achievements.toml``). Each backend is measured in a child process of its
own, so ``peak_rss_mb`` is that run's: (1) ``Engine.ingest_many`` end to end (validation
included: the generator builds validated :class:`Event` objects), then (2) the baseline: the
same events as plain rows, inserted with batched multi-row INSERTs into a table shaped like
``events`` in the same database. Reads are timed afterwards (leaderboard top 100, a member's
rank). PostgreSQL uses ``--pg`` (default: the ``sw_bench`` database on 127.0.0.1), whose public
schema is reset.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from common import add_backend_arguments, backends, reset_postgres, run_child, write_results

from smallwins.core.engine import BULK_BATCH_SIZE

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "smallwins" / "defaults" / "achievements.toml"
RESULTS = Path(__file__).resolve().parent / "results.json"
START = datetime(2026, 9, 7, tzinfo=UTC)
DAYS = 42

ACTIONS: dict[str, list[tuple[str, int]]] = {
    "discord": [("message.posted", 8), ("reaction.added", 5), ("thread.started", 1)],
    "youtube": [("comment.posted", 5), ("video.liked", 3)],
    "email": [("email.replied", 3), ("email.clicked", 4)],
    "web": [("link.clicked", 4), ("form.submitted", 1)],
}
SHARE = {"discord": 0.6, "youtube": 0.45, "email": 0.5, "web": 0.3}
REACTIONS = {"reaction.added", "video.liked"}
CONTRIBUTIONS = {"message.posted", "comment.posted", "thread.started"}


def community(events: int, members: int, *, seed: int = 11) -> Iterator[Any]:
    """``events`` validated events (duplicates included) of ``members`` members over six weeks.

    Day by day, in time order within a day; a moderator's approvals come out on the day they
    were made. Only a ring of recent posts per platform and the pending approvals are kept.
    """
    from smallwins.core.events import Event

    rng = random.Random(seed)
    accounts: list[list[tuple[str, str]]] = []
    weights: list[float] = []
    for n in range(members):
        platforms = [p for p, share in SHARE.items() if rng.random() < share] or ["discord"]
        accounts.append([(p, f"{p[:2]}{n}x{rng.getrandbits(24):06x}") for p in platforms])
        weights.append(min(rng.paretovariate(1.5), 40.0))
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    per_day = max(1, events // DAYS)
    recent: dict[str, list[str]] = {"discord": [], "youtube": []}
    approvals: list[tuple[datetime, int, Event]] = []
    emitted = serial = 0
    for day in range(DAYS):
        date = START + timedelta(days=day)
        todays: list[Event] = []
        quota = per_day if day < DAYS - 1 else events - emitted
        while approvals and approvals[0][0] < date + timedelta(days=1) and len(todays) < quota:
            todays.append(heapq.heappop(approvals)[2])
        while len(todays) < quota:
            who = rng.choices(range(members), cum_weights=cumulative)[0]
            source, subject = rng.choice(accounts[who])
            types, type_weights = zip(*ACTIONS[source], strict=True)
            event_type = rng.choices(types, weights=type_weights)[0]
            data: dict[str, Any] = {"display_name": f"Member {who}"}
            if event_type in REACTIONS:
                if not recent[source]:
                    continue
                data["target"] = rng.choice(recent[source])
            serial += 1
            event = Event(
                id=f"{source[:2]}-{serial:09d}",
                source=source,
                type=event_type,
                subject=subject,
                time=date + timedelta(seconds=rng.randrange(7 * 3600, 23 * 3600)),
                proof=f"https://{source}.example/{serial}",
                data=data,
            )
            todays.append(event)
            if event_type in CONTRIBUTIONS:
                if source in recent:
                    ring = recent[source]
                    ring.append(event.key)
                    if len(ring) > 300:
                        del ring[0]
                if rng.random() < 0.06:
                    serial += 1
                    approval = Event(
                        id=f"mod-{serial:09d}",
                        source="discord",
                        type="moderator.approved",
                        subject="100000000000000001",
                        time=event.time + timedelta(hours=rng.randrange(12, 48)),
                        data={"target": event.key, "display_name": "Moderator team"},
                    )
                    heapq.heappush(approvals, (approval.time, serial, approval))
            if rng.random() < 0.03 and len(todays) < quota:
                todays.append(event)  # a webhook retried: the same event delivered twice
        todays.sort(key=lambda e: e.time)
        emitted += len(todays)
        yield from todays


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_ingest(url: str, events: int, members: int, batch_size: int, profile: str | None) -> dict[str, Any]:
    from rich.progress import Progress

    from smallwins.core.config import load_catalogue
    from smallwins.core.engine import Engine
    from smallwins.core.plugins import PluginHost
    from smallwins.core.store import open_store

    store = open_store(url)
    engine = Engine(store, load_catalogue(CATALOGUE, PluginHost().rule_types()))
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    stored = duplicates = awarded = 0
    started = time.perf_counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("ingest", total=events)
        for outcome in engine.ingest_many(community(events, members), batch_size=batch_size):
            stored += outcome.stored
            duplicates += not outcome.stored
            awarded += len(outcome.awarded)
            if (stored + duplicates) % batch_size == 0:
                progress.update(task, completed=stored + duplicates)
    elapsed = time.perf_counter() - started
    if profiler is not None:
        profiler.stop()
        Path(profile).write_text(profiler.output_text(unicode=False, color=False))
    reads = measure_reads(store)
    store.close()
    return {"seconds": elapsed, "stored": stored, "duplicates": duplicates, "awarded": awarded, **reads}


def measure_reads(store: Any) -> dict[str, float]:
    """Milliseconds for the all-time top 100 and for one member's rank (median of 20)."""
    from sqlalchemy import func, select

    from smallwins.core import leaderboards
    from smallwins.core.store import Member

    def median_ms(action: Any) -> float:
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            action()
            timings.append((time.perf_counter() - started) * 1000)
        return sorted(timings)[len(timings) // 2]

    with store.sessions() as session:
        middle = session.scalar(select(func.max(Member.id))) // 2
        member = session.get(Member, middle)
        return {
            "top100_ms": median_ms(lambda: leaderboards.all_time(session, limit=100)),
            "rank_ms": median_ms(lambda: leaderboards.rank_of(session, member)),
        }


def measure_baseline(url: str, events: int, members: int, batch_size: int) -> float:
    """Seconds to insert the same events as rows with batched multi-row INSERTs (no logic)."""
    from sqlalchemy import Column, MetaData, Table, UniqueConstraint

    from smallwins.core.store import BigId, JsonDoc, StoredEvent, UtcDateTime, create_db_engine, dialect_insert

    columns = [c for c in StoredEvent.__table__.columns]
    raw = Table(
        "bench_raw_events",
        MetaData(),
        Column("id", BigId, primary_key=True, autoincrement=True),
        *[Column(c.name, c.type) for c in columns if c.name not in {"id", "data", "time", "ingested_at"}],
        Column("data", JsonDoc),
        Column("time", UtcDateTime),
        Column("ingested_at", UtcDateTime),
        UniqueConstraint("source", "event_id"),
    )
    engine = create_db_engine(url)
    raw.drop(engine, checkfirst=True)
    raw.create(engine)
    statement = dialect_insert(engine.dialect.name, raw).on_conflict_do_nothing()
    stream = community(events, members)
    now = datetime.now(UTC)
    started = time.perf_counter()
    while batch := list(islice(stream, batch_size)):
        rows = {
            e.key: {
                "source": e.source,
                "event_id": e.id,
                "type": e.type,
                "subject": e.subject,
                "member_id": 0,
                "time": e.time,
                "proof": e.proof,
                "data": e.data,
                "target": e.target,
                "retracts": e.retracts,
                "retracted": False,
                "ingested_at": now,
            }
            for e in batch
        }
        with engine.begin() as conn:
            conn.execute(statement, list(rows.values()))
    elapsed = time.perf_counter() - started
    raw.drop(engine)
    engine.dispose()
    return elapsed


def child(args: argparse.Namespace) -> None:
    """One backend, in this process: ingest, reads, then the baseline; JSON on stdout."""
    from smallwins.core.logs import configure_logging

    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            url = args.pg
            reset_postgres(url)
        result = measure_ingest(url, args.events, args.members, args.batch_size, args.profile)
        baseline = measure_baseline(url, args.events, args.members, args.batch_size)
    total = result["stored"] + result["duplicates"]
    record = {
        "events": total,
        "members": args.members,
        "backend": args.backend,
        "workers": 1,
        "batch_size": args.batch_size,
        "events_per_s": round(total / result["seconds"], 1),
        "baseline_events_per_s": round(total / baseline, 1),
        "slowdown_vs_baseline": round(baseline and result["seconds"] / baseline, 2),
        "seconds": round(result["seconds"], 2),
        "baseline_seconds": round(baseline, 2),
        "stored": result["stored"],
        "duplicates": result["duplicates"],
        "awarded": result["awarded"],
        "top100_ms": round(result["top100_ms"], 2),
        "rank_ms": round(result["rank_ms"], 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--members", type=int, default=3_000)
    parser.add_argument("--full", action="store_true", help="1,000,000 events over 100,000 members")
    parser.add_argument(
        "--batch-size", type=int, default=BULK_BATCH_SIZE, help="events per transaction (as the CLI's)"
    )
    parser.add_argument("--profile", help="write a pyinstrument profile of the ingest to this file")
    add_backend_arguments(parser, out=RESULTS, backend="both")
    args = parser.parse_args()
    if args.full:
        args.events, args.members = 1_000_000, 100_000
    if args.child:
        child(args)
        return
    from rich.console import Console
    from rich.table import Table

    chosen = backends(args.backend)
    runs = []
    for backend in chosen:
        arguments = ["--backend", backend, "--events", str(args.events), "--members", str(args.members),
                     "--pg", args.pg, "--batch-size", str(args.batch_size)]
        if args.profile:
            arguments += ["--profile", f"{args.profile}.{backend}" if len(chosen) > 1 else args.profile]
        runs.append(run_child(__file__, arguments))
    table = Table(title=f"smallwins ingest, {args.events:,} events over {args.members:,} members")
    for column in ("backend", "events/s", "raw INSERT/s", "slower by", "peak RSS MB", "top 100 ms", "rank ms"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(
            run["backend"], f"{run['events_per_s']:,.0f}", f"{run['baseline_events_per_s']:,.0f}",
            f"{run['slowdown_vs_baseline']}x", f"{run['peak_rss_mb']:,.0f}", f"{run['top100_ms']}", f"{run['rank_ms']}",
        )
    Console().print(table)
    write_results(args.out, runs, **runs[0])


if __name__ == "__main__":
    main()
