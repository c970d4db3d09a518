"""Retractions (a deleted message, a removed reaction), staff, the approval window as a fact about
events, and vouchers for imported history: each on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from smallwins.core import leaderboards, views
from smallwins.core.events import Event
from smallwins.core.store import AuditEntry, Member, Voucher
from tests.conftest import Clock
from tests.rules_helpers import engine_of, held

T = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
CATALOGUE = {
    "three-posts": {"rule": "count", "events": ["message.posted"], "threshold": 3, "points": 10},
    "helpful": {
        "rule": "approved_count",
        "events": ["message.posted"],
        "threshold": 1,
        "min_reactions": 2,
        "approval_window_days": 7,
        "points": 20,
    },
}


def post(n: int, who: str = "ann", *, at: datetime | None = None) -> Event:
    return Event(id=f"m{n}", source="discord", type="message.posted", subject=who, time=at or T + timedelta(hours=n))


def react(n: int, who: str, target: str, *, at: datetime | None = None) -> Event:
    return Event(
        id=f"r{n}", source="discord", type="reaction.added", subject=who, time=at or T, data={"target": target}
    )


def deleted(n: int, retracts: str, *, source: str = "discord") -> Event:
    return Event(
        id=f"d{n}",
        source=source,
        type="message.deleted",
        subject="ann",
        time=T + timedelta(days=1),
        data={"retracts": retracts},
    )


def points_of(store, subject: str) -> int:
    with store.sessions() as session:
        return views.find_member(session, f"discord:{subject}").points


def test_a_deleted_message_stops_counting_and_its_award_is_revoked(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE, points={"message.posted": 1})
    list(engine.ingest_many([post(1), post(2), post(3)]))
    assert held(store, "discord:ann") == {"three-posts": None}
    assert points_of(store, "ann") == 3 + 10
    engine.ingest(deleted(1, "discord:m2"))
    assert held(store, "discord:ann") == {}, "two posts left: the award goes (policy: revoke)"
    assert points_of(store, "ann") == 2
    with store.sessions() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions[-2:] == ["retract", "revoke"]
    engine.ingest(post(4))
    assert held(store, "discord:ann") == {"three-posts": None}, "a new third post earns it again"


def test_a_retraction_that_arrives_first_is_honoured(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE, points={"message.posted": 1})
    engine.ingest(deleted(1, "discord:m2"))
    list(engine.ingest_many([post(1), post(2), post(3)]))
    assert held(store, "discord:ann") == {}
    assert points_of(store, "ann") == 2


def test_keep_policy_leaves_awards_made(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE)
    engine.retraction_policy = "keep"
    list(engine.ingest_many([post(1), post(2), post(3), deleted(1, "discord:m3")]))
    assert held(store, "discord:ann") == {"three-posts": None}


def test_a_removed_reaction_takes_its_approval_back(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE)
    list(engine.ingest_many([post(1), react(1, "bob", "discord:m1"), react(2, "cy", "discord:m1")]))
    assert held(store, "discord:ann") == {"helpful": None}
    removed = Event(
        id="rr2",
        source="discord",
        type="reaction.removed",
        subject="cy",
        time=T + timedelta(hours=5),
        data={"retracts": "discord:r2"},
    )
    engine.ingest(removed)
    assert held(store, "discord:ann") == {}


def test_a_retraction_from_another_source_is_refused(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE)
    list(engine.ingest_many([post(1), post(2), post(3)]))
    outcome = engine.ingest(deleted(9, "discord:m1", source="webhook"))
    assert outcome.stored and "another source" in (outcome.warning or "")
    assert held(store, "discord:ann") == {"three-posts": None}


def test_moderators_are_staff_not_members(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE, points={"moderator.approved": 5})
    approval = Event(
        id="a1",
        source="discord",
        type="moderator.approved",
        subject="mod",
        time=T + timedelta(hours=3),
        data={"target": "discord:m1"},
    )
    list(engine.ingest_many([post(1), approval]))
    assert held(store, "discord:ann") == {"helpful": None}, "the moderator's approval counts for the author"
    with store.sessions() as session:
        moderator = views.find_member(session, "discord:mod")
        assert moderator.staff and moderator.points == 0
        board = leaderboards.all_time(session, limit=10)
        assert [row.display_name for row in board] == ["discord:ann"]
        assert views.rarity(session)["helpful"] == 1.0, "rarity counts members only"


def test_a_bot_marked_staff_loses_standing_it_had(store) -> None:
    engine = engine_of(store, Clock(T + timedelta(days=2)), CATALOGUE, points={"message.posted": 1})
    list(engine.ingest_many([post(1, "bot"), post(2, "bot"), post(3, "bot")]))
    assert held(store, "discord:bot") == {"three-posts": None}
    engine.ingest(Event(id="b4", source="discord", type="message.posted", subject="bot", time=T, data={"staff": True}))
    assert held(store, "discord:bot") == {}
    assert points_of(store, "bot") == 0


def test_approval_window_counts_by_event_time_not_delivery(store) -> None:
    """A September post delivered after an October one still takes its September reactions."""
    engine = engine_of(store, Clock(T + timedelta(days=60)), CATALOGUE)
    october = post(2, at=T + timedelta(days=40))
    september = post(1, at=T)
    reactions = [react(n, who, "discord:m1", at=T + timedelta(days=2)) for n, who in ((1, "bob"), (2, "cy"))]
    list(engine.ingest_many([october], batch_size=1))
    list(engine.ingest_many([september, *reactions], batch_size=1))
    assert held(store, "discord:ann") == {"helpful": None}
    with store.sessions() as session:
        ann = views.find_member(session, "discord:ann")
        snapshot = views.member_snapshot(session, engine.catalogue, ann.id)
    helpful = next(a for a in snapshot.awards if a["id"] == "helpful")
    assert helpful["awarded_at"].startswith("2026-09-03"), "earned when the second reaction came, in event time"


def test_imported_history_issues_no_dead_vouchers(store) -> None:
    clock = Clock(T + timedelta(days=30))
    catalogue = {"three-posts": {**CATALOGUE["three-posts"], "voucher_claim_hours": 72}}
    engine = engine_of(store, clock, catalogue)
    list(engine.ingest_many([post(1), post(2), post(3)]))  # a month old: no voucher
    list(engine.ingest_many([post(n, "bob", at=clock.now - timedelta(hours=4 - n)) for n in (11, 12, 13)]))
    with store.sessions() as session:
        vouchers = {
            name: (v.issued_at, v.expires_at)
            for v, name in session.execute(select(Voucher, Member.display_name).join(Member))
        }
    assert set(vouchers) == {"discord:bob"}
    issued, expires = vouchers["discord:bob"]
    assert issued == clock.now and expires == clock.now + timedelta(hours=72), "the window opens when it is seen"
