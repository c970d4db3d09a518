"""How fast `smallwins report` measures a large community: 1,000,000 events by default.

The store is filled directly (bulk INSERTs of members, identities, events and the awards the
launch catalogue would give), because ingesting a million events through the engine measures
ingest, not the report (see bench_ingest.py for that). Then the report is built (all metrics, in
SQL) and, separately, the HTML with its charts is rendered. Numbers are printed and written to
bench/results/report.md.

Run: `python bench/bench_report.py [--events 1000000 --members 20000] [--pg postgresql://...]`
(the --pg database's public schema is reset).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from smallwins.core.config import load_catalogue
from smallwins.core.logs import configure_logging
from smallwins.core.plugins import PluginHost
from smallwins.core.store import Award, Identity, Member, StoredEvent, open_store
from smallwins.measure.html import render_html
from smallwins.measure.report import build_report

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "report.md"
START = datetime(2026, 1, 5, tzinfo=UTC)
TYPES = [("message.posted", 8), ("reaction.added", 5), ("comment.posted", 5), ("link.clicked", 4), ("email.replied", 2)]
CONTRIBUTIONS = {"message.posted", "comment.posted", "email.replied"}


def fill(url: str, events: int, members: int, weeks: int, seed: int = 11) -> float:
    """Bulk-load a synthetic community; seconds taken."""
    rng = random.Random(seed)
    store = open_store(url)
    started = time.perf_counter()
    now = datetime.now(UTC)
    # Heavy-tailed activity; each member starts on a random day and acts on random later days.
    weights = [rng.paretovariate(1.3) for _ in range(members)]
    total = sum(weights)
    counts = [max(1, round(events * w / total)) for w in weights]
    names, type_weights = zip(*TYPES, strict=True)
    span = weeks * 7 * 86400
    with store.engine.begin() as conn:
        conn.execute(
            insert(Member),
            [
                {"id": m + 1, "display_name": f"m{m}", "points": 0, "private": False, "staff": False, "created_at": now}
                for m in range(members)
            ],
        )
        conn.execute(
            insert(Identity),
            [
                {
                    "platform": "discord",
                    "account": f"a{m}",
                    "member_id": m + 1,
                    "home_member_id": m + 1,
                    "created_at": now,
                }
                for m in range(members)
            ],
        )
    serial = 0
    batch: list[dict[str, object]] = []
    awards: list[dict[str, object]] = []
    for m, count in enumerate(counts):
        first = rng.randrange(span * 3 // 4)
        times = sorted(first + rng.randrange(max(1, span - first)) for _ in range(count - 1))
        contributions = 0
        for offset in [first, *times]:
            serial += 1
            at = START + timedelta(seconds=offset)
            kind = rng.choices(names, weights=type_weights)[0]
            batch.append(
                {
                    "source": "discord",
                    "event_id": str(serial),
                    "type": kind,
                    "subject": f"a{m}",
                    "member_id": m + 1,
                    "time": at,
                    "data": {},
                    "retracted": False,
                    "ingested_at": now,
                }
            )
            if kind in CONTRIBUTIONS:
                contributions += 1
                for achievement, threshold in (("first-words", 1), ("regular", 5)):
                    if contributions == threshold:
                        awards.append(
                            {
                                "member_id": m + 1,
                                "achievement_id": achievement,
                                "tier": None,
                                "status": "active",
                                "origin": "rule",
                                "home_member_id": m + 1,
                                "awarded_at": at,
                                "updated_at": now,
                            }
                        )
        if len(batch) >= 20_000:
            with store.engine.begin() as conn:
                conn.execute(insert(StoredEvent), batch)
            batch = []
    with store.engine.begin() as conn:
        if batch:
            conn.execute(insert(StoredEvent), batch)
        conn.execute(insert(Award), awards)
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))  # fresh planner statistics, as autovacuum would gather after an import
    store.close()
    return time.perf_counter() - started


def measure(url: str) -> tuple[float, float, int]:
    catalogue = load_catalogue(REPO / "achievements.toml", PluginHost().rule_types())
    store = open_store(url)
    with store.sessions() as session:
        started = time.perf_counter()
        report = build_report(session, catalogue)
        built = time.perf_counter() - started
    store.close()
    started = time.perf_counter()
    html = render_html(report)
    return built, time.perf_counter() - started, len(html)


def reset_postgres(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        conn.execute(text("DROP FUNCTION IF EXISTS smallwins_audit_append_only() CASCADE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--weeks", type=int, default=12)
    parser.add_argument("--pg", help="PostgreSQL URL of a scratch database (its schema is reset)")
    parser.add_argument("--skip-sqlite", action="store_true", help="measure only the --pg database")
    args = parser.parse_args()
    configure_logging("WARNING")
    lines = [
        f"# smallwins report benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{args.events:,} events, {args.members:,} members, {args.weeks} weeks; 2-core machine.",
        "",
        "| store | load (s) | report, all metrics in SQL (s) | HTML with charts (s) |",
        "|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        targets = [] if args.skip_sqlite else [("sqlite", f"sqlite:///{folder}/bench.db")]
        if args.pg:
            reset_postgres(args.pg)
            targets.append(("postgresql", args.pg))
        for name, url in targets:
            loaded = fill(url, args.events, args.members, args.weeks)
            built, drawn, size = measure(url)
            print(f"{name}: loaded in {loaded:.1f}s; report {built:.2f}s; HTML {drawn:.2f}s ({size / 1e3:.0f} kB)")
            lines.append(f"| {name} | {loaded:.1f} | {built:.2f} | {drawn:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
