"""Small handcrafted communities for the measurement tests: a catalogue and events placed by day."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from smallwins.core.config import load_catalogue
from smallwins.core.events import Event
from smallwins.core.plugins import PluginHost
from smallwins.core.rules import Catalogue

#: Day 0 of every handcrafted community: a Monday, 10:00 UTC.
DAY0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

CATALOGUE = """
[points]
"message.posted" = 1

[experiment]
salt = "tests"
window_days = 7

[achievements.first-words]
name = "First Words"
description = "Your first message."
rule = "count"
events = ["message.posted", "thread.started"]
threshold = 1
ladder = "contributions"
holdout = {holdout}
expected_lift = 0.2

[achievements.regular]
name = "Regular"
description = "Three messages."
rule = "count"
events = ["message.posted", "thread.started"]
threshold = 3
ladder = "contributions"
voucher_claim_hours = 48

[achievements.on-a-roll]
name = "On a Roll"
description = "Three days in a row."
rule = "streak"
events = ["message.posted"]
unit = "day"
target = 3

[achievements.helping-hand]
name = "Helping Hand"
description = "One approved post."
rule = "approved_count"
events = ["message.posted", "thread.started"]
reactions = ["reaction.added"]
min_reactions = 1
approvals = ["moderator.approved"]
threshold = 1
launched_at = 2026-03-16T00:00:00Z
"""

_ids = itertools.count(1)


def catalogue(folder: Path, *, holdout: float = 0.0) -> Catalogue:
    path = folder / "achievements.toml"
    path.write_text(CATALOGUE.replace("{holdout}", repr(holdout)))
    return load_catalogue(path, PluginHost().rule_types())


def at(day: float, hours: float = 0) -> datetime:
    return DAY0 + timedelta(days=day, hours=hours)


def event(subject: str, day: float, type: str = "message.posted", *, hours: float = 0, **data: Any) -> Event:
    """One action of ``subject`` on ``day`` (days after DAY0), ``hours`` after 10:00."""
    return Event(
        id=f"m{next(_ids)}", source="discord", type=type, subject=subject, time=at(day, hours), proof=None, data=data
    )


def active_on(subject: str, days: list[float], type: str = "message.posted") -> list[Event]:
    return [event(subject, day, type) for day in days]
