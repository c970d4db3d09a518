"""Ranks come from counts per points total; those counts follow every way a member's points or
public status change (ingest, revoke, privacy, staff, merge, unlink, recompute, retraction)."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select

from smallwins.core import leaderboards
from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef
from smallwins.core.store import Member, PointsCount, Store
from tests.conftest import T0


def recounted(store: Store) -> dict[int, int]:
    """What the counts should be, counted the slow way over the members table."""
    with store.sessions() as session:
        rows = session.execute(
            select(Member.points, func.count())
            .where(Member.merged_into_id.is_(None), Member.private.is_(False), Member.staff.is_(False))
            .where(Member.points != 0)
            .group_by(Member.points)
        )
        return {int(points): int(n) for points, n in rows}


def kept(store: Store) -> dict[int, int]:
    with store.sessions() as session:
        return {row.points: row.members for row in session.scalars(select(PointsCount)) if row.members}


def brute_ranks(store: Store) -> dict[int, int]:
    with store.sessions() as session:
        public = session.execute(
            select(Member.id, Member.points).where(
                Member.merged_into_id.is_(None), Member.private.is_(False), Member.staff.is_(False)
            )
        ).all()
    return {member_id: 1 + sum(1 for _, other in public if other > points) for member_id, points in public}


def test_counts_follow_every_change_of_standing(engine: Engine, store: Store, make_event) -> None:
    rng = random.Random(4)
    events = [
        make_event(subject=f"u{rng.randrange(12)}", type=rng.choice(["message.posted", "thread.started"]),
                   at=T0 + timedelta(minutes=n))
        for n in range(160)
    ]
    list(engine.ingest_many(events, batch_size=40))
    assert kept(store) == recounted(store) and kept(store)

    with store.sessions() as session:
        u1 = session.scalar(select(Member.id).where(Member.display_name == "discord:u1"))
        u2 = session.scalar(select(Member.id).where(Member.display_name == "discord:u2"))
        u3 = session.scalar(select(Member.id).where(Member.display_name == "discord:u3"))
    assert u1 and u2 and u3
    engine.set_profile(u1, private=True)
    assert kept(store) == recounted(store)
    engine.revoke(u2, "first-words", actor="mod:ada", reason="spam")
    assert kept(store) == recounted(store)
    engine.ingest(
        Event(id="staff-1", source="discord", type="message.posted", subject="u3", time=T0, data={"staff": True})
    )
    assert kept(store) == recounted(store)

    code = engine.issue_link_code(AccountRef("discord", "u4"))
    engine.redeem_link_code(code, AccountRef("discord", "u5"))
    assert kept(store) == recounted(store)
    engine.unlink(AccountRef("discord", "u4"))
    assert kept(store) == recounted(store)
    engine.ingest(make_event(subject="u6", type="message.posted", id="late", at=T0 - timedelta(days=3)))
    engine.ingest(
        Event(id="undo", source="discord", type="message.deleted", subject="u6", time=T0,
              data={"retracts": "discord:late"})
    )
    engine.recompute(u2, reason="check")
    assert kept(store) == recounted(store)

    expected = brute_ranks(store)
    with store.sessions() as session:
        members = list(session.scalars(select(Member).where(Member.id.in_(expected))))
        assert leaderboards.ranks_of(session, members) == expected
        private = session.get_one(Member, u1)
        assert leaderboards.rank_of(session, private) is None
