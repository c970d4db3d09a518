"""The database: SQLAlchemy 2 typed models and the session factory.

SQLite file by default (zero set-up), any SQLAlchemy URL (PostgreSQL with psycopg 3) by config.
The schema is owned by Alembic migrations in ``smallwins/migrations``; :func:`open_store` brings
a database to the newest revision before handing out sessions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import structlog
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    any_,
    create_engine,
    event,
    func,
    literal,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeDecorator

log = structlog.get_logger(__name__)

#: 64-bit keys on PostgreSQL; SQLite only auto-increments a column declared INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is refused (its zone would be a guess)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


@functools.lru_cache(maxsize=16_384)
def sqlite_timestamp(value: datetime | None) -> str | None:
    """A timestamp as SQLAlchemy stores it in SQLite: naive UTC text, always six fraction digits.

    Remembered: the rows of a batch repeat a few instants (its commit time, the event that
    moved several states), and formatting one costs 15x a lookup on this kind of machine.
    Equal instants in other zones hash alike and format alike.
    """
    if value is None:
        return None
    return as_utc(value).isoformat(" ", "microseconds")[:26]  # without the "+00:00" of UTC


@functools.lru_cache(maxsize=16_384)
def _sqlite_utc(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, also on SQLite (which stores naive text).

    On SQLite, values are converted straight between aware datetimes and the stored text,
    remembered (SQLAlchemy's regular-expression parse plus a ``replace`` cost about 4 us per
    value on a 2-core machine, and an ingest reads hundreds of thousands); the text is exactly
    what SQLAlchemy's own ``DateTime`` writes and reads.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return sqlite_timestamp
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        fallback = super().result_processor(dialect, coltype)

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            try:
                return _sqlite_utc(value)
            except (TypeError, ValueError):  # not the text SQLAlchemy writes: its own parser decides
                return cast(datetime | None, fallback(value) if fallback is not None else value)

        return process


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Member(Base):
    """A person, whatever platforms they act on. A merged member points at the survivor."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    display_name: Mapped[str] = mapped_column(String(200))
    #: Event time of the event the display name came from (``None``: a placeholder, the account):
    #: the latest named event wins, whatever order events arrive in.
    named_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    timezone: Mapped[str | None] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Moderators and bots: they act (their approvals count) but hold no standing themselves.
    staff: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)


#: The all-time board reads members in this order (most points first, then the oldest member):
#: an index in exactly that order answers a top 100 from its first entries, with no sort.
Index("ix_members_leaderboard", Member.points.desc(), Member.id)


class PointsCount(Base):
    """How many public members (not merged, private or staff) hold each non-zero all-time points
    total: a rank is one more than the members above, summed here over distinct totals instead
    of counted over the members table. Kept by :mod:`smallwins.core.rank_index` (moves noted at
    every flush, written when the transaction commits).
    """

    __tablename__ = "points_counts"

    points: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    members: Mapped[int] = mapped_column(BigInteger, default=0)


class Identity(Base):
    """One platform account (discord user id, youtube channel id, email, web visitor id)."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(40))
    account: Mapped[str] = mapped_column(String(320))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    #: The member first created for this account; an unlink brings the account back to it.
    home_member_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("platform", "account", name="uq_identity_account"),)


class LinkCode(Base):
    """A one-time code a member asks for on one platform and presents on another."""

    __tablename__ = "link_codes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StoredEvent(Base):
    """A normalized event as ingested. ``(source, event_id)`` is unique: ingest is idempotent."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(320))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    proof: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    #: ``source:id`` of the event this one approves or reacts to (``data.target``), if any.
    target: Mapped[str | None] = mapped_column(String(250))
    #: ``source:id`` of the event this one retracts (``data.retracts``: a deletion, a removed reaction).
    retracts: Mapped[str | None] = mapped_column(String(250))
    #: Set when a retraction naming this event is stored (before or after this event arrived).
    retracted: Mapped[bool] = mapped_column(Boolean, default=False)
    ingested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("source", "event_id", name="uq_event_source_id"),
        # A member's history, in time order (replays, unlinking an account: member and subject).
        # Neither type nor (source, subject) is indexed: no query needs them, and every stored
        # event paid for both (migration 0012).
        Index("ix_events_member_time", "member_id", "time"),
        # Finding the event a platform object earned (a deleted Discord message) by its URL; a
        # hash index on PostgreSQL, whose btree refuses keys over ~2.7 kB.
        Index("ix_events_proof", "proof", postgresql_using="hash"),
        # Most events name no target and retract nothing: indexing only those that do spares every
        # other insert two index entries (lookups are by value, which implies NOT NULL).
        Index("ix_events_target", "target", sqlite_where=text("target IS NOT NULL"),
              postgresql_where=text("target IS NOT NULL")),
        Index("ix_events_retracts", "retracts", sqlite_where=text("retracts IS NOT NULL"),
              postgresql_where=text("retracts IS NOT NULL")),
    )

    @property
    def key(self) -> str:
        return f"{self.source}:{self.event_id}"


class MemberStates(Base):
    """Every achievement's incremental evaluation state for one member (counters, streaks...).

    One row per member, a JSON object keyed by achievement id (see
    :mod:`smallwins.core.rule_states`): a batch loads and writes each touched member's states
    with one row instead of one per achievement (325,000 rows per 100,000 events became 68,000).
    """

    __tablename__ = "member_states"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    #: ``json``, not ``jsonb``, on PostgreSQL: nothing queries inside it, and storing the text as
    #: it is costs the server less than building a binary document per row.
    states: Mapped[dict[str, Any]] = mapped_column(JSON(), default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class Award(Base):
    """A member's current standing on one achievement: active, or revoked by a moderator."""

    __tablename__ = "awards"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    achievement_id: Mapped[str] = mapped_column(String(80), index=True)
    tier: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked
    origin: Mapped[str] = mapped_column(String(16), default="rule")  # rule | manual
    #: The member it was awarded to; after a merge moved it, an unlink moves it back there.
    home_member_id: Mapped[int | None] = mapped_column(BigId)
    awarded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("member_id", "achievement_id", name="uq_award_member"),)


class Voucher(Base):
    """A redeemable code an achievement issued, claimable until ``expires_at``."""

    __tablename__ = "vouchers"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    achievement_id: Mapped[str] = mapped_column(String(80), index=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: The member it was issued to; after a merge moved it, an unlink moves it back there.
    home_member_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (UniqueConstraint("member_id", "achievement_id", name="uq_voucher_member"),)


class PeriodPoints(Base):
    """Points a member earned in one period of a time-boxed leaderboard; past periods stay."""

    __tablename__ = "period_points"

    board: Mapped[str] = mapped_column(String(80), primary_key=True)
    period: Mapped[str] = mapped_column(String(40), primary_key=True)  # 2026-W10, 2026-03, season
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_period_points_rank", "board", "period", "points"),)


class BackfillRun(Base):
    """Progress of a backfill, so an interrupted one resumes where it stopped."""

    __tablename__ = "backfill_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    catalogue: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_member_id: Mapped[int] = mapped_column(BigInteger, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    awarded: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[int] = mapped_column(Integer, default=0)
    changed_tiers: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntry(Base):
    """Append-only: every award, revocation, grant, link and merge, with reason and evidence.

    Database triggers (see the initial migration) refuse UPDATE and DELETE on this table.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[int] = mapped_column(BigInteger, index=True)
    achievement_id: Mapped[str | None] = mapped_column(String(80))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    event_keys: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class OutboxItem(Base):
    """A presentation change waiting for presenters; each presenter keeps its own cursor."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    member_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class Handoff(Base):
    """An approval one ingest worker leaves to another: stored by the worker of its actor's
    partition (``cause``, its key), it counts for ``member_id``, the author of a contribution in
    another worker's partition, whose worker applies it (no cross-worker member locks); the
    command drains what is left. See :mod:`smallwins.core.pipeline.handoff`.
    """

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    partition_count: Mapped[int] = mapped_column(Integer)
    partition_index: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(BigInteger)
    cause: Mapped[str] = mapped_column(String(250))

    __table_args__ = (Index("ix_handoffs_partition", "partition_count", "partition_index", "id"),)


class SourceCursor(Base):
    """Where a source's capture stands (last UID, page token, last message id per channel)."""

    __tablename__ = "source_cursors"

    source: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class PresenterCursor(Base):
    """The last outbox item a presenter has applied: a presenter that is down loses nothing."""

    __tablename__ = "presenter_cursors"

    presenter: Mapped[str] = mapped_column(String(80), primary_key=True)
    last_outbox_id: Mapped[int] = mapped_column(BigInteger, default=0)
    #: While a presenter fails: the change it is stuck on, why, and since when (cleared once past it).
    failing_outbox_id: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ParkedChange(Base):
    """A change a presenter could never apply (missing permission, member gone): set aside with why.

    Parking lets the presenter's cursor move on, so one member's permanent failure does not hold
    back everyone else's changes; ``smallwins outbox retry`` applies it again once fixed.
    """

    __tablename__ = "outbox_parked"

    presenter: Mapped[str] = mapped_column(String(80), primary_key=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    parked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when a transaction begins (savepoints work), wait
    # for a writer in another process instead of failing, and keep foreign keys honest.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # A writing transaction takes the write lock up front (IMMEDIATE), so two writer processes
    # queue instead of deadlocking on a lock upgrade; a reading one does not block writers.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


def json_text(value: Any) -> str:
    """JSON columns (event data, rule states, outbox payloads) through orjson: on the ingest path
    several times faster than the standard library; non-string keys become strings, as there
    (orjson's option for that halves its speed, so it is only asked for when a key needs it)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_db_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings smallwins relies on for that dialect."""
    parsed = make_url(url)
    json_codec = {"json_serializer": json_text, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        # Few cached prepared statements: the ingest's multi-row statements differ in row count
        # from batch to batch and each holds thousands of parameters; the driver's default of 128
        # kept ~100 MB of them alive by 120k events (16: RSS 197 -> 304 MB became 185 -> 218 MB).
        engine = create_engine(url, connect_args={"timeout": 30, "cached_statements": 16}, **json_codec)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, **json_codec)


WRITE_OPTION = "smallwins_writes"


@dataclass
class Store:
    """An opened, migrated database: ``sessions`` for reading, ``writes`` for changing it.

    ``before_commit`` holds functions run in every writing session just before it commits
    (work accumulated in memory during a batch is written there).
    """

    engine: Engine
    sessions: sessionmaker[Session]
    writes: sessionmaker[Session]
    before_commit: list[Callable[[Session], None]] = field(default_factory=list)

    def _run_before_commit(self, session: Session) -> None:
        for hook in self.before_commit:
            hook(session)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def refresh_statistics(self) -> None:
        """Have the database re-sample its tables after a large ingest, so the query planner
        knows that nearly every member is unmerged: without statistics SQLite answered a top 100
        through the ``merged_into_id`` index and a sort (47 ms at 100k members, not 1 ms)."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE members")  # the table whose plans went wrong; 0.04 s at 100k

    def close(self) -> None:
        self.engine.dispose()


def update_members(session: Session, columns: dict[str, str], rows: list[tuple[Any, ...]]) -> None:
    """Set ``columns`` (name -> PostgreSQL type) of many members, ``(id, *values)`` per row in the
    order given, with one statement: the driver's executemany on SQLite (timestamps as stored
    text); on PostgreSQL one UPDATE joined to one array per column (an executemany there runs once
    per member on the server)."""
    if not rows:
        return
    connection = session.connection()
    names = list(columns)
    if connection.dialect.name == "postgresql":
        arrays = ", ".join(f"%({n})s::{kind}[]" for n, kind in columns.items())
        connection.exec_driver_sql(
            f"UPDATE members SET {', '.join(f'{n} = given.{n}' for n in names)}"
            f" FROM unnest(%(id)s::bigint[], {arrays}) AS given(id, {', '.join(names)})"
            " WHERE members.id = given.id",
            {name: [row[i] for row in rows] for i, name in enumerate(["id", *names])},
        )
        return
    convert = [sqlite_timestamp if kind == "timestamptz" else None for kind in columns.values()]
    connection.exec_driver_sql(
        f"UPDATE members SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
        [(*(f(v) if f else v for f, v in zip(convert, row[1:], strict=True)), row[0]) for row in rows],
    )


def next_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` unused ids for new rows of ``table`` (single integer primary key ``id``).

    For SQLite only: it cannot return autoincrement ids of a multi-row INSERT in parameter
    order, so SQLAlchemy would send such an INSERT (and an ORM flush of new rows) one row at a
    time. Ids chosen here let it batch. Safe because a SQLite write transaction holds the
    database's single write lock (``BEGIN IMMEDIATE``), and one that read before another
    committed cannot write at all (WAL snapshot).
    """
    highest = session.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(highest + 1, highest + 1 + count))


def _assign_sqlite_ids(session: Session, _context: Any, _instances: Any) -> None:
    """Before a flush on SQLite, give new rows their ids (see :func:`next_ids`), so the flush
    inserts each table's new rows in one batched statement instead of one per row."""
    if session.get_bind().dialect.name != "sqlite":
        return
    waiting: dict[Table, list[Any]] = {}
    for instance in session.new:
        table = instance.__table__
        if "id" in table.c and table.c.id.primary_key and table.c.id.autoincrement and instance.id is None:
            waiting.setdefault(table, []).append(instance)
    for table, instances in waiting.items():
        for instance, new_id in zip(instances, next_ids(session, table, len(instances)), strict=True):
            instance.id = new_id


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the database at ``url`` and (by default) upgrade its schema to the newest revision."""
    engine = create_db_engine(url)
    from smallwins.core import member_columns, rank_index  # rank counts (a flush listener, a writer)

    if migrate:
        from smallwins.core.migrate import upgrade

        upgrade(engine)
    log.debug("store.opened", dialect=engine.dialect.name)
    writer = engine.execution_options(**{WRITE_OPTION: True})
    store = Store(
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        writes=sessionmaker(writer, expire_on_commit=False),
    )
    store.before_commit.append(rank_index.write_pending)  # flushes first, then notes the rank moves
    store.before_commit.append(member_columns.write_pending)
    event.listen(store.writes, "before_commit", store._run_before_commit)
    event.listen(store.writes, "before_flush", _assign_sqlite_ids)
    return store


def insert_ignoring_conflict(
    session: Session, model: type[Base], values: dict[str, Any], conflict_columns: list[str]
) -> int | None:
    """INSERT a row unless a unique constraint already holds it; the new id, or ``None``.

    The database decides, not a Python set, so this holds across processes.
    """
    statement = _insert_ignoring_statement(session.get_bind().dialect.name, model, tuple(conflict_columns))
    return session.execute(statement, values).scalar_one_or_none()


@functools.cache
def _insert_ignoring_statement(dialect: str, model: type[Base], conflict_columns: tuple[str, ...]) -> Any:
    """Built once per model: the hot ingest path only binds values."""
    return (
        dialect_insert(dialect, model).on_conflict_do_nothing(index_elements=list(conflict_columns)).returning(model.id)  # type: ignore[attr-defined]
    )


def dialect_insert(dialect: str, model: type[Base] | Table) -> Any:
    """The dialect's INSERT construct, which knows ON CONFLICT (SQLite and PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"unsupported database dialect {dialect}")


def _sqlite_json_each(values: list[Any], *paths: str) -> Any:
    """The rows of one JSON array bound as a single parameter (``json_each``), on SQLite.

    An expanded ``IN`` list is thousands of parameters, compiled into a new statement for every
    batch; a row-value ``IN`` list of pairs made SQLite probe the index once per pair per row
    (5,000 pairs over 500,000 events: 130 ms, against 13 ms through ``json_each``).
    """
    array = func.json_each(literal(orjson.dumps(values).decode(), Text()))
    value: Any = literal_column("value")
    columns = [func.json_extract(value, path) for path in paths] if paths else [value]
    return select(*columns).select_from(array)


def one_of(session: Session, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """``column IN values``, as ``column = ANY(array)`` on PostgreSQL: one bound array instead of
    thousands of parameters, which a batch's lookups would otherwise send and plan each time."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(ColumnElement[bool], column.in_(_sqlite_json_each(list(values))))
    if session.get_bind().dialect.name != "postgresql":
        return cast(ColumnElement[bool], column.in_(values))
    element_type = BigInteger() if isinstance(column.type, (Integer, BigInteger)) else Text()
    return cast(ColumnElement[bool], column == any_(literal(list(values), ARRAY(element_type))))


def pair_in(session: Session, first: Any, second: Any, pairs: Collection[tuple[str, ...]]) -> ColumnElement[bool]:
    """``(first, second) IN pairs`` (a platform and account, a source and event id).

    On PostgreSQL a row-value IN list of thousands of pairs takes seconds to plan; a semi-join on
    two unnested arrays takes milliseconds.
    """
    if session.get_bind().dialect.name == "sqlite":
        return tuple_(first, second).in_(_sqlite_json_each([list(p) for p in pairs], "$[0]", "$[1]"))
    if session.get_bind().dialect.name != "postgresql":
        return tuple_(first, second).in_(list(pairs))
    lefts, rights = [p[0] for p in pairs], [p[1] for p in pairs]
    wanted = select(func.unnest(literal(lefts, ARRAY(Text()))), func.unnest(literal(rights, ARRAY(Text()))))
    return tuple_(first, second).in_(wanted)
