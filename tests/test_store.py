"""The store on real databases: migrations, idempotent ingest across processes, the audit log."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import smallwins.adapters.web.models  # noqa: F401  (a built-in plugin's tables are part of the schema)
from smallwins.core.engine import Engine
from smallwins.core.store import AuditEntry, Award, Base, Member, Store, StoredEvent, open_store


def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_reopening_keeps_data(database_url: str, engine: Engine, make_event) -> None:
    engine.ingest(make_event())
    reopened = open_store(database_url)
    with reopened.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredEvent)) == 1
    reopened.close()


def test_same_event_twice_counts_once(engine: Engine, store: Store, make_event) -> None:
    event = make_event(id="dup-1")
    first, second = engine.ingest(event), engine.ingest(event)
    assert first.stored and not second.stored
    assert first.awarded == ["first-words"] and second.awarded == []
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredEvent)) == 1
        assert session.scalar(select(Member.points)) == 2 + 10  # one message + First Words


def test_same_id_from_another_source_is_another_event(engine: Engine, make_event) -> None:
    assert engine.ingest(make_event(id="42", source="discord")).stored
    assert engine.ingest(make_event(id="42", source="youtube", type="comment.posted")).stored


def test_audit_log_is_append_only(engine: Engine, store: Store, make_event) -> None:
    engine.ingest(make_event())
    with store.sessions() as session:
        entry = session.scalars(select(AuditEntry)).one()
        assert entry.action == "award" and entry.event_keys
    for statement in ("UPDATE audit_log SET reason = 'tampered'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))
    with store.sessions() as session:
        assert session.scalars(select(AuditEntry.reason)).one() != "tampered"


WORKER = """
import sys
from pathlib import Path
from smallwins.core.config import load_catalogue
from smallwins.core.engine import Engine
from smallwins.core.events import parse_event
from smallwins.core.plugins import PluginHost
from smallwins.core.logs import configure_logging
from smallwins.core.store import open_store

configure_logging("WARNING")
url, events_file, catalogue_file = sys.argv[1:4]
store = open_store(url)
engine = Engine(store, load_catalogue(Path(catalogue_file), PluginHost().rule_types()))
events = [parse_event(line) for line in Path(events_file).read_text().splitlines()]
for outcome in engine.ingest_many(events, batch_size=7):
    pass
"""


def test_two_processes_ingesting_the_same_events_count_once(
    database_url: str, store: Store, tmp_path: Path, make_event
) -> None:
    events = [make_event(subject=f"user{i % 10}", id=f"ev{i}") for i in range(120)]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(json.dumps(e.to_json()) for e in events))
    catalogue_file = Path(__file__).resolve().parent / "data" / "catalogue.toml"
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, database_url, str(events_file), str(catalogue_file)])
        for _ in range(2)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoredEvent)) == 120
        assert session.scalar(select(func.count()).select_from(Member)) == 10
        # each of the 10 members: 12 messages (24 points) + First Words (10) + Regular (25)
        assert sorted(session.scalars(select(Member.points))) == [59] * 10
        awards = session.execute(text("SELECT achievement_id, count(*) FROM awards GROUP BY achievement_id")).all()
        assert dict(awards) == {"first-words": 10, "regular": 10}


def test_driver_writes_store_what_sqlalchemy_would(store: Store) -> None:
    """Rows written by the driver directly (the ingest's bulk writes) read back, compare and sort
    exactly like rows SQLAlchemy wrote: same timestamp text on SQLite, JSON as JSON."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import Table, insert

    from smallwins.core.bulk import DriverWrite

    table = AuditEntry.__table__
    assert isinstance(table, Table)
    columns = ["at", "action", "member_id", "achievement_id", "actor", "reason", "event_keys", "details"]
    driver = DriverWrite(table, columns)
    moment = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
    row = {"action": "award", "member_id": 1, "achievement_id": "a", "actor": "t", "reason": "r",
           "event_keys": ["discord:1"], "details": {"n": 1, "nested": {"k": [1, 2]}}}
    with store.writes.begin() as session:
        session.execute(insert(table), [{**row, "at": moment, "reason": "orm"}])
        driver.execute(session, [{**row, "at": moment.astimezone(timezone(timedelta(hours=5)))}])
        driver.execute(session, [{**row, "at": moment + timedelta(microseconds=1), "reason": "later"}])
    with store.sessions() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.at, AuditEntry.id)))
        assert [e.reason for e in entries] == ["orm", "r", "later"]
        assert entries[0].at == entries[1].at == moment and entries[2].at > moment
        assert entries[1].details == row["details"] and entries[1].event_keys == ["discord:1"]
        same_moment = session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.at == moment))
        assert same_moment == 2, "the driver's timestamp equals SQLAlchemy's in SQL comparisons too"


def test_a_large_bulk_write_keeps_its_order_and_values(store: Store) -> None:
    """A set large enough for PostgreSQL's COPY path lands in the order given (ids follow it),
    with JSON, timestamps and NULLs intact; an upsert through it adds up on conflict."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import Table

    from smallwins.core.bulk import COPY_FROM, DriverWrite
    from smallwins.core.store import PointsCount

    table = AuditEntry.__table__
    assert isinstance(table, Table)
    columns = ["at", "action", "member_id", "achievement_id", "actor", "reason", "event_keys", "details"]
    start = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
    rows = [
        {"at": start - timedelta(seconds=n), "action": "award", "member_id": n,
         "achievement_id": None if n % 2 else "a", "actor": "t", "reason": f"row {n}",
         "event_keys": [f"discord:{n}"], "details": {"n": n, "text": "tab\there"}}
        for n in range(COPY_FROM * 3)
    ]
    counts = DriverWrite(
        PointsCount.__table__,  # type: ignore[arg-type]
        ("points", "members"),
        lambda insert: insert.on_conflict_do_update(
            index_elements=["points"], set_={"members": PointsCount.members + insert.excluded.members}
        ),
    )
    moves = [{"points": n, "members": n} for n in range(1, COPY_FROM * 2)]
    with store.writes.begin() as session:
        DriverWrite(table, columns).execute(session, rows)
        counts.execute(session, moves)
        counts.execute(session, moves)  # the same transaction again: the temporary table was emptied
    with store.sessions() as session:
        entries = list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        assert [e.reason for e in entries] == [row["reason"] for row in rows]
        assert [e.at for e in entries] == [row["at"] for row in rows]
        assert entries[3].achievement_id is None and entries[4].achievement_id == "a"
        assert entries[7].details == {"n": 7, "text": "tab\there"} and entries[7].event_keys == ["discord:7"]
        totals = dict(session.execute(select(PointsCount.points, PointsCount.members)).all())
        assert totals == {n: 2 * n for n in range(1, COPY_FROM * 2)}


def test_timestamps_are_utc_whatever_shape_the_stored_text_has(store: Store) -> None:
    """Written through the ORM (any zone) they read back as the same aware UTC instant; on
    SQLite the text is SQLAlchemy's own format, and text another tool wrote (an offset, no
    fraction, a ``T``) still reads as the instant it names."""
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2026, 3, 2, 12, 0, 0, 5, tzinfo=UTC)
    with store.writes.begin() as session:
        session.add(Member(display_name="zoned", created_at=moment.astimezone(timezone(timedelta(hours=-7)))))
    with store.sessions() as session:
        created = session.scalar(select(Member.created_at).where(Member.display_name == "zoned"))
        assert created == moment and created.tzinfo is UTC
        with pytest.raises(Exception, match="naive datetime"):
            session.scalar(select(Member.id).where(Member.created_at == datetime(2026, 3, 2)))
    if store.dialect != "sqlite":
        return
    with store.engine.begin() as conn:
        assert conn.scalar(text("SELECT created_at FROM members WHERE display_name = 'zoned'")) == (
            "2026-03-02 12:00:00.000005"
        )
        for name, stored in [("offset", "2026-03-02T14:00:00+02:00"), ("plain", "2026-03-02 12:00:00")]:
            conn.execute(
                text("INSERT INTO members (display_name, points, private, staff, created_at)"
                     " VALUES (:name, 0, 0, 0, :at)"),
                {"name": name, "at": stored},
            )
    with store.sessions() as session:
        read = dict(session.execute(select(Member.display_name, Member.created_at)).tuples().all())
        assert read["offset"] == read["plain"] == moment.replace(microsecond=0)
        assert read["offset"].tzinfo is UTC


def test_a_large_ingest_leaves_the_planner_statistics_for_the_leaderboard(tmp_path: Path) -> None:
    """Without statistics SQLite read a top 100 through the merged-members index and sorted every
    member; after a large ingest the store is analyzed and the leaderboard index answers it."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    import smallwins.core.pipeline.ingest as ingest_stage
    from smallwins.core import leaderboards
    from smallwins.core.config import load_catalogue
    from smallwins.core.events import Event
    from smallwins.core.plugins import PluginHost
    from tests.conftest import REPO

    store = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    try:
        now = datetime(2026, 3, 2, tzinfo=UTC)
        with store.writes.begin() as session:
            session.execute(insert(Member), [
                {"display_name": f"m{n}", "points": n % 97, "private": False, "staff": False, "created_at": now}
                for n in range(5000)
            ])
        query = select(Member.id).where(*leaderboards._public()).order_by(Member.points.desc(), Member.id).limit(100)
        sql = "EXPLAIN QUERY PLAN " + str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))

        def plan() -> str:
            with store.sessions() as session:
                return " ".join(str(row[-1]) for row in session.execute(text(sql)))

        assert "ix_members_merged_into_id" in plan(), "no statistics yet: the wrong index"
        engine = Engine(store, load_catalogue(REPO / "achievements.toml", PluginHost().rule_types()))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ingest_stage, "LARGE_INGEST", 3)  # what counts as a large ingest, made small
            events = [Event(id=f"e{n}", source="discord", type="message.posted", subject=f"u{n}", time=now)
                      for n in range(3)]
            list(engine.ingest_many(events))
        assert "ix_members_leaderboard" in plan() and "TEMP B-TREE" not in plan()
    finally:
        store.close()


def test_a_failing_bulk_write_raises_sqlalchemys_error(store: Store) -> None:
    """A database error in a bulk write is SQLAlchemy's on every path, PostgreSQL's COPY included:
    the ingest retries a deadlock and falls back to one event at a time on a SQLAlchemyError."""
    from datetime import UTC, datetime

    from sqlalchemy.exc import IntegrityError

    from smallwins.core import awards
    from smallwins.core.bulk import COPY_FROM

    moment = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    same_award = {"member_id": 1, "achievement_id": "twice", "tier": None, "status": "active", "origin": "rule",
                  "home_member_id": 1, "awarded_at": moment, "updated_at": moment}
    with store.writes.begin() as session:
        session.add(Member(id=1, display_name="m", points=0))
    for count in (2, COPY_FROM):
        with pytest.raises(IntegrityError), store.writes.begin() as session:
            awards._INSERT_AWARD.execute(session, [same_award] * count)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Award)) == 0, "nothing of a failed write is kept"


def test_json_columns_turn_non_string_keys_into_strings_as_the_standard_library_does() -> None:
    """json_text tries orjson's fast path first; a rule state keyed by numbers still stores."""
    import json

    from smallwins.core.store import json_text

    for value in ({"a": [1, 2.5, None, True]}, {1: "one", "x": {2: [3]}}, {"é": "ü"}):
        assert json.loads(json_text(value)) == json.loads(json.dumps(value))
    with pytest.raises(TypeError):
        json_text({"a": object()})
