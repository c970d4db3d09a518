"""Late and out-of-order delivery: the richer rule types reach the same standing in any order."""

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from smallwins.core.identity import AccountRef
from smallwins.core.store import Award, Member, PeriodPoints, open_store
from tests.conftest import Clock
from tests.rules_helpers import engine_of, progress_of

START = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
CONTRIBUTIONS = ["message.posted", "comment.posted"]
CATALOGUE = {
    "streak": {"rule": "streak", "events": CONTRIBUTIONS, "target": 4, "grace": 1, "freeze_every": 3},
    "weeks": {"rule": "streak", "events": CONTRIBUTIONS, "unit": "week", "target": 2},
    # A window far shorter than the three weeks of history: approvals must count by event time.
    "helpful": {
        "rule": "approved_count",
        "events": CONTRIBUTIONS,
        "threshold": 2,
        "min_reactions": 2,
        "approval_window_days": 3,
    },
    "everywhere": {"rule": "platforms", "events": [*CONTRIBUTIONS, "reaction.added"], "min_sources": 2},
    "back": {"rule": "comeback", "events": CONTRIBUTIONS, "inactive_days": 5},
    "voice": {
        "rule": "trophy",
        "events": CONTRIBUTIONS,
        "tiers": [
            {"name": "bronze", "threshold": 2},
            {"name": "silver", "threshold": 4},
            {"name": "gold", "threshold": 6},
        ],
    },
}
PEOPLE = [("discord", "ann"), ("discord", "bob"), ("youtube", "cy"), ("youtube", "ann-yt")]
MODERATOR = ("discord", "mod")

actions = st.lists(
    st.tuples(
        st.sampled_from(PEOPLE),
        st.sampled_from(["post", "react", "react", "approve"]),
        st.integers(0, 20 * 24),  # hour offset: three weeks, crossing the DST change in Europe
        st.integers(0, 40),  # which earlier post a reaction names
    ),
    min_size=1,
    max_size=45,
)


def build_events(raw):
    from smallwins.core.events import Event

    events, posts = [], []
    for n, ((source, who), kind, hour, pick) in enumerate(raw):
        at = START + timedelta(hours=hour)
        if kind == "post":
            event_type = "message.posted" if source == "discord" else "comment.posted"
            event = Event(id=f"p{n}", source=source, type=event_type, subject=who, time=at)
            posts.append(event)
        elif posts and kind == "approve":  # a moderator highlights a post, maybe days later
            target = posts[pick % len(posts)]
            source, who = MODERATOR
            event = Event(
                id=f"a{n}", source=source, type="moderator.approved", subject=who, time=at, data={"target": target.key}
            )
        elif posts:
            target = posts[pick % len(posts)]
            event = Event(
                id=f"r{n}", source=source, type="reaction.added", subject=who, time=at, data={"target": target.key}
            )
        else:
            continue
        events.append(event)
    return events


def link_event(hour: int):
    """Ann's YouTube account presents a link code of her Discord account (its code: see :func:`standing`)."""
    from smallwins.core.events import Event

    at = START + timedelta(hours=hour)
    return Event(id="link", source="youtube", type="link.code_presented", subject="ann-yt", time=at, data={"code": ""})


def standing(events, order, batch_size):
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'order.db'}")
        clock = Clock(START + timedelta(days=22))
        engine = engine_of(
            store,
            clock,
            {name: {**table, "points": 10} for name, table in CATALOGUE.items()},
            timezone="Europe/Berlin",
            points={"message.posted": 2, "comment.posted": 2, "reaction.added": 1},
            leaderboards={"weekly": {"name": "Weekly", "period": "week"}},
        )
        if any(e.type == "link.code_presented" for e in events):  # valid until half an hour after "now"
            code = engine.issue_link_code(AccountRef("discord", "ann"))
            events = [e.model_copy(update={"data": {"code": code}}) if e.id == "link" else e for e in events]
        list(engine.ingest_many([events[i] for i in order], batch_size=batch_size))
        with store.sessions() as session:
            held = sorted(
                (name, a.achievement_id, a.tier, a.awarded_at)
                for a, name in session.execute(
                    select(Award, Member.display_name)
                    .join(Member, Member.id == Award.member_id)
                    .where(Award.status == "active")
                )
            )
            points = sorted(session.execute(select(Member.display_name, Member.points)).all())
            weekly = sorted(
                session.execute(
                    select(PeriodPoints.period, Member.display_name, PeriodPoints.points)
                    .join(Member, Member.id == PeriodPoints.member_id)
                    .where(PeriodPoints.points != 0)
                ).all()
            )
        progress = {
            (f"{source}:{who}", achievement): (p.current, p.target, p.met, p.tier)
            for source, who in PEOPLE
            for achievement in CATALOGUE
            if any(e.subject == who for e in events)
            for p in [progress_of(engine, store, f"{source}:{who}", achievement)]
        }
        store.close()
    # Award dates and every week's points are compared exactly: an achievement's points land in
    # the week it was earned in event time, whatever the delivery order.
    return held, points, weekly, progress


@settings(max_examples=40, deadline=None)
@given(raw=actions, data=st.data())
def test_any_order_and_batching_reach_the_same_standing(raw, data) -> None:
    events = build_events(raw)
    if not events:
        return
    linked_at = data.draw(st.none() | st.integers(0, 20 * 24))  # Ann's two accounts joined, at some point
    if linked_at is not None:
        events.append(link_event(linked_at))
    shuffled = data.draw(st.permutations(range(len(events))))
    duplicates = data.draw(st.lists(st.sampled_from(range(len(events))), max_size=5))
    in_order = standing(events, list(range(len(events))), 500)
    late = standing(events, [*shuffled, *duplicates], data.draw(st.sampled_from([1, 4, 500])))
    assert late == in_order


def test_the_generator_makes_interesting_histories() -> None:
    """Guard against a vacuous property: a fixed history does earn several of these."""
    cycle = itertools.cycle([(PEOPLE[0], "post"), (PEOPLE[1], "react"), (PEOPLE[2], "react")])
    raw = [
        (person, kind, hour, n // 3)
        for n, (hour, (person, kind)) in enumerate(zip(range(0, 24 * 6, 11), cycle, strict=False))
    ]
    events = build_events(raw)
    held, *_ = standing(events, list(range(len(events))), 500)
    assert {achievement for _, achievement, *_ in held} >= {"streak", "helpful", "voice"}
