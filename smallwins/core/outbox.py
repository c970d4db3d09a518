"""Delivering outbox changes to presenters, each at its own pace.

A presenter's cursor moves only after it applied a change, so a presenter that is down (or
raises) gets the same change again on the next run: nothing is lost, and because presenters
are idempotent, nothing is applied twice in effect. A change the presenter declares it can
never apply (:class:`PermanentDeliveryError`) is parked with its reason and the cursor moves
on, so one member's broken change does not hold back the others; parked changes are listed by
``smallwins outbox`` and applied again by ``smallwins outbox retry``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import structlog
from sqlalchemy import func, select, text

from smallwins.core.contract import MemberSnapshot, OutboxChange, PermanentDeliveryError, Presenter
from smallwins.core.rules import Catalogue
from smallwins.core.store import OutboxItem, ParkedChange, PresenterCursor, Store, utcnow
from smallwins.core.views import member_snapshot, member_snapshots

log = structlog.get_logger(__name__)


def pending_count(store: Store, presenter: str) -> int:
    with store.sessions() as session:
        cursor = session.get(PresenterCursor, presenter)
        last = cursor.last_outbox_id if cursor else 0
        return session.scalar(select(func.count()).select_from(OutboxItem).where(OutboxItem.id > last)) or 0


async def deliver(
    store: Store,
    catalogue: Catalogue,
    presenters: Mapping[str, Presenter],
    *,
    batch_size: int = 200,
    default_timezone: str = "UTC",
) -> dict[str, int]:
    """Apply every pending change to every presenter; how many each applied this run."""
    applied: dict[str, int] = {}
    for name, presenter in presenters.items():
        applied[name] = 0
        with delivery_lease(store, name) as leased:
            if not leased:
                log.debug("outbox.presenter_busy", presenter=name)  # another runtime delivers it now
                continue
            applied[name] = await _deliver_to(store, catalogue, name, presenter, batch_size, default_timezone)
    return applied


#: First key of the advisory locks that lease a presenter's delivery ("swob" in ASCII).
LEASE_CLASS = 0x73776F62


@contextmanager
def delivery_lease(store: Store, presenter: str) -> Iterator[bool]:
    """Whether this process may deliver to ``presenter`` now; held until the block ends.

    On PostgreSQL, several runtimes may share a store: a session advisory lock per presenter
    makes sure only one of them delivers a presenter's changes at a time, so no change is
    applied twice. SQLite has one runtime per file, so the lease is always granted there.
    """
    if store.dialect != "postgresql":
        yield True
        return
    key = {"cls": LEASE_CLASS, "obj": zlib.crc32(presenter.encode()) - 2**31}
    with store.engine.connect() as connection:
        leased = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:cls, :obj)"), key))
        connection.commit()
        try:
            yield leased
        finally:
            if leased:
                connection.execute(text("SELECT pg_advisory_unlock(:cls, :obj)"), key)
                connection.commit()


async def _deliver_to(
    store: Store, catalogue: Catalogue, name: str, presenter: Presenter, batch_size: int, default_timezone: str
) -> int:
    """Deliver one presenter's pending changes, batch by batch; how many it applied."""
    applied = 0
    while True:
        with store.sessions() as session:
            cursor = session.get(PresenterCursor, name)
            last = cursor.last_outbox_id if cursor else 0
            items = list(
                session.scalars(
                    select(OutboxItem).where(OutboxItem.id > last).order_by(OutboxItem.id).limit(batch_size)
                )
            )
        if not items:
            break
        delivered_up_to = last
        snapshots = batch_snapshots(store, catalogue, {i.member_id for i in items}, default_timezone)
        try:
            for item in items:
                snapshot = snapshots[item.member_id]
                change = OutboxChange(id=item.id, member_id=item.member_id, kind=item.kind, payload=item.payload)
                try:
                    await presenter.apply(change, snapshot)
                    applied += 1
                except PermanentDeliveryError as exc:
                    park(store, name, change, str(exc))
                delivered_up_to = item.id
        except Exception as exc:  # a presenter failing must not lose or skip changes
            log.warning("outbox.presenter_failed", presenter=name, outbox_id=item.id, error=str(exc))
            _save_cursor(store, name, delivered_up_to, failure=(item.id, f"{type(exc).__name__}: {exc}"))
            break
        _save_cursor(store, name, delivered_up_to)
    return applied


def batch_snapshots(
    store: Store, catalogue: Catalogue, member_ids: set[int], default_timezone: str
) -> dict[int, MemberSnapshot]:
    """Current snapshots of a batch's members, read together (presenters render current state,
    so one snapshot per member serves all its changes in the batch)."""
    with store.sessions() as session:
        return member_snapshots(session, catalogue, member_ids, default_timezone=default_timezone)


def park(store: Store, presenter: str, change: OutboxChange, reason: str) -> None:
    """Set a change aside for ``presenter`` with the reason it cannot be applied."""
    log.warning(
        "outbox.change_parked", presenter=presenter, outbox_id=change.id, member_id=change.member_id, reason=reason
    )
    with store.writes.begin() as session:
        parked = session.get(ParkedChange, (presenter, change.id))
        if parked is None:
            session.add(
                ParkedChange(
                    presenter=presenter,
                    outbox_id=change.id,
                    member_id=change.member_id,
                    kind=change.kind,
                    reason=reason[:2000],
                    attempts=1,
                    parked_at=utcnow(),
                )
            )
        else:
            parked.reason, parked.attempts, parked.parked_at = reason[:2000], parked.attempts + 1, utcnow()


def parked_changes(store: Store, presenter: str | None = None) -> list[ParkedChange]:
    """Parked changes, oldest first (of one presenter, or of all)."""
    with store.sessions() as session:
        query = select(ParkedChange).order_by(ParkedChange.parked_at, ParkedChange.outbox_id)
        if presenter is not None:
            query = query.where(ParkedChange.presenter == presenter)
        return list(session.scalars(query))


async def retry_parked(
    store: Store,
    catalogue: Catalogue,
    presenters: Mapping[str, Presenter],
    *,
    outbox_ids: set[int] | None = None,
    default_timezone: str = "UTC",
) -> tuple[int, int]:
    """Apply parked changes again with the member's current standing; (applied, still parked).

    A change applied now leaves the parked list; one that fails again stays, with the new reason.
    Parked changes of presenters that are not enabled are left alone.
    """
    done = failed = 0
    for parked in parked_changes(store):
        presenter = presenters.get(parked.presenter)
        if presenter is None or (outbox_ids is not None and parked.outbox_id not in outbox_ids):
            continue
        with store.sessions() as session:
            item = session.get(OutboxItem, parked.outbox_id)
            snapshot = member_snapshot(session, catalogue, parked.member_id, default_timezone=default_timezone)
        payload = item.payload if item is not None else {}
        change = OutboxChange(id=parked.outbox_id, member_id=parked.member_id, kind=parked.kind, payload=payload)
        try:
            await presenter.apply(change, snapshot)
        except Exception as exc:  # permanent or not, it stays parked with the newest reason
            reason = str(exc) if isinstance(exc, PermanentDeliveryError) else f"{type(exc).__name__}: {exc}"
            park(store, parked.presenter, change, reason)
            failed += 1
            continue
        with store.writes.begin() as session:
            row = session.get(ParkedChange, (parked.presenter, parked.outbox_id))
            if row is not None:
                session.delete(row)
        log.info("outbox.parked_change_applied", presenter=parked.presenter, outbox_id=parked.outbox_id)
        done += 1
    return done, failed


def _save_cursor(store: Store, presenter: str, last_id: int, *, failure: tuple[int, str] | None = None) -> None:
    """Move the presenter's cursor; remember the change it is stuck on and why, or forget it once past."""
    with store.writes.begin() as session:
        cursor = session.get(PresenterCursor, presenter)
        if cursor is None:
            cursor = PresenterCursor(presenter=presenter, last_outbox_id=last_id)
            session.add(cursor)
        elif last_id > cursor.last_outbox_id:
            cursor.last_outbox_id = last_id
        if failure is not None:
            outbox_id, error = failure
            if cursor.failing_outbox_id != outbox_id:
                cursor.failing_since = utcnow()
            cursor.failing_outbox_id, cursor.last_error = outbox_id, error[:2000]
        elif cursor.failing_outbox_id is not None and last_id >= cursor.failing_outbox_id:
            cursor.failing_outbox_id = cursor.last_error = cursor.failing_since = None


def delivery_state(store: Store, presenter: str) -> dict[str, object]:
    """What an operator sees of a presenter: pending changes, and the failure it is stuck on."""
    with store.sessions() as session:
        cursor = session.get(PresenterCursor, presenter)
    with store.sessions() as session:
        parked = session.scalar(
            select(func.count()).select_from(ParkedChange).where(ParkedChange.presenter == presenter)
        )
    state: dict[str, object] = {"pending": pending_count(store, presenter), "parked": parked or 0, "status": "ok"}
    if cursor is not None and cursor.failing_outbox_id is not None and cursor.failing_since is not None:
        state["status"] = (
            f"failing on change {cursor.failing_outbox_id} since {cursor.failing_since:%Y-%m-%d %H:%M} UTC: "
            f"{cursor.last_error}"
        )
    return state
