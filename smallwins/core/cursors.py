"""Persisted cursors for sources: where a capture task stands, so a restart neither re-reads
everything nor misses anything (last IMAP UID, a YouTube page token, last Discord message id).

One small table shared by every source, keyed by ``(source, key)``; values are JSON objects.
Writes are upserts, so two processes saving the same cursor never fail on a unique constraint.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from smallwins.core.store import SourceCursor, Store, dialect_insert, utcnow


class CursorStore:
    """The cursors of one source."""

    def __init__(self, store: Store, source: str) -> None:
        self.store = store
        self.source = source

    def get(self, key: str) -> dict[str, Any] | None:
        """The saved value, or ``None`` when this source never saved one under ``key``."""
        with self.store.sessions() as session:
            value = session.scalar(
                select(SourceCursor.value).where(SourceCursor.source == self.source, SourceCursor.key == key)
            )
        return dict(value) if value is not None else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Save ``value`` under ``key`` (replacing what was there), committed at once."""
        with self.store.writes.begin() as session:
            statement = dialect_insert(session.get_bind().dialect.name, SourceCursor).values(
                source=self.source, key=key, value=value, updated_at=utcnow()
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["source", "key"],
                    set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
                )
            )

    def all(self) -> dict[str, dict[str, Any]]:
        """Every cursor of this source, for `smallwins doctor`-style reports."""
        with self.store.sessions() as session:
            rows = session.execute(
                select(SourceCursor.key, SourceCursor.value).where(SourceCursor.source == self.source)
            ).all()
        return {key: dict(value) for key, value in rows}
