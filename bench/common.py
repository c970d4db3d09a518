"""What the benchmarks share: a clean PostgreSQL schema, one child process per backend (so each
run's peak RSS is its own), and the results document with the machine it ran on."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The scratch database the benchmarks use; its public schema is reset by each run.
DEFAULT_PG = os.environ.get("SMALLWINS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/sw_bench")


def add_backend_arguments(parser: argparse.ArgumentParser, *, out: Path, backend: str = "both") -> None:
    """``--backend``, ``--pg``, ``--out`` and the hidden ``--child`` of a benchmark that measures
    each backend in a child process of its own."""
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default=backend)
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL URL of a scratch database (its schema is reset)")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def backends(choice: str) -> list[str]:
    """The backends a ``--backend`` choice names, in the order they are measured."""
    return ["sqlite", "postgresql"] if choice == "both" else [choice]


def reset_postgres(url: str) -> None:
    """Drop and recreate the public schema of the benchmark database, creating the database first
    when the server does not have it yet (a fresh machine has only its default databases)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1))
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database})
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    server.dispose()
    engine = create_engine(target)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def run_child(script: str, arguments: list[str]) -> Any:
    """Run ``script --child ARGUMENTS`` and return the JSON it printed on its last line."""
    command = [sys.executable, script, "--child", *arguments]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_results(path: Path, runs: list[dict[str, Any]], **head: Any) -> None:
    """``{**head, runs, machine, measured_at}`` as indented JSON at ``path``."""
    document = {
        **head,
        "runs": runs,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
