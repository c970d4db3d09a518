"""Retention, survival, completion and lift on small handcrafted communities, on SQLite and
PostgreSQL; every expected number is worked out by hand in the comments."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from communities import DAY0, active_on, catalogue, event
from sqlalchemy import select

from smallwins.core.engine import Engine
from smallwins.core.holdout import held_out
from smallwins.core.store import Identity, Store
from smallwins.demo import LiveClock
from smallwins.measure.report import build_report
from smallwins.measure.sql import to_ms

#: Midnight UTC after day 39: days 0..39 are over; day-30 windows of day-0 members have passed.
AS_OF = (DAY0 + timedelta(days=40)).replace(hour=0)


def test_retention_cohorts_completion_and_launch(store: Store, tmp_path: Path) -> None:
    cat = catalogue(tmp_path)
    events = [
        *active_on("ann", [0, 8, 31]),  # First Words day 0; back on day 8 (day 7 window) and 31 (day 30)
        *active_on("bob", [0, 20]),  # First Words day 0; back on day 20 only: neither window
        *active_on("cat", [0, 9], "link.clicked"),  # never contributes: no badge; back on day 9
        event("dan", 0, "link.clicked"),
        event("dan", 10),  # first badge on day 10: not in the first week; back on day 10 (day 7 window)
        *active_on("eve", [14, 21]),  # arrives two weeks later, badge at once, back exactly 7 days later
    ]
    live = LiveClock(DAY0)
    engine = Engine(store, cat, clock=live)
    list(engine.ingest_many(live.follow(sorted(events, key=lambda e: e.time))))
    with store.sessions() as session:
        report = build_report(session, cat, as_of=AS_OF)

    assert report.members == 5
    [w10, w12, overall] = report.returns
    # 2026-03-02 is the Monday of ISO week 10; eve's first day (03-16) is in week 12.
    assert (w10.label, w10.members, w10.earners) == ("2026-W10", 4, 2)
    assert (w12.label, w12.members, w12.earners) == ("2026-W12", 1, 1)
    # Day 7: earners ann (yes) and bob (no) = 1/2; others cat (day 9) and dan (day 10) = 2/2.
    assert (w10.earned[7].k, w10.earned[7].n, w10.not_earned[7].k, w10.not_earned[7].n) == (1, 2, 2, 2)
    # Day 30 ([30, 37)): ann on day 31 = 1/2; cat and dan never = 0/2.
    assert (w10.earned[30].k, w10.earned[30].n, w10.not_earned[30].k, w10.not_earned[30].n) == (1, 2, 0, 2)
    # eve: day 21 is exactly 7 days after day 14 (inside [7, 14)); her day 30 has not passed yet.
    assert (w12.earned[7].k, w12.earned[7].n, w12.earned[30].n) == (1, 1, 0)
    assert (overall.earned[7].k, overall.earned[7].n, overall.not_earned[7].k, overall.not_earned[7].n) == (2, 3, 2, 2)
    assert all(r.earned[90].n == 0 for r in report.returns), "no day-90 window has passed"
    assert overall.difference[7].estimate == pytest.approx(2 / 3 - 1)

    # Weekly curves. Week 10: 40 days seen = 5 full weeks, so weeks 1-4: week 1 [7, 14) ann, cat,
    # dan = 3/4; week 2 [14, 21) bob = 1/4; week 3 nobody; week 4 [28, 35) ann = 1/4.
    # Week 12 (26 days seen, weeks 1-2): week 1 eve = 1/1, week 2 0/1.
    curves = {c.label: [(p.k, p.n) for p in c.weeks] for c in report.curves}
    assert curves == {"2026-W10": [(3, 4), (1, 4), (0, 4), (1, 4)], "2026-W12": [(1, 1), (0, 1)]}

    # Completion: First Words ann, bob, dan, eve = 4/5; Regular (3 messages) ann only = 1/5.
    rates = {c.achievement_id: (c.holders.k, c.holders.n) for c in report.completions}
    assert rates["first-words"] == (4, 5) and rates["regular"] == (1, 5) and rates["on-a-roll"] == (0, 5)
    [ladder] = [f for f in report.funnels if f.name == "Ladder: contributions"]
    assert [(s.label, s.count) for s in ladder.steps] == [("First Words", 4), ("Regular", 1)]
    assert ladder.steps[0].conversion == pytest.approx(0.8) and ladder.steps[1].conversion == pytest.approx(0.25)

    # First action to first badge: 0 h for ann, bob, eve; 10 days for dan.
    assert report.first_badge.hours == [0, 0, 0, 240]
    # Regular's voucher (48 h) was issued with ann's day-31 badge and never claimed.
    assert (report.vouchers.issued, report.vouchers.claimed.k, report.vouchers.expired) == (1, 0, 1)

    # Helping Hand launched 2026-03-16 00:00: ann, bob, cat, dan came before (day 7: 3/4), eve after (1/1).
    [launch] = report.launches
    assert (launch.before.k, launch.before.n, launch.after.k, launch.after.n) == (3, 4, 1, 1)
    assert launch.difference.estimate == pytest.approx(0.25)
    assert sum(w.actions for w in report.weeks) == len(events)


def test_taking_something_back_is_not_coming_back(store: Store, tmp_path: Path) -> None:
    """A deletion is stored as an event, but neither it nor the post it deletes is an action."""
    cat = catalogue(tmp_path)
    first, second = event("fay", 0), event("fay", 1)
    deletion = event("fay", 9, "message.deleted", retracts=second.key)
    live = LiveClock(DAY0)
    engine = Engine(store, cat, clock=live)
    list(engine.ingest_many(live.follow([first, second, deletion])))
    with store.sessions() as session:
        report = build_report(session, cat, as_of=AS_OF)
    assert sum(w.actions for w in report.weeks) == 1
    overall = report.returns[-1]
    assert (overall.earned[7].k, overall.earned[7].n) == (0, 1), "the day-9 deletion is no day-7 return"


def test_streak_survival_by_hand(store: Store, tmp_path: Path) -> None:
    cat = catalogue(tmp_path)
    events = [
        *active_on("p", [0, 1, 2, 4]),  # 3 days, misses day 3, back on day 4: survives the missed day
        *active_on("q", [0, 1, 5]),  # 2 days, misses day 2, not back on day 3
        *active_on("r", [0, 2]),  # 1 day, misses day 1, back on day 2
        *active_on("s", [7, 8, 9]),  # still running when observation stops (censored at 3)
        *active_on("t", [5, 6, 7, 8, 9]),  # censored at 5
        *active_on("u", [8]),  # ended after 1 day (day 9 seen), but day 10 not seen yet
    ]
    engine = Engine(store, cat)
    list(engine.ingest_many(sorted(events, key=lambda e: e.time)))
    with store.sessions() as session:
        report = build_report(session, cat, as_of=(DAY0 + timedelta(days=10)).replace(hour=0))
    [streak] = report.streaks
    assert streak.ended == {1: 2, 2: 1, 3: 1} and streak.censored == {3: 1, 5: 1} and streak.streaks == 6
    # Kaplan-Meier: S(2) = 1 - 2/6; S(3) = S(2)(1 - 1/4); S(4) = S(3)(1 - 1/2) = 1/4, then no breaks.
    assert streak.curve[:6] == pytest.approx([1, 2 / 3, 1 / 2, 1 / 4, 1 / 4, 1 / 4])
    assert streak.at(streak.target) == pytest.approx(1 / 2)
    # After the first missed day (seen for p, q, r): p and r came back the day after = 2/3.
    assert (streak.after_missed_day.k, streak.after_missed_day.n) == (2, 3)


def test_holdout_lift_by_hand(store: Store, tmp_path: Path) -> None:
    cat = catalogue(tmp_path, holdout=0.5)
    engine = Engine(store, cat)
    for n in range(1, 11):  # members 1..10, in order, each earning First Words on day 0
        engine.ingest(event(f"s{n}", 0))
    with store.sessions() as session:
        ids = {account: member for account, member in session.execute(select(Identity.account, Identity.member_id))}
    assert ids == {f"s{n}": n for n in range(1, 11)}
    # sha256("tests:first-words:N") < 0.5 holds out 1, 3, 5, 6, 10 (the draw is pinned here on purpose).
    assert [n for n in range(1, 11) if held_out(cat, "first-words", n)] == [1, 3, 5, 6, 10]
    returns = [
        event("s2", 3),
        event("s4", 2),
        event("s7", 7, hours=23),
        event("s8", 1),  # 4 of 5 shown come back
        event("s9", 8),  # ...s9 only on day 8: outside [1, 8) days after earning
        event("s1", 2),  # 1 of 5 held out comes back in the window
        event("s3", 0, hours=20),  # s3 again the same evening: within the first day, not a return
        event("s5", 9),  # s5 too late
    ]
    list(engine.ingest_many(sorted(returns, key=lambda e: e.time)))
    engine.ingest(event("late", 35))  # earned on day 35: its window ends after as-of
    with store.sessions() as session:
        report = build_report(session, cat, as_of=AS_OF)
    [lift] = report.lifts
    assert (lift.treatment.k, lift.treatment.n, lift.holdout.k, lift.holdout.n) == (4, 5, 1, 5)
    assert lift.not_yet_observable == 1
    # Wilson 4/5 = (0.3755, 0.9638), 1/5 = (0.0362, 0.6245); Newcombe: 0.6 - sqrt(0.4245^2 + 0.4245^2)
    # = -0.0003 and 0.6 + sqrt(0.1638^2 + 0.1638^2) = 0.8317.
    assert lift.lift.estimate == pytest.approx(0.6)
    assert lift.lift.low == pytest.approx(-0.0003, abs=1e-3) and lift.lift.high == pytest.approx(0.8317, abs=1e-3)
    assert lift.relative == pytest.approx(3.0)
    # Detecting +20 points over the holdout's 20% with equal groups: 82 per group; 5 + 5 is not enough.
    assert lift.needed is not None and (lift.needed.treatment, lift.needed.holdout) == (82, 82)
    assert lift.powered is False
    assert to_ms(report.as_of) == to_ms(AS_OF)
