"""Holdout assignment: stable, independent per achievement, the configured share; held-out members
still earn the achievement, but the snapshot every presenter renders does not show it."""

from __future__ import annotations

from pathlib import Path

import pytest
from communities import catalogue, event
from sqlalchemy import select

from smallwins.core.config import ConfigError, load_catalogue
from smallwins.core.engine import Engine
from smallwins.core.holdout import draw, held_out, hidden_from
from smallwins.core.plugins import PluginHost
from smallwins.core.store import Award, Store
from smallwins.core.views import member_snapshot


def test_draw_is_stable_uniform_and_salted() -> None:
    first = [draw("s", "first-words", m) for m in range(1, 20001)]
    assert first == [draw("s", "first-words", m) for m in range(1, 20001)], "the same member, the same draw"
    assert all(0 <= x < 1 for x in first)
    share = sum(x < 0.1 for x in first) / len(first)
    assert 0.09 < share < 0.11  # 20,000 draws: 0.1 +- 3 standard errors (0.0021 each)
    other_salt = [draw("t", "first-words", m) for m in range(1, 20001)]
    other_badge = [draw("s", "regular", m) for m in range(1, 20001)]
    both = sum(a < 0.1 and b < 0.1 for a, b in zip(first, other_badge, strict=True)) / len(first)
    assert 0.005 < both < 0.015, "achievements are drawn independently (0.1 * 0.1 = 0.01)"
    assert first != other_salt


def test_holdout_needs_a_salt_and_a_sane_share(tmp_path: Path) -> None:
    rules = PluginHost().rule_types()
    path = tmp_path / "achievements.toml"
    base = '[achievements.a]\nname = "A"\ndescription = "d."\nrule = "count"\nevents = ["a.b"]\nthreshold = 1\n'
    path.write_text(base + "holdout = 0.1\n")
    with pytest.raises(ConfigError, match=r"key 'experiment.salt': required because achievements.a has a holdout"):
        load_catalogue(path, rules)
    path.write_text(base + "holdout = 0.7\n[experiment]\nsalt = 'x'\n")
    with pytest.raises(ConfigError, match=r"key 'achievements.a.holdout': Input should be less than or equal to 0.5"):
        load_catalogue(path, rules)
    path.write_text(base + "[experiment]\nsalt = 'x'\nwindow = 7\n")
    with pytest.raises(ConfigError, match=r"key 'experiment.window': Extra inputs are not permitted"):
        load_catalogue(path, rules)
    path.write_text(base + "holdout = 0.25\nexpected_lift = 0.05\n[experiment]\nsalt = 'x'\nwindow_days = 14\n")
    loaded = load_catalogue(path, rules)
    assert loaded.achievements["a"].holdout == 0.25 and loaded.achievements["a"].expected_lift == 0.05
    assert loaded.experiment.salt == "x" and loaded.experiment.window_days == 14


def test_held_out_members_earn_it_but_their_snapshot_hides_it(store: Store, tmp_path: Path) -> None:
    cat = catalogue(tmp_path, holdout=0.5)
    engine = Engine(store, cat)
    for n in range(30):
        for day in range(3):  # First Words, Regular and On a Roll (3 days running) for everyone
            engine.ingest(event(f"s{n}", day))
    with store.sessions() as session:
        query = select(Award.member_id, Award.status).where(Award.achievement_id == "first-words")
        earned = {member_id: status for member_id, status in session.execute(query)}
        assert len(earned) == 30 and set(earned.values()) == {"active"}, "computed for everyone, held out or not"
        hidden = {m for m in earned if held_out(cat, "first-words", m)}
        assert 5 < len(hidden) < 25
        for member_id in earned:
            snapshot = member_snapshot(session, cat, member_id)
            shown = {a["id"] for a in snapshot.awards}
            listed = {p["id"] for p in snapshot.progress}
            if member_id in hidden:
                assert hidden_from(cat, member_id) == {"first-words"}
                assert shown == {"regular", "on-a-roll"} and "first-words" not in listed
            else:
                assert shown == {"first-words", "regular", "on-a-roll"} and "first-words" in listed
