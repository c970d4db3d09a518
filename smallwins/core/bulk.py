"""Bulk writes on the ingest path, handed to the database driver as they are.

For an executemany, SQLAlchemy runs each bound value through its type's processor and builds a
parameter set per row in Python; for the tens of thousands of rule states, period points, audit
entries and outbox items a batch writes, that cost more than the database's own work. Here the
statement is still SQLAlchemy's (compiled once per dialect), and rows are converted with a
converter per column into exactly what SQLAlchemy would have sent: JSON as text, and on SQLite
timestamps as naive-UTC text in SQLAlchemy's storage format (so reads and comparisons agree).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, DateTime, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from smallwins.core.store import UtcDateTime, json_text, sqlite_timestamp

Converter = Callable[[Any], Any]


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json_text(value)


def _converter(column_type: Any, dialect: str) -> Converter | None:
    if isinstance(column_type, JSON) or isinstance(getattr(column_type, "impl", None), JSON):
        return _json_or_none
    if dialect == "sqlite" and isinstance(column_type, (UtcDateTime, DateTime)):
        return sqlite_timestamp
    return None


@dataclass
class DriverWrite:
    """A write statement over ``columns`` of ``table``, run by the driver for many rows at once.

    ``build(dialect_name)`` returns the SQLAlchemy statement (an INSERT, or an upsert).
    """

    table: Table
    columns: Sequence[str]
    build: Callable[[str], Any]
    _compiled: dict[str, tuple[str, list[str], list[Converter | None]]] = field(default_factory=dict)

    def _for(self, dialect: Dialect) -> tuple[str, list[str], list[Converter | None]]:
        if dialect.name not in self._compiled:
            compiled = self.build(dialect.name).compile(dialect=dialect, column_keys=list(self.columns))
            order = list(compiled.positiontup) if compiled.positional else list(self.columns)
            converters = [_converter(self.table.c[name].type, dialect.name) for name in order]
            self._compiled[dialect.name] = (compiled.string, order, converters)
        return self._compiled[dialect.name]

    def execute(self, session: Session, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        connection = session.connection()
        sql, order, converters = self._for(connection.dialect)
        # Hot (tens of thousands of rows a batch): pick the columns in C, convert only those that need it.
        pick = itemgetter(*order) if len(order) > 1 else lambda row: (row[order[0]],)
        converting = [(i, convert) for i, convert in enumerate(converters) if convert is not None]
        values: list[Any] = [pick(row) for row in rows]
        if converting:
            for n, picked in enumerate(values):
                converted = list(picked)
                for i, convert in converting:
                    converted[i] = convert(converted[i])
                values[n] = tuple(converted)
        if not connection.dialect.positional:
            values = [dict(zip(order, value, strict=True)) for value in values]
        connection.exec_driver_sql(sql, values)
