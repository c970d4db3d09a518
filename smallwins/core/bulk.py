"""Bulk writes on the ingest path, handed to the database driver as they are.

For an executemany, SQLAlchemy runs each bound value through its type's processor and builds a
parameter set per row in Python; for the tens of thousands of rule states, period points, audit
entries and outbox items a batch writes, that cost more than the database's own work. Here the
statement is still SQLAlchemy's (compiled once per dialect), and rows are converted with a
converter per column into exactly what SQLAlchemy would have sent: JSON as text, and on SQLite
timestamps as naive-UTC text in SQLAlchemy's storage format (so reads and comparisons agree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, Table, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from smallwins.core.store import UtcDateTime, dialect_insert, json_text, sqlite_timestamp

Converter = Callable[[Any], Any]
#: On PostgreSQL, sets of at least this many rows go through COPY (fewer: one executemany). The
#: COPY path costs four statements and a truncation at commit, which live sources, delivering a few
#: hundred events at a time, felt (bench_latency at 1,000 events/s, p99: 263 ms with executemany
#: only, 313 ms with COPY from 50 rows, 282 ms from 1,000; the bulk ingest's sets are larger).
COPY_FROM = 1_000


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json_text(value)


def _converter(column_type: Any, dialect: str) -> Converter | None:
    if isinstance(column_type, JSON) or isinstance(getattr(column_type, "impl", None), JSON):
        return _json_or_none
    if dialect == "sqlite" and isinstance(column_type, (UtcDateTime, DateTime)):
        return sqlite_timestamp
    return None


@contextmanager
def _driver_errors(statement: str) -> Iterator[None]:
    """Raise what the driver raises during raw work (COPY) as SQLAlchemy would have: the ingest
    retries a deadlock (an ``OperationalError``) and falls back to one event at a time on any
    ``SQLAlchemyError``, and a bare psycopg error would skip both."""
    try:
        yield
    except DBAPIError:
        raise
    except Exception as exc:
        import psycopg  # only on the PostgreSQL path

        if not isinstance(exc, psycopg.Error):
            raise
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def plain(insert: Any) -> Any:
    """No ON CONFLICT clause: a plain INSERT."""
    return insert


@dataclass
class DriverWrite:
    """An INSERT over ``columns`` of ``table``, run by the driver for many rows at once.

    ``conflict`` adds what to do on a conflict to the dialect's INSERT construct (it is given
    the construct, so that ``excluded`` can be named); :func:`plain` adds nothing. On SQLite the
    rows go to the driver's executemany. On PostgreSQL a large set is COPYed into a temporary
    table and inserted from there in one statement, in the order given: an executemany there
    runs the statement once per row on the server, which made the commit of a 10,000-event batch
    slower than the rest of it (rule states alone: 2.1 of 18 s per 50,000 events).
    """

    table: Table
    columns: Sequence[str]
    conflict: Callable[[Any], Any] = plain
    _compiled: dict[str, tuple[str, list[str], list[Converter | None]]] = field(default_factory=dict)
    _copied: dict[tuple[str, ...], str] = field(default_factory=dict)

    def _for(self, dialect: Dialect) -> tuple[str, list[str], list[Converter | None]]:
        if dialect.name not in self._compiled:
            statement = self.conflict(dialect_insert(dialect.name, self.table).inline())
            compiled = statement.compile(dialect=dialect, column_keys=list(self.columns))
            order = list(compiled.positiontup) if compiled.positional else list(self.columns)
            converters = [_converter(self.table.c[name].type, dialect.name) for name in order]
            self._compiled[dialect.name] = (compiled.string, order, converters)
        return self._compiled[dialect.name]

    def execute(self, session: Session, rows: list[dict[str, Any]] | list[tuple[Any, ...]]) -> None:
        """Write ``rows``: dicts by column name, or tuples in the order of ``columns``."""
        if not rows:
            return
        connection = session.connection()
        if connection.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
            self._copy_then_insert(session, rows)
            return
        sql, order, converters = self._for(connection.dialect)
        values = _converted(rows, order, converters, self.columns)
        if not connection.dialect.positional:
            values = [dict(zip(order, value, strict=True)) for value in values]
        connection.exec_driver_sql(sql, values)

    def copy_returning(
        self, session: Session, rows: list[dict[str, Any]] | list[tuple[Any, ...]], returning: tuple[str, ...]
    ) -> list[tuple[Any, ...]]:
        """PostgreSQL, any number of rows: the COPY path, returning ``returning`` of the rows the
        INSERT wrote (with ``ON CONFLICT DO NOTHING``: which of them were new)."""
        return self._copy_then_insert(session, rows, returning)

    def _copy_then_insert(
        self, session: Session, rows: list[dict[str, Any]] | list[tuple[Any, ...]], returning: tuple[str, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """PostgreSQL: COPY into ``<table>_incoming`` (emptied at commit), one INSERT ... SELECT."""
        incoming = f"{self.table.name}_incoming"
        names = ", ".join(self.columns)
        converters = [_converter(self.table.c[name].type, "postgresql") for name in self.columns]
        driver_connection = cast(Any, session.connection().connection.driver_connection)  # psycopg's, for COPY
        with _driver_errors(f"COPY {incoming} -> {self.table.name}"), driver_connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {incoming} ON COMMIT DELETE ROWS AS"
                f" SELECT 0 AS position, {names} FROM {self.table.name} WITH NO DATA"
            )
            with cursor.copy(f"COPY {incoming} (position, {names}) FROM STDIN") as copy:
                for position, value in enumerate(_converted(rows, list(self.columns), converters, self.columns)):
                    copy.write_row((position, *value))
            cursor.execute(self._insert_from(incoming, returning))
            written = cursor.fetchall() if returning else []
            cursor.execute(f"TRUNCATE {incoming}")
        return written

    def _insert_from(self, incoming: str, returning: tuple[str, ...]) -> str:
        if returning not in self._copied:
            source = Table(incoming, MetaData(), Column("position", Integer),
                           *(Column(name, self.table.c[name].type) for name in self.columns))
            select_rows = select(*(source.c[name] for name in self.columns)).order_by(source.c.position)
            statement = self.conflict(dialect_insert("postgresql", self.table).from_select(
                list(self.columns), select_rows, include_defaults=False
            ))
            if returning:
                statement = statement.returning(*(self.table.c[name] for name in returning))
            self._copied[returning] = str(statement.compile(dialect=postgresql.dialect()))
        return self._copied[returning]


def _converted(
    rows: list[dict[str, Any]] | list[tuple[Any, ...]],
    order: list[str],
    converters: list[Converter | None],
    columns: Sequence[str],
) -> list[Any]:
    """The rows as tuples in ``order``, each value converted where its column needs it (hot: tens
    of thousands of rows a batch; the columns are picked in C). Tuple rows are in ``columns``' order."""
    keys: list[Any] = [columns.index(name) for name in order] if isinstance(rows[0], tuple) else list(order)
    pick = itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    converting = [(i, convert) for i, convert in enumerate(converters) if convert is not None]
    values: list[Any] = [pick(row) for row in rows]
    if converting:
        for n, picked in enumerate(values):
            converted = list(picked)
            for i, convert in converting:
                converted[i] = convert(converted[i])
            values[n] = tuple(converted)
    return values
