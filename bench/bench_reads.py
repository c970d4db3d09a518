"""Reads at scale: the all-time top 100, a member's rank and a widget document, at a million members.

One command, a table and ``bench/results_reads.json``::

    python bench/bench_reads.py                    # 1,000,000 members, SQLite and PostgreSQL
    python bench/bench_reads.py --members 100000 --backend sqlite

The store is filled directly with bulk INSERTs (ingesting a million members' history is what
``bench_scale.py --full`` measures): members with heavy-tailed points, 5% private, awards of the
demo catalogue held by a share of members that falls with difficulty, the counts per points
total the rank index keeps. Each read is the median of 50
calls on members spread over the ranking; "rank by counting" is the query ranks used before the
rank index, timed for comparison. PostgreSQL uses ``--pg`` (default ``sw_bench``), reset first.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import add_backend_arguments, backends, reset_postgres, run_child, write_results

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results_reads.json"
CHUNK = 20_000


def fill(url: str, members: int, seed: int = 5) -> None:
    """Members, awards and the rank counts, written in chunks with a progress bar."""
    from rich.progress import Progress
    from sqlalchemy import insert, text

    from smallwins.core.config import load_catalogue
    from smallwins.core.plugins import PluginHost
    from smallwins.core.store import Award, Member, open_store

    catalogue = load_catalogue(REPO / "smallwins" / "defaults" / "achievements.toml", PluginHost().rule_types())
    achievements = list(catalogue.achievements.values())
    rng = random.Random(seed)
    store = open_store(url)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with Progress(transient=True) as progress:
        task = progress.add_task(f"filling {members:,} members", total=members)
        for start in range(1, members + 1, CHUNK):
            ids = range(start, min(start + CHUNK, members + 1))
            member_rows, award_rows = [], []
            for member_id in ids:
                points = int(min(rng.paretovariate(1.2), 400.0) * 10) - 10
                member_rows.append({
                    "id": member_id, "display_name": f"Member {member_id}", "points": points,
                    "private": rng.random() < 0.05, "staff": False, "created_at": now,
                })
                for rank, achievement in enumerate(achievements):
                    if rng.random() < 0.6 / (rank + 1):
                        award_rows.append({
                            "member_id": member_id, "achievement_id": achievement.id, "tier": achievement.tier,
                            "status": "active", "origin": "rule", "home_member_id": member_id,
                            "awarded_at": now, "updated_at": now,
                        })
            with store.writes.begin() as session:
                session.execute(insert(Member.__table__), member_rows)
                session.execute(insert(Award.__table__), award_rows)
            progress.update(task, advance=len(ids))
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM points_counts"))
        conn.execute(text(
            "INSERT INTO points_counts (points, members) SELECT points, count(*) FROM members"
            " WHERE merged_into_id IS NULL AND NOT private AND NOT staff AND points <> 0 GROUP BY points"
        ))
        if store.dialect == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('members', 'id'), (SELECT max(id) FROM members))"))
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    store.close()


def median_ms(action: Callable[[int], Any], member_ids: list[int]) -> float:
    timings = []
    for member_id in member_ids:
        started = time.perf_counter()
        action(member_id)
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 3)


def measure(url: str, members: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from smallwins.adapters.web.documents import widget_document
    from smallwins.core import leaderboards
    from smallwins.core.app import build_app
    from smallwins.core.store import Member

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "plugins.toml"
        config.write_text(f'[smallwins]\ncatalogue = "{REPO / "smallwins" / "defaults" / "achievements.toml"}"\n')
        app = build_app(config, database_url=url)
        rng = random.Random(9)
        sample = sorted(rng.sample(range(1, members + 1), 50))
        try:
            with app.store.sessions() as session:
                widget_document(app, session, sample[0], private=False, icon=lambda a, t: "")  # warm: rarity counted

                def counting_rank(member_id: int) -> int:
                    member = session.get_one(Member, member_id)
                    return int(session.scalar(
                        select(func.count()).select_from(Member).where(
                            Member.points > member.points, Member.merged_into_id.is_(None),
                            Member.private.is_(False), Member.staff.is_(False),
                        )
                    ) or 0) + 1

                return {
                    "top100_ms": median_ms(lambda _: leaderboards.all_time(session, limit=100), sample),
                    "rank_ms": median_ms(lambda m: leaderboards.rank_of(session, session.get_one(Member, m)), sample),
                    "rank_by_counting_ms": median_ms(counting_rank, sample),
                    "widget_document_ms": median_ms(
                        lambda m: widget_document(app, session, m, private=False, icon=lambda a, t: ""), sample
                    ),
                }
        finally:
            app.close()


def child(args: argparse.Namespace) -> None:
    from smallwins.core.logs import configure_logging

    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        if args.backend == "sqlite":
            url = f"sqlite:///{tmp}/reads.db"
        else:
            url = args.pg
            reset_postgres(url)
        started = time.perf_counter()
        fill(url, args.members)
        filled = time.perf_counter() - started
        record = {"backend": args.backend, "members": args.members, "fill_seconds": round(filled, 1),
                  **measure(url, args.members)}
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    add_backend_arguments(parser, out=RESULTS, backend="both")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from rich.console import Console
    from rich.table import Table

    runs = []
    for backend in backends(args.backend):
        runs.append(run_child(__file__, ["--backend", backend, "--members", str(args.members), "--pg", args.pg]))
    table = Table(title=f"smallwins reads at {args.members:,} members (median ms of 50)")
    for column in ("backend", "top 100", "rank", "rank by counting (before)", "widget document"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(run["backend"], str(run["top100_ms"]), str(run["rank_ms"]), str(run["rank_by_counting_ms"]),
                      str(run["widget_document_ms"]))
    Console().print(table)
    write_results(args.out, runs)


if __name__ == "__main__":
    main()
