"""The Data API's daily unit budget: what each call costs, what was spent today, when it resets.

Google counts units per project per day and resets the count at midnight Pacific time; every
request is charged, also one that fails (Google: "even invalid requests incur a quota cost of at
least one point"). The ledger lives in the store (the source's cursor ``quota``), so a restart
neither forgets what was spent nor spends it twice, and ``smallwins youtube status`` can show it
without asking Google (the API has no call that reports a project's usage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from smallwins.core.cursors import CursorStore

#: Where Google's day begins and ends.
PACIFIC = ZoneInfo("America/Los_Angeles")

#: Units per call (the Data API's quota calculator). Only the ``list`` calls are used; search
#: is listed because it is the trap: 100 units, which is why videos come from the uploads playlist.
COSTS: dict[str, int] = {
    "channels.list": 1,
    "playlistItems.list": 1,
    "videos.list": 1,
    "commentThreads.list": 1,
    "comments.list": 1,
    "search.list": 100,
}

CURSOR_KEY = "quota"


def quota_day(moment: datetime) -> date:
    """The Pacific calendar day ``moment`` falls on (Google's quota day)."""
    return moment.astimezone(PACIFIC).date()


def next_reset(moment: datetime) -> datetime:
    """The next midnight Pacific time after ``moment``, in UTC (23, 24 or 25 hours a day apart)."""
    tomorrow = quota_day(moment) + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=PACIFIC).astimezone(UTC)


class QuotaExhausted(Exception):
    """No units left for today (our budget, or Google said quotaExceeded): wait for ``resume_at``."""

    def __init__(self, resume_at: datetime, why: str) -> None:
        super().__init__(f"{why}; resuming at {resume_at.isoformat()}")
        self.resume_at = resume_at
        self.why = why


@dataclass
class QuotaLedger:
    """Units spent today against this source's budget, persisted on every charge."""

    cursors: CursorStore
    budget: int
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    day: date | None = None
    used: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    #: Google answered quotaExceeded: nothing more today, whatever our own count says.
    exhausted_until: datetime | None = None

    def load(self) -> QuotaLedger:
        saved = self.cursors.get(CURSOR_KEY) or {}
        self.day = date.fromisoformat(saved["day"]) if saved.get("day") else None
        self.used = int(saved.get("used", 0))
        self.by_method = {str(k): int(v) for k, v in dict(saved.get("by_method", {})).items()}
        until = saved.get("exhausted_until")
        self.exhausted_until = datetime.fromisoformat(until) if until else None
        self._roll()
        return self

    def save(self) -> None:
        self.cursors.set(CURSOR_KEY, self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat() if self.day else None,
            "used": self.used,
            "by_method": self.by_method,
            "exhausted_until": self.exhausted_until.isoformat() if self.exhausted_until else None,
        }

    def _roll(self) -> bool:
        """A new Pacific day: the count starts again. True when it did."""
        today = quota_day(self.clock())
        if self.day == today:
            return False
        self.day, self.used, self.by_method = today, 0, {}
        if self.exhausted_until is not None and self.clock() >= self.exhausted_until:
            self.exhausted_until = None
        return True

    @property
    def left(self) -> int:
        self._roll()
        return max(self.budget - self.used, 0)

    def resets_at(self) -> datetime:
        return next_reset(self.clock())

    def check(self, method: str) -> None:
        """Raise :class:`QuotaExhausted` unless ``method`` can be paid for now."""
        self._roll()
        now = self.clock()
        if self.exhausted_until is not None and now < self.exhausted_until:
            raise QuotaExhausted(self.exhausted_until, "YouTube said the project's quota is exceeded")
        self.exhausted_until = None
        cost = COSTS[method]
        if self.used + cost > self.budget:
            raise QuotaExhausted(
                next_reset(now), f"daily budget spent ({self.used} of {self.budget} units, {method} costs {cost})"
            )

    def charge(self, method: str) -> None:
        """Count one call of ``method`` (made, whatever its answer) and persist it."""
        self._roll()
        cost = COSTS[method]
        self.used += cost
        self.by_method[method] = self.by_method.get(method, 0) + cost
        self.save()

    def exhausted(self) -> datetime:
        """Google refused for quota: pause until its next reset; persisted so a restart waits too."""
        self._roll()
        self.exhausted_until = next_reset(self.clock())
        self.save()
        return self.exhausted_until

    def report(self) -> dict[str, Any]:
        """For logs and ``smallwins youtube status``."""
        self._roll()
        return {
            "day": self.day.isoformat() if self.day else None,
            "used": self.used,
            "budget": self.budget,
            "left": max(self.budget - self.used, 0),
            "by_method": dict(self.by_method),
            "resets_at": next_reset(self.clock()).isoformat(),
            "paused_until": self.exhausted_until.isoformat() if self.exhausted_until else None,
        }
