"""Late and out-of-order delivery: the richer rule types reach the same standing in any order."""

import itertools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from smallwins.core.store import Award, Member, PeriodPoints, open_store
from tests.conftest import Clock
from tests.rules_helpers import engine_of, progress_of

START = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
CONTRIBUTIONS = ["message.posted", "comment.posted"]
CATALOGUE = {
    "streak": {"rule": "streak", "events": CONTRIBUTIONS, "target": 4, "grace": 1, "freeze_every": 3},
    "weeks": {"rule": "streak", "events": CONTRIBUTIONS, "unit": "week", "target": 2},
    "helpful": {"rule": "approved_count", "events": CONTRIBUTIONS, "threshold": 2, "min_reactions": 2},
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

actions = st.lists(
    st.tuples(
        st.sampled_from(PEOPLE),
        st.sampled_from(["post", "react"]),
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
        elif posts:
            target = posts[pick % len(posts)]
            event = Event(
                id=f"r{n}", source=source, type="reaction.added", subject=who, time=at, data={"target": target.key}
            )
        else:
            continue
        events.append(event)
    return events


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
        list(engine.ingest_many([events[i] for i in order], batch_size=batch_size))
        with store.sessions() as session:
            held = sorted(
                (name, a.achievement_id, a.tier)
                for a, name in session.execute(
                    select(Award, Member.display_name)
                    .join(Member, Member.id == Award.member_id)
                    .where(Award.status == "active")
                )
            )
            points = sorted(session.execute(select(Member.display_name, Member.points)).all())
            weekly = session.execute(select(PeriodPoints.period, PeriodPoints.member_id, PeriodPoints.points)).all()
        progress = {
            (f"{source}:{who}", achievement): (p.current, p.target, p.met, p.tier)
            for source, who in PEOPLE
            for achievement in CATALOGUE
            if any(e.subject == who for e in events)
            for p in [progress_of(engine, store, f"{source}:{who}", achievement)]
        }
        store.close()
    # Event points land in their own week whatever the order. An achievement's points land in
    # the week of the event that completed it *as delivered*; out of order, that can be a
    # different week than in time order, so only the weekly total is compared here.
    return held, points, sum(p for _, _, p in weekly), progress


@settings(max_examples=40, deadline=None)
@given(raw=actions, data=st.data())
def test_any_order_and_batching_reach_the_same_standing(raw, data) -> None:
    events = build_events(raw)
    if not events:
        return
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
    assert {achievement for _, achievement, _ in held} >= {"streak", "helpful", "voice"}
