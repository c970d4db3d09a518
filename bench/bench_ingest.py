"""Ingest throughput on the demo community: events per second into SQLite and PostgreSQL.

Target: >= 1,000 events/s on SQLite on this 2-core machine (one writer, batches of 500).
Run: `python bench/bench_ingest.py [--members 400 --weeks 6] [--pg postgresql://...]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from smallwins.core.config import load_catalogue
from smallwins.core.engine import Engine
from smallwins.core.logs import configure_logging
from smallwins.core.plugins import PluginHost
from smallwins.core.store import open_store
from smallwins.demo import generate_community

REPO = Path(__file__).resolve().parent.parent
TARGET_EVENTS_PER_SECOND = 1000


def measure(url: str, members: int, weeks: int) -> tuple[int, float]:
    community = generate_community(members=members, weeks=weeks)
    store = open_store(url)
    engine = Engine(store, load_catalogue(REPO / "achievements.toml", PluginHost().rule_types()))
    started = time.perf_counter()
    count = sum(1 for _ in engine.ingest_many(community.events))
    elapsed = time.perf_counter() - started
    store.close()
    return count, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--pg", help="PostgreSQL URL of an empty scratch database (its schema is reset)")
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        count, elapsed = measure(f"sqlite:///{tmp}/bench.db", args.members, args.weeks)
    rate = count / elapsed
    verdict = "meets" if rate >= TARGET_EVENTS_PER_SECOND else "MISSES"
    print(f"sqlite: {count} events in {elapsed:.2f}s = {rate:,.0f} events/s ({verdict} {TARGET_EVENTS_PER_SECOND}/s)")
    if args.pg:
        engine = create_engine(args.pg.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            conn.execute(text("DROP FUNCTION IF EXISTS smallwins_audit_append_only() CASCADE"))
        engine.dispose()
        count, elapsed = measure(args.pg, args.members, args.weeks)
        print(f"postgresql: {count} events in {elapsed:.2f}s = {count / elapsed:,.0f} events/s")


if __name__ == "__main__":
    main()
