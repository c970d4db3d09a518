"""Portable SQL pieces the metrics share: time as integer milliseconds, and the population.

Dates are compared as whole milliseconds since 1970 so that "7 days after the first action" is
exact integer arithmetic on both SQLite (julianday) and PostgreSQL (extract epoch), with no
float drift at window edges and no dialect-specific interval syntax in the metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Select, and_, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from smallwins.core.store import Member, StoredEvent

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


class epoch_ms(FunctionElement[int]):
    """Milliseconds since 1970-01-01 UTC of a stored timestamp, as an integer."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_ms"


@compiles(epoch_ms, "sqlite")
def _epoch_ms_sqlite(element: epoch_ms, compiler: Any, **kw: Any) -> str:
    # SQLite keeps UTC timestamps as text; julianday is exact to well under a millisecond.
    (arg,) = element.clauses
    return f"CAST(round((julianday({compiler.process(arg, **kw)}) - 2440587.5) * 86400000.0) AS INTEGER)"


@compiles(epoch_ms, "postgresql")
def _epoch_ms_postgresql(element: epoch_ms, compiler: Any, **kw: Any) -> str:
    (arg,) = element.clauses
    return f"CAST(floor(extract(epoch from {compiler.process(arg, **kw)}) * 1000) AS BIGINT)"


def to_ms(moment: datetime) -> int:
    """The same number :class:`epoch_ms` gives in SQL, for a Python datetime."""
    return round(moment.astimezone(UTC).timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def population() -> ColumnElement[bool]:
    """Members who count: not merged into another, not staff (moderators and bots)."""
    return and_(Member.merged_into_id.is_(None), Member.staff.is_(False))


def counted_action() -> ColumnElement[bool]:
    """Events that are actions: not retracted, and not a retraction (a deleted post, a removed
    reaction: taking something back is not activity)."""
    return and_(StoredEvent.retracted.is_(False), StoredEvent.retracts.is_(None))


def activity(as_of_ms: int, *, types: frozenset[str] | None = None) -> Select[Any]:
    """``(member_id, ms, type)`` of every action that counts: by a counted member, not retracted
    and not itself a retraction (deleting a post is not coming back), not after ``as_of``;
    optionally only of ``types``."""
    ms = epoch_ms(StoredEvent.time)
    query: Any = (
        select(StoredEvent.member_id.label("member_id"), ms.label("ms"), StoredEvent.type.label("type"))
        .join(Member, Member.id == StoredEvent.member_id)
        .where(population(), counted_action(), ms < as_of_ms)
    )
    if types is not None:
        query = query.where(StoredEvent.type.in_(sorted(types)))
    return query


def latest_event_ms(session: Any) -> int | None:
    """When the store's history ends: the latest counted action."""
    return session.scalar(
        select(func.max(epoch_ms(StoredEvent.time)))
        .join(Member, Member.id == StoredEvent.member_id)
        .where(population(), counted_action())
    )
