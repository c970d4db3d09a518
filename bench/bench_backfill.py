"""Backfill after a rule change: stored events replayed per second, as ``smallwins backfill`` does.

One command, a table and ``bench/results_backfill.json``::

    python bench/bench_backfill.py                         # 100,000 events / 10,000 members, SQLite
    python bench/bench_backfill.py --events 1000000 --members 100000 --backend postgresql

The community of ``bench_scale.py`` is ingested first (not timed here), then the demo catalogue
changes as an operator would change it: Regular needs 4 messages instead of 5, and every member's
history is replayed under the new catalogue (``smallwins.core.backfill.run``, 100 members per
transaction, audited). ``events_per_s`` is the stored events replayed per second of backfill.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_backend_arguments, backends, run_child, write_results

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "smallwins" / "defaults" / "achievements.toml"
RESULTS = Path(__file__).resolve().parent / "results_backfill.json"


def changed_catalogue(folder: Path) -> Path:
    """The demo catalogue with Regular at 4 messages instead of 5."""
    text = CATALOGUE.read_text()
    start = text.index("[achievements.regular]")
    threshold = text.index("threshold = 5", start)
    changed = folder / "achievements.toml"
    changed.write_text(text[:threshold] + "threshold = 4" + text[threshold + len("threshold = 5") :])
    return changed


def child(args: argparse.Namespace) -> None:
    from bench_scale import community
    from common import reset_postgres
    from rich.progress import Progress
    from sqlalchemy import func, select

    from smallwins.core import backfill
    from smallwins.core.config import load_catalogue
    from smallwins.core.engine import BULK_BATCH_SIZE, Engine
    from smallwins.core.logs import configure_logging
    from smallwins.core.plugins import PluginHost
    from smallwins.core.store import Member, StoredEvent, open_store

    configure_logging("WARNING")
    rule_types = PluginHost().rule_types()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/backfill.db" if args.backend == "sqlite" else args.pg
        if args.backend == "postgresql":
            reset_postgres(url)
        store = open_store(url)
        with Progress(transient=True) as progress:
            task = progress.add_task("ingesting", total=args.events)
            for n, _ in enumerate(Engine(store, load_catalogue(CATALOGUE, rule_types)).ingest_many(
                community(args.events, args.members), batch_size=BULK_BATCH_SIZE
            )):
                if n % 1000 == 0:
                    progress.update(task, completed=n)
        with store.sessions() as session:
            events = int(session.scalar(select(func.count()).select_from(StoredEvent)) or 0)
            members = int(session.scalar(select(func.count()).select_from(Member)) or 0)
        engine = Engine(store, load_catalogue(changed_catalogue(Path(tmp)), rule_types))
        with Progress(transient=True) as progress:
            task = progress.add_task("backfilling", total=members)
            started = time.perf_counter()
            tally = backfill.run(engine, batch_size=100, on_member=lambda: progress.advance(task))
            elapsed = time.perf_counter() - started
        store.close()
    record: dict[str, Any] = {
        "backend": args.backend,
        "events": events,
        "members": members,
        "seconds": round(elapsed, 1),
        "events_per_s": round(events / elapsed, 1),
        "members_per_s": round(members / elapsed, 1),
        "changed_members": tally.changed_members,
        "awarded": sum(tally.awards.values()),
    }
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=10_000)
    add_backend_arguments(parser, out=RESULTS, backend="sqlite")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from rich.console import Console
    from rich.table import Table

    runs = []
    for backend in backends(args.backend):
        runs.append(run_child(__file__, ["--backend", backend, "--events", str(args.events),
                                         "--members", str(args.members), "--pg", args.pg]))
    table = Table(title="backfill after a rule change (Regular: 5 -> 4 messages)")
    for column in ("backend", "stored events", "members", "seconds", "events/s", "members/s", "changed"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(run["backend"], f"{run['events']:,}", f"{run['members']:,}", str(run["seconds"]),
                      f"{run['events_per_s']:,.0f}", f"{run['members_per_s']:,.0f}", f"{run['changed_members']:,}")
    Console().print(table)
    write_results(args.out, runs)


if __name__ == "__main__":
    main()
