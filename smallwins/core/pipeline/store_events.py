"""Stage 2, dedup and store: the database decides what is new, also across processes.

SQLite: one lookup of the batch's keys, then the new rows through the driver's executemany (the
write transaction holds the database's only write lock). PostgreSQL: the batch is COPYed into a
temporary table and inserted with one INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING
(small batches: a multi-row INSERT ... RETURNING).
"""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from smallwins.core.bulk import DriverWrite
from smallwins.core.events import Event
from smallwins.core.pipeline.resolve import Resolution
from smallwins.core.store import (
    StoredEvent,
    dialect_insert,
    pair_in,
)

#: Events per multi-row INSERT (12 bound values each: under SQLite's limit of 32,766).
STORE_CHUNK = 2000
#: On PostgreSQL, batches of at least this many events go through COPY.
COPY_FROM = 50
COPY_COLUMNS = ("source", "event_id", "type", "subject", "member_id", "time", "proof", "data", "target", "retracts",
                "retracted", "ingested_at")


@functools.cache
def _store_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (source, event_id) DO NOTHING RETURNING the keys stored; built once."""
    table = StoredEvent.__table__
    return (
        dialect_insert(dialect, table)  # type: ignore[arg-type]
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(table.c.source, table.c.event_id)
    )


#: The events table's bulk writer: SQLite's executemany of the new rows, PostgreSQL's COPY path
#: (a conflict is ignored either way).
_EVENTS = DriverWrite(
    cast(Table, StoredEvent.__table__),
    COPY_COLUMNS,
    lambda insert: insert.on_conflict_do_nothing(index_elements=["source", "event_id"]),
)


class Storage(Resolution):
    """Stage 2, dedup and store: the database says which of the batch's events are new."""

    def _store_events(self, session: Session, items: list[tuple[Event, int]], retracted_keys: set[str]) -> set[str]:
        """Store ``(event, member id)`` pairs, in the order given, unless stored already; the keys
        stored now (the database decides, so across processes too)."""
        rows: dict[str, dict[str, Any]] = {}
        now = self.clock()  # one arrival time for the batch (and one timestamp to format)
        for event, member_id in items:
            if event.key not in rows:
                rows[event.key] = {
                    "source": event.source,
                    "event_id": event.id,
                    "type": event.type,
                    "subject": event.subject,
                    "member_id": member_id,
                    "time": event.time,
                    "proof": event.proof,
                    "data": event.data,
                    "target": event.target,
                    "retracts": None,
                    "retracted": event.key in retracted_keys,
                    "ingested_at": now,
                }
        values = list(rows.values())
        if self.store.dialect == "postgresql" and len(values) >= COPY_FROM:
            # COPY streams the batch instead of binding twelve parameters per event (the
            # multi-row INSERT was the slowest statement of a batch); RETURNING says what was new.
            written = _EVENTS.copy_returning(session, values, ("source", "event_id"))
            return {f"{source}:{event_id}" for source, event_id in written}
        if self.store.dialect == "sqlite":
            return _insert_new_sqlite(session, rows)
        statement = _store_statement(self.store.dialect)
        stored: set[str] = set()
        for start in range(0, len(values), STORE_CHUNK):
            chunk = values[start : start + STORE_CHUNK]
            stored.update(f"{source}:{event_id}" for source, event_id in session.execute(statement, chunk))
        return stored


def _insert_new_sqlite(session: Session, rows: dict[str, dict[str, Any]]) -> set[str]:
    """SQLite: ask which keys are stored already (one query), then insert the others with the
    driver's executemany, in the given order.

    The write transaction began IMMEDIATE, so no other writer can store a key in between: what
    was not there is what this batch stores. A RETURNING multi-row INSERT bound twelve values per
    event through SQLAlchemy's type processors, the costliest statement of a batch.
    """
    table = StoredEvent.__table__
    stored_already: set[str] = set()
    pairs = [(row["source"], row["event_id"]) for row in rows.values()]
    for start in range(0, len(pairs), STORE_CHUNK):
        named = pair_in(session, table.c.source, table.c.event_id, pairs[start : start + STORE_CHUNK])
        stored_already.update(f"{source}:{event_id}" for source, event_id in
                              session.execute(select(table.c.source, table.c.event_id).where(named)))
    fresh = {key: row for key, row in rows.items() if key not in stored_already}
    _EVENTS.execute(session, list(fresh.values()))
    return set(fresh)
