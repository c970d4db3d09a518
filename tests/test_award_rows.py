"""Award rows made, changed and dropped inside one batch reach the table as the standing says
(the ingest keeps them as plain objects and writes them in bulk: ``awards.sync``), on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from smallwins.core.events import Event
from smallwins.core.store import AuditEntry, Award
from tests.conftest import Clock
from tests.rules_helpers import engine_of, held

T = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
CATALOGUE = {
    "three-posts": {"rule": "count", "events": ["message.posted"], "threshold": 3, "points": 10},
    "trophy": {
        "rule": "trophy",
        "events": ["message.posted"],
        "tiers": [{"name": "bronze", "threshold": 1}, {"name": "silver", "threshold": 4}],
    },
}


def post(n: int, *, at: datetime | None = None) -> Event:
    return Event(id=f"m{n}", source="discord", type="message.posted", subject="ann", time=at or T + timedelta(hours=n))


def award_rows(store) -> list[tuple[str, str, str | None, datetime]]:
    with store.sessions() as session:
        return [
            tuple(row)
            for row in session.execute(
                select(Award.achievement_id, Award.status, Award.tier, Award.awarded_at).order_by(Award.achievement_id)
            )
        ]


def test_an_award_earned_and_revoked_in_one_batch_leaves_no_row(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE)
    retraction = Event(
        id="d1", source="discord", type="message.deleted", subject="ann", time=T + timedelta(days=1),
        data={"retracts": "discord:m2"},
    )
    list(engine.ingest_many([post(1), post(2), post(3), retraction]))
    assert held(store, "discord:ann") == {"trophy": "bronze"}
    assert [row[0] for row in award_rows(store)] == ["trophy"], "no row left behind for the revoked award"
    with store.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.achievement_id == "three-posts").order_by(AuditEntry.id)
        ).all()
    assert actions == ["award", "revoke"]
    engine.ingest(post(4))
    assert held(store, "discord:ann") == {"three-posts": None, "trophy": "bronze"}, "three posts left"


def test_a_late_event_redates_and_upgrades_stored_awards(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE)
    list(engine.ingest_many([post(1), post(2), post(3)]))
    earned_before = {row[0]: row[3] for row in award_rows(store)}
    assert earned_before == {"three-posts": T + timedelta(hours=3), "trophy": T + timedelta(hours=1)}
    # A post from before all of them, delivered late, in a batch of its own: the stored rows move.
    list(engine.ingest_many([post(0, at=T - timedelta(hours=5))]))
    rows = award_rows(store)
    assert rows == [
        ("three-posts", "active", None, T + timedelta(hours=2)),
        ("trophy", "active", "silver", T - timedelta(hours=5)),
    ]


def test_awards_of_one_moment_keep_the_order_they_were_made_in(store) -> None:
    """A member's awards are listed by when they were earned, then in the order they were made:
    the catalogue's, for awards one event earned together. Rows are written in member order
    (``awards.sync``); that must not reorder one member's awards (say, alphabetically)."""
    catalogue = {
        "zeta-first-post": {"rule": "count", "events": ["message.posted"], "threshold": 1},
        "alpha-first-post": {"rule": "count", "events": ["message.posted"], "threshold": 1},
    }
    engine = engine_of(store, Clock(T + timedelta(days=1)), catalogue)
    # ann's account comes first (the lower member id), bea's post is earlier (her awards are made first)
    ann = Event(id="a1", source="discord", type="message.posted", subject="ann", time=T + timedelta(hours=2))
    bea = Event(id="b1", source="discord", type="message.posted", subject="bea", time=T + timedelta(hours=1))
    list(engine.ingest_many([ann, bea]))
    with store.sessions() as session:
        listed: dict[int, list[str]] = {}
        for member_id, achievement_id in session.execute(
            select(Award.member_id, Award.achievement_id).order_by(Award.awarded_at, Award.id)
        ):
            listed.setdefault(member_id, []).append(achievement_id)
    assert list(listed.values()) == [["zeta-first-post", "alpha-first-post"]] * 2
