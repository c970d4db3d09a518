"""Same events, same standing: a realistic community delivered in any order.

The demo's generator makes a community of several hundred members over two months on four
sources (posts, reactions naming posts, moderator approvals days later, retried deliveries).
Ingested in time order, shuffled, in chunks by separate processes, or by concurrent processes on
PostgreSQL, it must reach exactly the same awards, award dates, tiers, points and time-boxed
boards.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from smallwins.core.config import load_catalogue
from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.plugins import PluginHost
from smallwins.core.store import Award, Identity, Member, PeriodPoints, Store, open_store
from smallwins.demo import generate_community
from tests.conftest import REPO

START = datetime(2026, 8, 3, tzinfo=UTC)
NOW = START + timedelta(weeks=9, days=1)


@pytest.fixture(scope="module")
def community() -> list[Event]:
    events = generate_community(members=300, weeks=9, seed=11, start=START).events
    assert len(events) > 5000
    assert sum(e.type == "moderator.approved" for e in events) > 50
    return events


def launch_engine(store: Store) -> Engine:
    host = PluginHost()
    catalogue = load_catalogue(REPO / "achievements.toml", host.rule_types())
    return Engine(store, catalogue, default_timezone="Europe/Berlin", clock=lambda: NOW)


def standing(store: Store) -> dict[str, Any]:
    """Everything a member sees, keyed by their platform account (member ids depend on arrival)."""
    with store.sessions() as session:
        account = {
            member_id: f"{platform}:{name}"
            for member_id, platform, name in session.execute(
                select(Identity.member_id, Identity.platform, Identity.account)
            )
        }
        awards = sorted(
            (account[a.member_id], a.achievement_id, a.status, a.tier, a.awarded_at.isoformat())
            for a in session.scalars(select(Award))
        )
        points = sorted((account[m.id], m.points) for m in session.scalars(select(Member)) if m.points)
        boards = sorted(
            (row.board, row.period, account[row.member_id], row.points)
            for row in session.scalars(select(PeriodPoints).where(PeriodPoints.points != 0))
        )
        staff = sorted(account[m.id] for m in session.scalars(select(Member).where(Member.staff.is_(True))))
    return {"awards": awards, "points": points, "boards": boards, "staff": staff}


def ingest(url: str, events: list[Event], *, batch_size: int = 500) -> dict[str, Any]:
    store = open_store(url)
    try:
        list(launch_engine(store).ingest_many(events, batch_size=batch_size))
        return standing(store)
    finally:
        store.close()


def test_shuffled_community_reaches_the_time_order_standing(community: list[Event], tmp_path: Path) -> None:
    """SQLite, one process; the concurrent test below covers PostgreSQL."""
    in_order = ingest(f"sqlite:///{tmp_path / 'ordered.db'}", community)
    assert len(in_order["awards"]) > 100 and in_order["boards"], "the community earns plenty"
    assert in_order["staff"] == ["discord:100000000000000001"], "the moderator is staff, not a member"
    assert not any(who == "discord:100000000000000001" for _, _, who, _ in in_order["boards"])

    shuffled = list(community)
    random.Random(5).shuffle(shuffled)
    redelivered = shuffled + random.Random(6).sample(community, 200)
    late = ingest(f"sqlite:///{tmp_path / 'shuffled.db'}", redelivered, batch_size=250)
    assert late == in_order


def test_newest_first_catch_up_matches(tmp_path: Path) -> None:
    """A bot catching up after a restart reads history newest first, in small pages."""
    community = generate_community(members=120, weeks=9, seed=12, start=START).events
    in_order = ingest(f"sqlite:///{tmp_path / 'a.db'}", community)
    backwards = ingest(f"sqlite:///{tmp_path / 'b.db'}", community[::-1], batch_size=100)
    assert backwards == in_order


def write_chunks(events: list[Event], folder: Path, count: int) -> list[Path]:
    shuffled = list(events)
    random.Random(9).shuffle(shuffled)
    paths = []
    for n in range(count):
        path = folder / f"chunk{n}.jsonl"
        path.write_text("".join(json.dumps(e.to_json()) + "\n" for e in shuffled[n::count]))
        paths.append(path)
    return paths


def cli_workdir(tmp_path: Path) -> Path:
    shutil.copy(REPO / "achievements.toml", tmp_path)
    (tmp_path / "plugins.toml").write_text(
        '[smallwins]\ncatalogue = "achievements.toml"\ndefault_timezone = "Europe/Berlin"\n'
        "[plugins.jsonl]\nenabled = true\n"
    )
    return tmp_path


def smallwins(*args: str, cwd: Path) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).parent / "smallwins"), *args]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_chunks_ingested_by_separate_processes_match_time_order(community: list[Event], tmp_path: Path) -> None:
    """SQLite: one process after another, each with a shuffled slice of the community."""
    workdir = cli_workdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'chunks.db'}"
    for path in write_chunks(community, tmp_path, 3):
        process = smallwins("ingest", str(path), "--db", url, cwd=workdir)
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    store = open_store(url)
    chunked = standing(store)
    store.close()
    assert chunked == ingest(f"sqlite:///{tmp_path / 'ordered.db'}", community)


@pytest.mark.postgres
def test_concurrent_processes_on_postgresql_match_time_order(community: list[Event], tmp_path: Path) -> None:
    """PostgreSQL: several processes at once, each with a shuffled slice, starting on an empty database."""
    from tests.conftest import postgres_url, reset_postgres

    url = postgres_url()
    reset_postgres(url)
    workdir = cli_workdir(tmp_path)
    processes = [smallwins("ingest", str(p), "--db", url, cwd=workdir) for p in write_chunks(community, tmp_path, 3)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    store = open_store(url)
    concurrent = standing(store)
    store.close()
    assert concurrent == ingest(f"sqlite:///{tmp_path / 'ordered.db'}", community)
