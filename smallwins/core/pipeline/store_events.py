"""Stage 2, dedup and store: one multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per chunk;
the database decides what is new, also across processes.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy.orm import Session

from smallwins.core.events import Event
from smallwins.core.pipeline.resolve import Resolution
from smallwins.core.store import (
    StoredEvent,
    dialect_insert,
)

#: Events per multi-row INSERT (12 bound values each: under SQLite's limit of 32,766).
STORE_CHUNK = 2000


@functools.cache
def _store_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (source, event_id) DO NOTHING RETURNING the keys stored; built once."""
    table = StoredEvent.__table__
    return (
        dialect_insert(dialect, table)  # type: ignore[arg-type]
        .on_conflict_do_nothing(index_elements=["source", "event_id"])
        .returning(table.c.source, table.c.event_id)
    )



class Storage(Resolution):
    """Stage 2, dedup and store: one multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per chunk;"""

    def _store_events(self, session: Session, items: list[tuple[Event, int]], retracted_keys: set[str]) -> set[str]:
        """One multi-row INSERT ... ON CONFLICT DO NOTHING for ``(event, member id)`` pairs, in
        the order given; the keys stored now (the database decides, so across processes too)."""
        rows: dict[str, dict[str, Any]] = {}
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
                    "ingested_at": self.clock(),
                }
        statement = _store_statement(self.store.dialect)
        values = list(rows.values())
        stored: set[str] = set()
        for start in range(0, len(values), STORE_CHUNK):
            chunk = values[start : start + STORE_CHUNK]
            stored.update(f"{source}:{event_id}" for source, event_id in session.execute(statement, chunk))
        return stored
