"""Copy a whole store into an empty database: the path from SQLite to PostgreSQL.

The target is migrated to the current schema first, then every table is copied in foreign-key
order with its ids, in one transaction (a failed copy leaves the target empty, the source is
only read). Afterwards each table's rows are counted on both sides and PostgreSQL's id
sequences are moved past the copied ids, so the next member or event gets a fresh id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy import Connection, Table, bindparam, func, insert, inspect, select, text, update
from sqlalchemy.engine import make_url

from smallwins.core.store import Base, Store, open_store

log = structlog.get_logger(__name__)

#: Rows read and inserted at a time.
COPY_CHUNK = 5_000
SCHEMA_TABLE = "alembic_version"


class CopyError(RuntimeError):
    """The copy cannot start, or its counts do not match."""


@dataclass
class TableCopy:
    name: str
    source_rows: int
    target_rows: int

    @property
    def matches(self) -> bool:
        return self.source_rows == self.target_rows


def _tables(source: Store) -> list[Table]:
    """The source's tables in foreign-key order; every one must have a model (typed copy)."""
    present = set(inspect(source.engine).get_table_names()) - {SCHEMA_TABLE}
    unknown = present - set(Base.metadata.tables)
    if unknown:
        names = ", ".join(sorted(unknown))
        raise CopyError(f"no model is loaded for table(s) {names}: enable the plugin that owns them")
    return [table for table in Base.metadata.sorted_tables if table.name in present]


def table_counts(store: Store) -> dict[str, int]:
    """Rows per table of the store (what a copy will move)."""
    with store.engine.connect() as conn:
        return {table.name: _count(conn, table) for table in _tables(store)}


def _count(conn: Connection, table: Table) -> int:
    return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _same_database(source: Store, target_url: str) -> bool:
    """Whether the target names the source's database (a SQLite file by its resolved path)."""
    ours, theirs = source.engine.url, make_url(target_url)
    if ours.get_backend_name() == theirs.get_backend_name() == "sqlite" and ours.database and theirs.database:
        return Path(ours.database).resolve() == Path(theirs.database).resolve()
    return ours.render_as_string(hide_password=False) == theirs.render_as_string(hide_password=False)


def copy_store(source: Store, target_url: str, *, on_rows: Callable[[str, int], None] | None = None) -> list[TableCopy]:
    """Copy every table of ``source`` into the empty database at ``target_url``; counts per table.

    ``on_rows(table, n)`` is called as rows are copied (for a progress bar).
    """
    if _same_database(source, target_url):
        raise CopyError("the target is the store itself: give another database")
    tables = _tables(source)
    target = open_store(target_url)
    try:
        with source.engine.connect() as reading, target.engine.begin() as writing:
            held = {t.name: n for t in tables if (n := _count(writing, t))}
            if held:
                listed = ", ".join(f"{name}: {n}" for name, n in sorted(held.items()))
                raise CopyError(f"the target already holds rows ({listed}); migrate-store copies into an empty one")
            if source.dialect == "postgresql":
                reading.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))  # one snapshot for all
            counts = {t.name: _count(reading, t) for t in tables}
            for table in tables:
                _copy_table(reading, writing, table, on_rows)
                log.info("copy_store.table_copied", table=table.name, rows=counts[table.name])
            if target.dialect == "postgresql":
                _advance_sequences(writing, tables)
        with target.engine.connect() as conn:
            copies = [TableCopy(t.name, counts[t.name], _count(conn, t)) for t in tables]
    finally:
        target.close()
    wrong = [c for c in copies if not c.matches]
    if wrong:
        differing = ", ".join(f"{c.name} {c.source_rows} -> {c.target_rows}" for c in wrong)
        raise CopyError(f"counts differ after the copy: {differing}")
    return copies


def _copy_table(
    reading: Connection, writing: Connection, table: Table, on_rows: Callable[[str, int], None] | None
) -> None:
    """Rows in primary-key order, a chunk per INSERT. A column that refers to its own table (a
    member merged into a later one) is filled in afterwards: the row it names may come later."""
    own = [c.name for c in table.columns if any(fk.column.table is table for fk in c.foreign_keys)]
    key = [c.name for c in table.primary_key.columns]
    later: list[dict[str, object]] = []
    order = list(table.primary_key.columns) or list(table.columns)
    result = reading.execution_options(yield_per=COPY_CHUNK).execute(select(table).order_by(*order))
    for chunk in result.partitions():
        rows = [dict(row._mapping) for row in chunk]
        for row in rows:
            if any(row[name] is not None for name in own):
                later.append({**{f"k_{name}": row[name] for name in key}, **{f"v_{name}": row[name] for name in own}})
                row.update(dict.fromkeys(own))
        writing.execute(insert(table), rows)
        if on_rows:
            on_rows(table.name, len(rows))
    if later:
        writing.execute(
            update(table)
            .where(*(table.c[name] == bindparam(f"k_{name}") for name in key))
            .values({name: bindparam(f"v_{name}") for name in own}),
            later,
        )


def _advance_sequences(conn: Connection, tables: list[Table]) -> None:
    """Move each serial id's sequence past the highest copied id."""
    for table in tables:
        column = table.c.get("id")
        if column is None or not column.primary_key or not column.autoincrement:
            continue
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                f" COALESCE((SELECT max(id) FROM {table.name}), 0) + 1, false)"
            )
        )
