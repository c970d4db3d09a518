"""``smallwins migrate-store --to URL``: the embedded SQLite store copied into PostgreSQL, every
table and id kept, counted on both sides, and the copy goes on working (new ids, same ranks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from smallwins.cli import app
from smallwins.core import leaderboards
from smallwins.core.store import AuditEntry, Member, PointsCount, StoredEvent, open_store
from smallwins.demo import generate_community
from tests.conftest import REPO, reset_postgres
from tests.conftest import postgres_url as pg_url
from tests.test_event_time import START, standing

runner = CliRunner()


def setup_sqlite_store(folder: Path) -> tuple[Path, str]:
    config = folder / "plugins.toml"
    config.write_text(
        f'[smallwins]\ncatalogue = "{REPO / "achievements.toml"}"\n[smallwins.store]\nurl = "sqlite:///{folder}/sw.db"\n'
    )
    events = generate_community(members=60, weeks=3, seed=2, start=START).events
    (folder / "events.jsonl").write_text("\n".join(json.dumps(e.to_json()) for e in events) + "\n")
    done = runner.invoke(app, ["ingest", str(folder / "events.jsonl"), "-c", str(config)])
    assert done.exit_code == 0, done.output
    merge_forward(config)
    return config, f"sqlite:///{folder}/sw.db"


def merge_forward(config: Path) -> None:
    """Merge an older member into a newer one: a members row that names a later row."""
    from smallwins.core.app import build_app
    from smallwins.core.identity import AccountRef
    from smallwins.core.store import Identity

    smallwins = build_app(config)
    try:
        with smallwins.store.sessions() as session:
            accounts = session.execute(
                select(Identity.platform, Identity.account)
                .join(Member, Member.id == Identity.member_id)
                .where(Member.staff.is_(False))
                .order_by(Identity.member_id)
            ).all()
        oldest, newest = AccountRef(*accounts[0]), AccountRef(*accounts[-1])
        code = smallwins.engine.issue_link_code(newest)  # the code's owner survives
        smallwins.engine.redeem_link_code(code, oldest)
    finally:
        smallwins.close()


def counts(url: str) -> dict[str, int]:
    store = open_store(url)
    try:
        with store.sessions() as session:
            return {
                model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Member, StoredEvent, AuditEntry, PointsCount)
            }
    finally:
        store.close()


@pytest.mark.postgres
def test_sqlite_store_moves_to_postgresql_whole(tmp_path: Path) -> None:
    target = pg_url()
    reset_postgres(target)
    config, source = setup_sqlite_store(tmp_path)

    done = runner.invoke(app, ["migrate-store", "--to", target, "-c", str(config)], terminal_width=200)
    assert done.exit_code == 0, done.output
    assert "Copied, counted on both sides" in done.output and "events" in done.output
    assert "[smallwins.store] url" in done.output, "the next step is named"
    assert counts(target) == counts(source) and counts(target)["events"] > 100
    merged = open_store(target)
    try:
        with merged.sessions() as session:
            assert session.scalar(select(func.count()).where(Member.merged_into_id > Member.id)) == 1
    finally:
        merged.close()

    before, after = open_store(source), open_store(target)
    try:
        assert standing(after) == standing(before)
        with before.sessions() as old, after.sessions() as new:
            members = list(old.scalars(select(Member).order_by(Member.id)))
            assert leaderboards.ranks_of(new, list(new.scalars(select(Member).order_by(Member.id)))) == (
                leaderboards.ranks_of(old, members)
            )
    finally:
        before.close()
        after.close()

    # The copy is a working store: a new account gets an id past the copied ones.
    (tmp_path / "more.jsonl").write_text(
        json.dumps({"id": "new-1", "source": "discord", "type": "message.posted", "subject": "newcomer",
                    "time": "2026-03-30T10:00:00Z"}) + "\n"
    )
    more = runner.invoke(app, ["ingest", str(tmp_path / "more.jsonl"), "-c", str(config), "--db", target])
    assert more.exit_code == 0, more.output
    assert counts(target)["members"] == counts(source)["members"] + 1


@pytest.mark.postgres
def test_copy_refuses_a_target_that_holds_data(tmp_path: Path) -> None:
    target = pg_url()
    reset_postgres(target)
    config, source = setup_sqlite_store(tmp_path)
    assert runner.invoke(app, ["migrate-store", "--to", target, "-c", str(config)]).exit_code == 0
    again = runner.invoke(app, ["migrate-store", "--to", target, "-c", str(config)], terminal_width=200)
    assert again.exit_code == 2
    assert "already holds rows" in again.output and "members:" in again.output
    assert counts(target) == counts(source), "the refused copy wrote nothing"


def test_copy_onto_itself_is_refused(tmp_path: Path) -> None:
    config, source = setup_sqlite_store(tmp_path)
    before = counts(source)
    done = runner.invoke(app, ["migrate-store", "--to", source, "-c", str(config)], terminal_width=200)
    assert done.exit_code == 2 and "the target is the store itself" in done.output
    roundabout = f"sqlite:///{tmp_path}/../{tmp_path.name}/sw.db"  # the same file, named another way
    done = runner.invoke(app, ["migrate-store", "--to", roundabout, "-c", str(config)], terminal_width=200)
    assert done.exit_code == 2 and "the target is the store itself" in done.output
    assert counts(source) == before
