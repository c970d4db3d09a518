"""Streaks on handcrafted timelines: time zones and DST, grace, freeze tokens, late events."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from smallwins.rule_types.calendar import add_period
from tests.rules_helpers import engine_of, held, progress_of

NY = ZoneInfo("America/New_York")
DAY0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=NY)


def test_streak_across_dst_in_new_york_with_late_events(store, clock, make_event) -> None:
    """DST began 2026-03-08 in New York. These five local days are consecutive; counted by UTC
    date (or a fixed -05:00 offset) two of them collapse into one and the streak is four."""
    engine = engine_of(store, clock, {"five-days": {"rule": "streak", "events": ["message.posted"], "target": 5}})
    moments = [ny(6, 23, 30), ny(7, 8), ny(8, 12), ny(9, 0, 30), ny(10, 0, 30)]
    member_id = engine.ingest(make_event(at=moments[4])).member_id
    engine.set_profile(member_id, timezone="America/New_York")
    for moment in (moments[1], moments[3], moments[0], moments[2]):  # late and out of order
        engine.ingest(make_event(at=moment))
    assert held(store, "discord:u1") == {"five-days": None}
    clock.now = ny(10, 18)
    progress = progress_of(engine, store, "discord:u1", "five-days")
    assert progress.detail["longest"] == 5 and progress.current == 5


def test_streak_in_utc_would_be_shorter(store, clock, make_event) -> None:
    engine = engine_of(store, clock, {"five-days": {"rule": "streak", "events": ["message.posted"], "target": 5}})
    for moment in [ny(6, 23, 30), ny(7, 8), ny(8, 12), ny(9, 0, 30), ny(10, 0, 30)]:
        engine.ingest(make_event(at=moment))  # this member never set a zone: UTC days
    assert held(store, "discord:u1") == {}
    assert progress_of(engine, store, "discord:u1", "five-days").detail["longest"] == 4


STREAK = {"rule": "streak", "events": ["message.posted"], "target": 7}


def test_streak_saved_by_a_freeze_token(store, clock, make_event) -> None:
    engine = engine_of(
        store,
        clock,
        {
            "week-frozen": {**STREAK, "freeze_every": 3, "max_freezes": 1},
            "week-strict": STREAK,
        },
    )
    for day in (0, 1, 2, 4, 5, 6, 7):  # day 3 missed; 3 active days earned a token that covers it
        engine.ingest(make_event(at=DAY0 + timedelta(days=day)))
    assert held(store, "discord:u1") == {"week-frozen": None}
    clock.now = DAY0 + timedelta(days=7, hours=2)
    frozen = progress_of(engine, store, "discord:u1", "week-frozen")
    assert frozen.detail["freezes_used"] == 1 and frozen.current == 7
    strict = progress_of(engine, store, "discord:u1", "week-strict")
    assert strict.detail["longest"] == 4 and not strict.met


def test_streak_grace_then_broken_after_grace(store, clock, make_event) -> None:
    engine = engine_of(store, clock, {"five": {**STREAK, "target": 5, "grace": 1}})
    for day in (0, 1, 3, 4):  # day 2 missed: within the grace
        engine.ingest(make_event(at=DAY0 + timedelta(days=day)))
    clock.now = DAY0 + timedelta(days=4, hours=1)
    alive = progress_of(engine, store, "discord:u1", "five")
    assert alive.current == 4
    # Next activity keeps it alive through day 6 (tomorrow + one day of grace): 3 days incl. today.
    assert alive.detail["periods_left"] == 3 and alive.detail["act_by"] == "2026-04-07"
    engine.ingest(make_event(at=DAY0 + timedelta(days=7)))  # days 5 and 6 missed: broken
    clock.now = DAY0 + timedelta(days=7, hours=1)
    broken = progress_of(engine, store, "discord:u1", "five")
    assert (broken.current, broken.detail["longest"]) == (1, 4)
    assert held(store, "discord:u1") == {}
    clock.now = DAY0 + timedelta(days=10)  # idle past the deadline: the streak is over
    assert progress_of(engine, store, "discord:u1", "five").current == 0


def test_weekly_streak_milestone(store, clock, make_event) -> None:
    engine = engine_of(store, clock, {"three-weeks": {**STREAK, "unit": "week", "target": 3}})
    for week in range(3):
        engine.ingest(make_event(at=DAY0 + timedelta(weeks=week, days=week % 2)))
        engine.ingest(make_event(at=DAY0 + timedelta(weeks=week, hours=1)))
    assert held(store, "discord:u1") == {"three-weeks": None}
    assert progress_of(engine, store, "discord:u1", "three-weeks").unit == "weeks in a row"


@given(st.lists(st.integers(0, 60), min_size=1, max_size=40))
def test_period_intervals_hold_exactly_the_periods_added(days: list[int]) -> None:
    intervals: list[list[int]] = []
    for day in days:
        intervals = add_period(intervals, day) or intervals
    assert sorted({d for first, last in intervals for d in range(first, last + 1)}) == sorted(set(days))
    assert all(intervals[i][1] + 1 < intervals[i + 1][0] for i in range(len(intervals) - 1))
