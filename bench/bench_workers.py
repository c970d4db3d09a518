"""Ingest throughput on PostgreSQL with 1, 2 and 4 worker processes (``smallwins ingest --workers``).

    python bench/bench_workers.py                    # 20,000 events over 2,000 members
    python bench/bench_workers.py --events 100000 --members 10000 --workers 1 2 4 8

The community is bench_scale's (demo catalogue, reactions, moderator approvals, 3% duplicate
deliveries), written once as JSON lines; each run starts from an empty schema (``--pg``, default
the ``sw_bench`` database) and times the installed command end to end, process start-up and
outbox delivery included. Prints a table and writes ``bench/results_workers.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scale import CATALOGUE, community  # noqa: E402
from common import DEFAULT_PG, reset_postgres, write_results  # noqa: E402

EXE = Path(sys.executable).with_name("smallwins")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL URL of a scratch database (its schema is reset)")
    parser.add_argument("--out", type=Path, default=HERE / "results_workers.json")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "community.jsonl"
        with data.open("w") as handle:
            for event in community(args.events, args.members):
                handle.write(json.dumps(event.to_json()) + "\n")
        config = folder / "plugins.toml"
        config.write_text(f'[smallwins]\ncatalogue = "{CATALOGUE}"\n[plugins.web_widget]\nenabled = false\n')
        for workers in args.workers:
            reset_postgres(args.pg)
            command = [str(EXE), "ingest", str(data), "-c", str(config), "--db", args.pg, "--workers", str(workers)]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds = time.perf_counter() - started
            runs.append(
                {
                    "workers": workers,
                    "events": args.events,
                    "members": args.members,
                    "backend": "postgresql",
                    "seconds": round(seconds, 2),
                    "events_per_s": round(args.events / seconds, 1),
                }
            )
    base = runs[0]["events_per_s"]
    title = f"smallwins ingest --workers on PostgreSQL, {args.events:,} events over {args.members:,} members"
    table = Table(title=title)
    for column in ("workers", "seconds", "events/s", "vs first"):
        table.add_column(column, justify="right")
    for run in runs:
        speedup = f"{run['events_per_s'] / base:.2f}x"
        table.add_row(str(run["workers"]), f"{run['seconds']}", f"{run['events_per_s']:,.0f}", speedup)
    Console().print(table)
    write_results(args.out, runs)


if __name__ == "__main__":
    main()
