"""Backfill after a catalogue change: the dry run predicts the real run exactly; runs resume."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from smallwins.core import backfill
from smallwins.core.store import AuditEntry, Award, BackfillRun
from tests.rules_helpers import engine_of

T = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
V1 = {
    "five": {"rule": "count", "events": ["message.posted"], "threshold": 5, "points": 10},
    "old": {"rule": "count", "events": ["reaction.added"], "threshold": 1},
}
V2 = {
    "five": {"rule": "count", "events": ["message.posted"], "threshold": 3, "points": 10},  # easier now
    "old": {"rule": "count", "events": ["reaction.added"], "threshold": 4},  # harder now
    "voice": {
        "rule": "trophy",
        "events": ["message.posted"],
        "tiers": [{"name": "bronze", "threshold": 2}, {"name": "silver", "threshold": 6}],
    },
}


def populate(store, clock, make_event) -> None:
    engine = engine_of(store, clock, V1)
    for member in range(12):
        for n in range(member % 7):
            engine.ingest(make_event(subject=f"m{member}", at=T + timedelta(hours=n)))
        for n in range(member % 3):
            engine.ingest(make_event("reaction.added", subject=f"m{member}", at=T + timedelta(hours=n)))


def test_dry_run_matches_the_real_run(store, clock, make_event) -> None:
    populate(store, clock, make_event)
    clock.advance(days=1)  # the backfill's audit entries carry this time
    engine = engine_of(store, clock, V2)
    with store.sessions() as session:
        audit_before = session.scalar(select(func.count()).select_from(AuditEntry))
    preview = backfill.preview(engine)
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == audit_before, "a dry run writes nothing"
    # posts per member m1..m11 are member % 7; reactions member % 3 (m0 never acted)
    assert preview.awards == {"five": 4, "voice": 8}
    assert preview.revocations == {"old": 8}
    assert preview.examples and preview.members == 11

    done = backfill.run(engine, batch_size=5)
    # m5 and m6 held "five" from their 5th post; under the easier threshold they earned it at the 3rd
    assert preview.redates == {"five": 2}
    assert (done.awards, done.revocations, done.tier_changes, done.redates) == (
        preview.awards,
        preview.revocations,
        preview.tier_changes,
        preview.redates,
    )
    with store.sessions() as session:
        actions = dict(
            session.execute(
                select(AuditEntry.action, func.count()).where(AuditEntry.at == clock.now).group_by(AuditEntry.action)
            ).all()
        )
        assert actions == {"award": 12, "revoke": 8, "redate": 2}
        silver = session.scalar(select(func.count()).select_from(Award).where(Award.tier == "silver"))
        assert silver == 1  # m6, the only one with six posts
    assert backfill.preview(engine).totals == (0, 0, 0), "after the run, nothing is left to change"


def test_interrupted_backfill_resumes(store, clock, make_event) -> None:
    populate(store, clock, make_event)
    engine = engine_of(store, clock, V2)
    expected = backfill.preview(engine).totals
    seen = 0

    def crash_after_first_batch() -> None:
        nonlocal seen
        seen += 1
        if seen == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backfill.run(engine, batch_size=5, on_member=crash_after_first_batch)
    resumed = backfill.run(engine, batch_size=5)
    assert resumed.resumed_after_member > 0 and resumed.members == 11 - 5
    with store.sessions() as session:
        [run] = session.scalars(select(BackfillRun)).all()
        assert run.finished_at is not None
        assert (run.awarded, run.revoked, run.changed_tiers) == expected


def test_backfilled_standing_equals_a_fresh_ingest_under_the_new_catalogue(
    store, clock, make_event, tmp_path
) -> None:
    """Points, period boards, awards and their dates after a backfill are what ingesting the same
    history under the new catalogue from scratch gives (points rebuilt for a batch at once)."""
    from smallwins.core.store import open_store
    from tests.test_event_time import standing

    scoring = {"points": {"message.posted": 2, "reaction.added": 1},
               "leaderboards": {"weekly": {"name": "Weekly", "period": "week"}}}
    populate(store, clock, make_event)
    backfill.run(engine_of(store, clock, V2, **scoring), batch_size=4)

    fresh = open_store(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        engine = engine_of(fresh, clock, V2, **scoring)
        for member in range(12):
            for n in range(member % 7):
                engine.ingest(make_event(subject=f"m{member}", at=T + timedelta(hours=n)))
            for n in range(member % 3):
                engine.ingest(make_event("reaction.added", subject=f"m{member}", at=T + timedelta(hours=n)))
        expected = standing(fresh)
    finally:
        fresh.close()
    got = standing(store)
    assert got["points"] == expected["points"] and got["points"]
    assert got["boards"] == expected["boards"] and got["boards"]
    assert [a for a in got["awards"] if a[2] == "active"] == [a for a in expected["awards"] if a[2] == "active"]



def test_awards_of_an_achievement_taken_out_of_the_catalogue_are_kept_and_said(store, clock, make_event) -> None:
    """An achievement removed from the catalogue: its awards stay (cards show what was earned),
    count no points after the backfill, and the dry run lists them instead of staying silent."""
    from rich.console import Console

    from smallwins.core.store import Member
    from smallwins.render import backfill_table

    with_points = {"five": V1["five"], "old": {**V1["old"], "points": 7}}
    engine = engine_of(store, clock, with_points)
    for member in range(6):
        for n in range(5):
            engine.ingest(make_event(subject=f"m{member}", at=T + timedelta(hours=n)))
        if member % 2:
            engine.ingest(make_event("reaction.added", subject=f"m{member}", at=T))
    with store.sessions() as session:
        assert sorted(session.scalars(select(Member.points))) == [10, 10, 10, 17, 17, 17]

    engine = engine_of(store, clock, {"five": V1["five"]})
    preview = backfill.preview(engine)
    assert preview.retired == {"old": 3} and not preview.revocations
    console = Console(width=200, record=True)
    console.print(backfill_table(preview, title="preview"))
    shown = console.export_text()
    assert "no longer in the catalogue" in shown and "old (3)" in shown

    backfill.run(engine)
    with store.sessions() as session:
        kept = session.scalar(
            select(func.count()).select_from(Award).where(Award.achievement_id == "old", Award.status == "active")
        )
        assert kept == 3
        assert sorted(session.scalars(select(Member.points))) == [10] * 6, "a retired award is worth no points"
