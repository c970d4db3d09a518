"""Latency from an event's arrival to its effects committed (standing, audit, outbox), while a
steady stream flows, as ``smallwins run`` ingests live events.

One command, a table and ``bench/results_latency.json``::

    python bench/bench_latency.py                          # 100, 300 and 1,000 events/s, SQLite and PostgreSQL
    python bench/bench_latency.py --rates 500 --seconds 30 --backend sqlite

A producer emits the generated community (``bench_scale.community``) at a fixed rate; a consumer
drains what has arrived every ``--drain-ms`` (as the Discord and web adapters do) and hands it to
the runtime's sink (``smallwins.core.runtime.make_sink``: the engine in a worker thread, one
transaction per batch, outbox rows written in it). An event's latency is the moment its batch
committed minus the moment it arrived. Past the rate one process sustains, the queue and the
latency grow: the table shows where.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_backend_arguments, backends, run_child, write_results

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results_latency.json"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def stream(app: Any, rate: int, seconds: float, drain_ms: float, members: int) -> dict[str, Any]:
    import anyio
    from bench_scale import community

    from smallwins.core.runtime import make_sink

    sink = make_sink(app, "bench")
    events = list(islice(community(int(rate * seconds), members, seed=rate), int(rate * seconds)))
    send, receive = anyio.create_memory_object_stream[tuple[Any, float]](max_buffer_size=len(events) + 1)
    latencies: list[float] = []
    batches: list[int] = []

    async def produce() -> None:
        started = time.perf_counter()
        for n, event in enumerate(events):
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            send.send_nowait((event, time.perf_counter()))
        await send.aclose()

    async def consume() -> None:
        done = False
        while not done:
            await anyio.sleep(drain_ms / 1000)
            arrived: list[tuple[Any, float]] = []
            while True:
                try:
                    arrived.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
                except anyio.EndOfStream:
                    done = True
                    break
            if not arrived:
                continue
            await sink([event for event, _ in arrived])
            committed = time.perf_counter()
            latencies.extend(committed - at for _, at in arrived)
            batches.append(len(arrived))

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        group.start_soon(produce)
        group.start_soon(consume)
    elapsed = time.perf_counter() - started
    return {
        "rate": rate,
        "events": len(latencies),
        "seconds": round(elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "mean_batch": round(statistics.mean(batches), 1),
        "kept_up": elapsed < seconds * 1.1 + 1,
    }


def child(args: argparse.Namespace) -> None:
    import anyio

    from smallwins.core.app import build_app
    from smallwins.core.logs import configure_logging

    configure_logging("WARNING")
    runs = []
    for rate in args.rates:
        with tempfile.TemporaryDirectory() as tmp:
            if args.backend == "sqlite":
                url = f"sqlite:///{tmp}/latency.db"
            else:
                from common import reset_postgres

                url = args.pg
                reset_postgres(url)
            config = Path(tmp) / "plugins.toml"
            config.write_text(f'[smallwins]\ncatalogue = "{REPO / "smallwins" / "defaults" / "achievements.toml"}"\n')
            app = build_app(config, database_url=url)
            try:
                runs.append({"backend": args.backend, **anyio.run(stream, app, rate, args.seconds, args.drain_ms,
                                                                   args.members)})
            finally:
                app.close()
    print(json.dumps(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 300, 1000], help="events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    parser.add_argument("--drain-ms", type=float, default=50.0, help="how often arrived events are ingested")
    parser.add_argument("--members", type=int, default=2_000)
    add_backend_arguments(parser, out=RESULTS, backend="both")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from rich.console import Console
    from rich.table import Table

    runs: list[dict[str, Any]] = []
    for backend in backends(args.backend):
        runs += run_child(__file__, ["--backend", backend, "--seconds", str(args.seconds), "--drain-ms",
                                     str(args.drain_ms), "--members", str(args.members), "--pg", args.pg,
                                     "--rates", *map(str, args.rates)])
    table = Table(title=f"arrival -> committed (standing, audit, outbox); drained every {args.drain_ms:g} ms")
    for column in ("backend", "events/s", "events", "p50 ms", "p99 ms", "max ms", "mean batch", "kept up"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(run["backend"], str(run["rate"]), str(run["events"]), str(run["p50_ms"]), str(run["p99_ms"]),
                      str(run["max_ms"]), str(run["mean_batch"]), "yes" if run["kept_up"] else "no")
    Console().print(table)
    write_results(args.out, runs)


if __name__ == "__main__":
    main()
