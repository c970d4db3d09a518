"""``smallwins ingest --workers 4`` on PostgreSQL: a shuffled community with duplicates, one worker
killed mid-way and the command run again, reaches exactly the standing of a single process."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import ProgrammingError

from smallwins.core.store import StoredEvent, open_store
from smallwins.demo import generate_community
from tests.conftest import REPO, reset_postgres
from tests.conftest import postgres_url as pg_url
from tests.test_event_time import START, standing

EXE = Path(sys.executable).with_name("smallwins")


def write_config(folder: Path) -> Path:
    config = folder / "plugins.toml"
    config.write_text(
        f'[smallwins]\ncatalogue = "{REPO / "achievements.toml"}"\ndefault_timezone = "Europe/Berlin"\n'
        "[plugins.web_widget]\nenabled = false\n"
    )
    return config


def shuffled_with_duplicates(folder: Path) -> tuple[Path, int]:
    events = generate_community(members=150, weeks=6, seed=5, start=START).events
    rng = random.Random(3)
    lines = [json.dumps(e.to_json()) for e in events]
    lines += rng.sample(lines, len(lines) // 10)  # retried deliveries
    rng.shuffle(lines)
    path = folder / "community.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, len(events)


def worker_pids(parent: int) -> list[int]:
    """The ingest workers: spawned children of the command (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(stat[1]) == parent and b"resource_tracker" not in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def stored(url: str) -> int:
    store = open_store(url)
    try:
        with store.sessions() as session:
            return session.scalar(select(func.count()).select_from(StoredEvent)) or 0
    finally:
        store.close()


def stored_so_far(probe: Engine) -> int:
    """Events stored now, 0 while the workers are still creating the schema."""
    try:
        with probe.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM events")).scalar_one()
    except ProgrammingError:
        return 0


@pytest.mark.postgres
def test_four_workers_with_one_killed_match_a_single_process(tmp_path: Path) -> None:
    postgres_url = pg_url()
    reset_postgres(postgres_url)
    config = write_config(tmp_path)
    community, events = shuffled_with_duplicates(tmp_path)
    single = f"sqlite:///{tmp_path / 'single.db'}"
    done = subprocess.run(
        [str(EXE), "ingest", str(community), "-c", str(config), "--db", single],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr

    command = [str(EXE), "ingest", str(community), "-c", str(config), "--db", postgres_url, "--workers", "4",
               "--batch-size", "10"]  # commits as it goes, so a worker is killed with part of its share in
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.monotonic() + 120
    # Watched over one connection (opening a store per look took long enough for the workers to
    # finish their shares in between, once the ingest got faster): killed a tenth of the way in.
    probe = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        while stored_so_far(probe) < events // 10 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.02)
    finally:
        probe.dispose()
    workers = worker_pids(first.pid)
    assert len(workers) == 4 and first.poll() is None, "four workers were ingesting"
    os.kill(workers[1], signal.SIGKILL)
    _, err = first.communicate(timeout=300)
    said = " ".join(err.split())
    assert first.returncode == 2 and "exited with -9" in said and "run the same command again" in said, err
    assert stored(postgres_url) < stored(single), "the killed worker's share is not all in"

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "by 4 workers" in " ".join(again.stdout.split())
    assert stored(postgres_url) == stored(single)

    single_store, parallel_store = open_store(single), open_store(postgres_url)
    try:
        assert standing(parallel_store) == standing(single_store)
    finally:
        single_store.close()
        parallel_store.close()


def test_workers_need_postgresql(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "e.jsonl").write_text("")
    done = subprocess.run(
        [
            str(EXE),
            "ingest",
            str(tmp_path / "e.jsonl"),
            "-c",
            str(config),
            "--db",
            f"sqlite:///{tmp_path / 'x.db'}",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--workers needs PostgreSQL" in done.stderr
    assert not (tmp_path / "x.db").exists(), "a refused command creates no database"


@pytest.mark.postgres
def test_workers_print_the_warnings_a_single_process_would(tmp_path: Path) -> None:
    postgres_url = pg_url()
    reset_postgres(postgres_url)
    config = write_config(tmp_path)
    at = START.isoformat()
    lines = [
        {"id": "w1", "source": "discord", "type": "message.posted", "subject": "ann", "time": at},
        {"id": "w2", "source": "discord", "type": "weird.thing", "subject": "bob", "time": at},
        {"id": "w3", "source": "youtube", "type": "comment.posted", "subject": "cy", "time": at},
    ]
    (tmp_path / "e.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    command = [str(EXE), "ingest", str(tmp_path / "e.jsonl"), "-c", str(config), "--db", postgres_url,
               "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 stored" in done.stdout
    assert "discord:w2: unknown event type 'weird.thing'" in done.stderr.replace("\n", "")


@pytest.mark.postgres
def test_workers_report_each_refused_line_once_in_file_order(tmp_path: Path) -> None:
    """No worker knows the owner of a broken line: worker 0 reports it, and only it, as one process would."""
    postgres_url = pg_url()
    reset_postgres(postgres_url)
    config = write_config(tmp_path)
    at = START.isoformat()
    good = [
        json.dumps({"id": f"g{n}", "source": "discord", "type": "message.posted", "subject": f"m{n}", "time": at})
        for n in range(12)  # accounts of every partition
    ]
    lines = [
        good[0], "{not json", *good[1:4],
        json.dumps({"id": "x1", "source": "discord", "type": "message.posted", "time": at}),  # no subject
        *good[4:8], "[1, 2]",
        json.dumps({"id": "x2", "source": "discord", "type": "message.posted", "subject": "m1", "time": "soon"}),
        *good[8:],
    ]
    data = tmp_path / "e.jsonl"
    data.write_bytes(("\n".join(lines) + "\n").encode() + b'{"id": "\xff"}\n')

    def refused(stderr: str, stdout: str) -> tuple[list[str], str]:
        said = [line for line in stderr.splitlines() if line.startswith(f"{data}:")]
        return said, " ".join(stdout.split())

    single = subprocess.run([str(EXE), "ingest", str(data), "-c", str(config), "--db",
                             f"sqlite:///{tmp_path / 'one.db'}"], capture_output=True, text=True, timeout=300)
    parallel = subprocess.run([str(EXE), "ingest", str(data), "-c", str(config), "--db", postgres_url,
                               "--workers", "3"], capture_output=True, text=True, timeout=300)
    one_said, one_summary = refused(single.stderr, single.stdout)
    said, summary = refused(parallel.stderr, parallel.stdout)
    assert single.returncode == parallel.returncode == 1, parallel.stderr
    assert [line.split(":")[1] for line in said] == ["2", "6", "11", "12", "17"], parallel.stderr
    assert said == one_said
    assert "12 stored" in summary and "5 rejected" in summary and "5 rejected" in one_summary
    assert stored(postgres_url) == 12

    # Recorded payloads through a source: every worker parses every line, worker 0 reports
    payloads = subprocess.run([str(EXE), "ingest", str(data), "-c", str(config), "--db", postgres_url,
                               "--workers", "3", "--source", "jsonl"], capture_output=True, text=True, timeout=300)
    said, summary = refused(payloads.stderr, payloads.stdout)
    assert payloads.returncode == 1 and "12 already known" in summary and "5 rejected" in summary, payloads.stderr
    assert [line.split(":")[1] for line in said] == ["2", "6", "11", "12", "17"], payloads.stderr
