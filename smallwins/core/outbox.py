"""Delivering outbox changes to presenters, each at its own pace.

A presenter's cursor moves only after it applied a change, so a presenter that is down (or
raises) gets the same change again on the next run: nothing is lost, and because presenters
are idempotent, nothing is applied twice in effect.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from sqlalchemy import func, select

from smallwins.core.contract import MemberSnapshot, OutboxChange, Presenter
from smallwins.core.rules import Catalogue
from smallwins.core.store import OutboxItem, PresenterCursor, Store, utcnow
from smallwins.core.views import member_snapshot

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
            snapshots: dict[int, MemberSnapshot] = {}  # presenters render current state: once per batch
            try:
                for item in items:
                    if item.member_id not in snapshots:
                        with store.sessions() as session:
                            snapshots[item.member_id] = member_snapshot(
                                session, catalogue, item.member_id, default_timezone=default_timezone
                            )
                    snapshot = snapshots[item.member_id]
                    change = OutboxChange(id=item.id, member_id=item.member_id, kind=item.kind, payload=item.payload)
                    await presenter.apply(change, snapshot)
                    delivered_up_to = item.id
                    applied[name] += 1
            except Exception as exc:  # a presenter failing must not lose or skip changes
                log.warning("outbox.presenter_failed", presenter=name, outbox_id=item.id, error=str(exc))
                _save_cursor(store, name, delivered_up_to, failure=(item.id, f"{type(exc).__name__}: {exc}"))
                break
            _save_cursor(store, name, delivered_up_to)
    return applied


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
    state: dict[str, object] = {"pending": pending_count(store, presenter), "status": "ok"}
    if cursor is not None and cursor.failing_outbox_id is not None and cursor.failing_since is not None:
        state["status"] = (
            f"failing on change {cursor.failing_outbox_id} since {cursor.failing_since:%Y-%m-%d %H:%M} UTC: "
            f"{cursor.last_error}"
        )
    return state
