"""The rest of the rule library on handcrafted timelines with exact expected awards."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from smallwins.core.identity import AccountRef
from smallwins.core.leaderboards import history, standings
from smallwins.core.store import AuditEntry, OutboxItem
from smallwins.core.views import find_member, member_snapshot
from smallwins.core.vouchers import VoucherError, claim_stats
from tests.rules_helpers import engine_of, held, progress_of

T = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # a Monday
HELPFUL = {
    "rule": "approved_count",
    "events": ["message.posted", "comment.posted"],
    "threshold": 1,
    "min_reactions": 2,
    "unit": "approved posts",
}


def test_approval_arriving_two_days_after_the_post(store, clock, make_event) -> None:
    engine = engine_of(store, clock, {"helpful": HELPFUL})
    engine.ingest(make_event(id="post-1", subject="ann", at=T))
    engine.ingest(make_event("reaction.added", subject="ann", at=T + timedelta(hours=1), target="discord:post-1"))
    engine.ingest(make_event("reaction.added", subject="bob", at=T + timedelta(days=1), target="discord:post-1"))
    assert held(store, "discord:ann") == {}, "her own reaction does not count; one peer is not two"
    late = engine.ingest(
        make_event(
            "reaction.added", source="youtube", subject="UCcy", at=T + timedelta(days=2), target="discord:post-1"
        )
    )
    assert late.awarded == ["helpful"] and held(store, "discord:ann") == {"helpful": None}
    assert held(store, "discord:bob") == {} and held(store, "youtube:UCcy") == {}


def test_published_is_not_approved_and_moderators_approve_alone(store, clock, make_event) -> None:
    engine = engine_of(
        store,
        clock,
        {
            "three-approved": {**HELPFUL, "threshold": 3},
            "three-published": {"rule": "count", "events": ["message.posted"], "threshold": 3},
        },
    )
    for n in range(3):
        engine.ingest(make_event(id=f"p{n}", subject="ann", at=T + timedelta(hours=n)))
    assert held(store, "discord:ann") == {"three-published": None}
    for n in range(2):
        engine.ingest(make_event("moderator.approved", subject="mod", at=T + timedelta(days=1), target=f"discord:p{n}"))
    engine.ingest(make_event("moderator.approved", subject="mod", at=T + timedelta(days=1), target="discord:p0"))
    assert progress_of(engine, store, "discord:ann", "three-approved").text() == "2 of 3 approved posts"
    engine.ingest(make_event("answer.marked_helpful", subject="bob", at=T + timedelta(days=3), target="discord:p2"))
    assert held(store, "discord:ann") == {"three-published": None, "three-approved": None}


def test_approvals_that_arrive_before_the_post_count(store, clock, make_event) -> None:
    engine = engine_of(store, clock, {"helpful": HELPFUL})
    for who in ("bob", "cy"):
        engine.ingest(make_event("reaction.added", subject=who, at=T + timedelta(hours=2), target="discord:p9"))
    assert engine.ingest(make_event(id="p9", subject="ann", at=T)).awarded == ["helpful"]
    member_id = engine.ingest(make_event(subject="ann", at=T + timedelta(days=1))).member_id
    engine.recompute(member_id, reason="replay agrees")
    assert held(store, "discord:ann") == {"helpful": None}


SEASON = {
    "rule": "count",
    "events": ["message.posted"],
    "available_from": datetime(2026, 6, 1, tzinfo=UTC),
    "available_until": datetime(2026, 6, 8, tzinfo=UTC),
}


def test_seasonal_badge_window_is_exact_and_stays_earned(store, clock, make_event) -> None:
    engine = engine_of(store, clock, {"launch-week": SEASON})
    end = datetime(2026, 6, 8, tzinfo=UTC)
    engine.ingest(make_event(subject="late", at=end + timedelta(seconds=1)))
    engine.ingest(make_event(subject="early", at=datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC)))
    engine.ingest(make_event(subject="just-in-time", at=end - timedelta(seconds=1)))
    assert held(store, "discord:late") == {} and held(store, "discord:early") == {}
    assert held(store, "discord:just-in-time") == {"launch-week": None}
    engine.ingest(make_event(subject="just-in-time", at=end + timedelta(days=30)))
    member_id = engine.ingest(make_event(subject="just-in-time", at=end + timedelta(days=31))).member_id
    engine.recompute(member_id, reason="after the season")
    assert held(store, "discord:just-in-time") == {"launch-week": None}


def test_voucher_claimed_at_71h_and_refused_at_73h(store, clock, make_event) -> None:
    engine = engine_of(
        store, clock, {"merch": {"rule": "count", "events": ["message.posted"], "voucher_claim_hours": 72}}
    )
    engine.ingest(make_event(subject="ann"))
    engine.ingest(make_event(subject="bob"))
    with store.sessions() as session:
        codes = {
            item.member_id: item.payload["voucher"]["code"]
            for item in session.scalars(select(OutboxItem).where(OutboxItem.kind == "award"))
        }
    ann, bob = (codes[m] for m in sorted(codes))
    issued = clock.now
    clock.now = issued + timedelta(hours=71)
    assert engine.claim_voucher(ann).claimed_at == clock.now
    with pytest.raises(VoucherError, match="already claimed"):
        engine.claim_voucher(ann)
    clock.now = issued + timedelta(hours=73)
    with pytest.raises(VoucherError, match="expired"):
        engine.claim_voucher(bob)
    with store.sessions() as session:
        [stats] = claim_stats(session, now=clock.now)
        assert (stats.issued, stats.claimed, stats.expired, stats.claim_rate) == (2, 1, 1, 0.5)
        assert session.scalars(select(AuditEntry.action).where(AuditEntry.action == "voucher.claimed")).all() == [
            "voucher.claimed"
        ]
        statuses = {v["status"] for v in member_snapshot(session, engine.catalogue, 2, now=clock.now).vouchers}
        assert statuses == {"expired"}


def test_weekly_leaderboard_resets_at_the_boundary_in_the_configured_zone(store, clock, make_event) -> None:
    engine = engine_of(
        store,
        clock,
        {"first": {"rule": "count", "events": ["message.posted"], "points": 0}},
        timezone="Europe/Berlin",
        points={"message.posted": 5},
        leaderboards={"weekly": {"name": "This week", "period": "week"}},
    )
    sunday_night = datetime(2026, 5, 10, 21, 30, tzinfo=UTC)  # 23:30 Sunday in Berlin
    monday_early = datetime(2026, 5, 10, 22, 30, tzinfo=UTC)  # 00:30 Monday in Berlin, still Sunday in UTC
    engine.ingest(make_event(subject="ann", at=sunday_night))
    engine.ingest(make_event(subject="ann", at=sunday_night - timedelta(days=1)))
    engine.ingest(make_event(subject="bob", at=monday_early))
    with store.sessions() as session:
        assert [(r.display_name, r.points) for r in standings(session, "weekly", "2026-W19")] == [("discord:ann", 10)]
        assert [(r.display_name, r.points) for r in standings(session, "weekly", "2026-W20")] == [("discord:bob", 5)]
        assert history(session, "weekly") == [("2026-W20", 1), ("2026-W19", 1)]
    with store.writes.begin() as session:
        find_member(session, "discord:bob").private = True
    with store.sessions() as session:
        assert standings(session, "weekly", "2026-W20") == []


TROPHY = {
    "rule": "trophy",
    "events": ["message.posted", "comment.posted", "email.replied"],
    "tiers": [
        {"name": "bronze", "threshold": 3},
        {"name": "silver", "threshold": 6, "min_sources": 2},
        {"name": "gold", "threshold": 10, "min_sources": 3},
    ],
}


def test_living_trophy_upgrades_with_cross_channel_milestones(store, clock, make_event) -> None:
    engine = engine_of(store, clock, {"voice": TROPHY})
    clock.now = T  # link codes below are presented (event time) within their 30 minutes
    for n in range(7):
        engine.ingest(make_event(subject="d1", at=T + timedelta(hours=n)))
    assert held(store, "discord:d1") == {"voice": "bronze"}, "seven posts, but silver needs two channels"
    engine.ingest(make_event("comment.posted", source="youtube", subject="UC1", at=T))
    engine.redeem_link_code(engine.issue_link_code(AccountRef("discord", "d1")), AccountRef("youtube", "UC1"))
    assert held(store, "discord:d1") == {"voice": "silver"}
    engine.ingest(make_event("email.replied", source="email", subject="d@x.org", at=T))
    code = engine.issue_link_code(AccountRef("discord", "d1"))
    engine.ingest(make_event("link.code_presented", source="email", subject="d@x.org", at=T, code=code))
    for n in range(1, 3):
        engine.ingest(make_event(subject="d1", at=T + timedelta(days=n)))
    assert held(store, "discord:d1") == {"voice": "gold"}
    with store.sessions() as session:
        moves = session.execute(select(AuditEntry.details).where(AuditEntry.action == "tier")).scalars().all()
        kinds = session.scalars(select(OutboxItem.kind).where(OutboxItem.kind == "tier")).all()
    assert [(m["from"], m["to"]) for m in moves] == [("bronze", "silver"), ("silver", "gold")]
    assert len(kinds) == 2


def test_cross_platform_and_welcome_back(store, clock, make_event) -> None:
    engine = engine_of(
        store,
        clock,
        {
            "everywhere": {
                "rule": "platforms",
                "events": ["message.posted", "comment.posted", "email.replied"],
                "min_sources": 3,
            },
            "welcome-back": {"rule": "comeback", "events": ["message.posted"], "inactive_days": 14},
        },
    )
    engine.ingest(make_event(subject="d1", at=T))
    engine.ingest(make_event(subject="d1", at=T + timedelta(days=14)))  # 13 idle days: not yet
    assert held(store, "discord:d1") == {}
    engine.ingest(make_event(subject="d1", at=T + timedelta(days=29)))  # 14 idle days
    assert held(store, "discord:d1") == {"welcome-back": None}
    engine.ingest(make_event("comment.posted", source="youtube", subject="UC1", at=T))
    engine.ingest(make_event("email.replied", source="email", subject="d@x.org", at=T))
    for other in (AccountRef("youtube", "UC1"), AccountRef("email", "d@x.org")):
        engine.redeem_link_code(engine.issue_link_code(AccountRef("discord", "d1")), other)
    assert held(store, "discord:d1") == {"welcome-back": None, "everywhere": None}


def test_role_reaches_snapshot_and_outbox(store, clock, make_event) -> None:
    engine = engine_of(
        store,
        clock,
        {"mentor": {"rule": "count", "events": ["message.posted"], "threshold": 2, "grants_role": "mentor"}},
    )
    engine.ingest(make_event(subject="ann"))
    member_id = engine.ingest(make_event(subject="ann")).member_id
    with store.sessions() as session:
        snapshot = member_snapshot(session, engine.catalogue, member_id)
        assert snapshot.roles == ["mentor"]
        assert snapshot.awards[0]["held_by"] == "held by 100% of members"
        award = session.scalars(select(OutboxItem).where(OutboxItem.kind == "award")).one()
        assert award.payload["role"] == "mentor"
    engine.revoke(member_id, "mentor", actor="mod", reason="stepped down")
    with store.sessions() as session:
        assert member_snapshot(session, engine.catalogue, member_id).roles == []
        revoked = session.scalars(select(OutboxItem).where(OutboxItem.kind == "revoke")).one()
        assert revoked.payload["role"] == "mentor"


def test_catalogue_rejects_half_a_season(tmp_path) -> None:
    from smallwins.core.config import ConfigError
    from tests.rules_helpers import catalogue_of

    with pytest.raises(ConfigError, match="available_from and available_until go together"):
        catalogue_of({"x": {"rule": "count", "events": ["a.b"], "available_from": T}})
    with pytest.raises(ConfigError, match="ascending thresholds"):
        catalogue_of({"x": {**TROPHY, "tiers": [{"name": "a", "threshold": 5}, {"name": "b", "threshold": 2}]}})


def test_merge_keeps_one_voucher_and_moves_period_points(store, clock, make_event) -> None:
    engine = engine_of(
        store,
        clock,
        {"merch": {"rule": "count", "events": ["message.posted", "comment.posted"], "voucher_claim_hours": 72}},
        points={"message.posted": 2, "comment.posted": 2},
        leaderboards={"weekly": {"name": "This week", "period": "week"}},
    )
    clock.now = T
    engine.ingest(make_event(subject="d1", at=T))
    engine.ingest(make_event("comment.posted", source="youtube", subject="UC1", at=T + timedelta(hours=1)))
    with store.sessions() as session:
        youtube_code = member_snapshot(session, engine.catalogue, 2, now=T).vouchers[0]["code"]
    engine.claim_voucher(youtube_code)  # the YouTube side already claimed its voucher
    engine.redeem_link_code(engine.issue_link_code(AccountRef("discord", "d1")), AccountRef("youtube", "UC1"))
    with store.sessions() as session:
        member = find_member(session, "youtube:UC1")
        vouchers = member_snapshot(session, engine.catalogue, member.id, now=T).vouchers
        assert [(v["code"], v["status"]) for v in vouchers] == [(youtube_code, "claimed")]
        assert [(r.member_id, r.points) for r in standings(session, "weekly", "2026-W19")] == [(member.id, 4)]


def test_late_event_that_fills_the_gap_takes_welcome_back_away(store, clock, make_event) -> None:
    engine = engine_of(
        store, clock, {"back": {"rule": "comeback", "events": ["message.posted"], "inactive_days": 10, "points": 15}}
    )
    engine.ingest(make_event(subject="ann", at=T))
    assert engine.ingest(make_event(subject="ann", at=T + timedelta(days=12))).awarded == ["back"]
    engine.ingest(make_event(subject="ann", at=T + timedelta(days=6)))  # delivered late: she never left
    assert held(store, "discord:ann") == {}
    with store.sessions() as session:
        [reason] = session.scalars(select(AuditEntry.reason).where(AuditEntry.action == "revoke")).all()
        assert reason.startswith("no longer met after discord:")
        assert find_member(session, "discord:ann").points == 0
