"""Several `smallwins ingest` processes started at once on an empty database: the first migrates,
the others wait for it (PostgreSQL advisory lock, SQLite write lock), and every event is stored
exactly once, whichever process delivered it and however often."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from smallwins.core.migrate import MIGRATIONS_DIR
from smallwins.core.store import StoredEvent, create_db_engine
from tests.conftest import REPO

WORKERS = 4
PER_WORKER = 30


def event(n: int) -> dict[str, object]:
    return {
        "id": f"m{n}",
        "source": "discord",
        "type": "message.posted",
        "subject": f"member{n % 9}",
        "time": f"2026-03-{1 + n % 28:02d}T12:{n % 60:02d}:00Z",
        "data": {"display_name": f"Member {n % 9}"},
    }


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def test_workers_started_together_on_an_empty_database_all_succeed(database_url: str, tmp_path: Path) -> None:
    shutil.copy(REPO / "achievements.toml", tmp_path)
    (tmp_path / "plugins.toml").write_text(
        '[smallwins]\ncatalogue = "achievements.toml"\n[plugins.jsonl]\nenabled = true\n'
    )
    chunks = []
    for worker in range(WORKERS):
        own = range(worker * PER_WORKER, (worker + 1) * PER_WORKER)
        # Each chunk also re-delivers a few events of the next one: stored once all the same.
        overlap = range(((worker + 1) % WORKERS) * PER_WORKER, ((worker + 1) % WORKERS) * PER_WORKER + 5)
        path = tmp_path / f"chunk{worker}.jsonl"
        path.write_text("".join(json.dumps(event(n)) + "\n" for n in [*own, *overlap]))
        chunks.append(path)

    exe = Path(sys.executable).parent / "smallwins"
    processes = [
        subprocess.Popen(
            [str(exe), "ingest", str(chunk), "--db", database_url, "-c", str(tmp_path / "plugins.toml")],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for chunk in chunks
    ]
    results = [(process, *process.communicate(timeout=180)) for process in processes]
    for process, out, err in results:
        assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err}"
        assert "Traceback" not in err, err

    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            ids = connection.scalars(select(StoredEvent.event_id)).all()
            total = connection.scalar(select(func.count()).select_from(StoredEvent))
            versions = connection.scalars(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert total == len(ids) == len(set(ids)) == WORKERS * PER_WORKER
    assert set(ids) == {f"m{n}" for n in range(WORKERS * PER_WORKER)}
    assert versions == [head_revision()], "migrated once, to the newest revision"
    stored = sum(int(out.split(" stored,")[0].split()[-1]) for _, out, _ in results)
    assert stored == WORKERS * PER_WORKER, "each event counted as stored by exactly one worker"


def test_a_fresh_sqlite_file_opened_by_several_processes_at_once(tmp_path: Path) -> None:
    """Only the migration, many times over: processes opening one new file race on creating it."""
    database = tmp_path / "fresh.db"
    script = "import sys\nfrom smallwins.core.store import open_store\nstore = open_store(sys.argv[1])\nstore.close()\n"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, f"sqlite:///{database}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        assert connection.scalars(text("SELECT version_num FROM alembic_version")).all() == [head_revision()]
    engine.dispose()
