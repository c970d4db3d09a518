"""What the benchmarks share: a clean PostgreSQL schema, one child process per backend (so each
run's peak RSS is its own), and the results document with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def reset_postgres(url: str) -> None:
    """Drop and recreate the public schema of the benchmark database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
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
