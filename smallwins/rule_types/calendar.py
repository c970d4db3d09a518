"""Calendar periods in a member's own time zone, and compact sets of them.

A period is a day or an ISO week (Monday first) as a whole number, computed from the event's
instant converted to the member's zone: DST shifts change the UTC offset, never the local date.
Sets of periods are kept as sorted, merged ``[first, last]`` intervals, so a member active
every day for a year costs one pair, and an event arriving late slots into place.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Unit = Literal["day", "week"]


def period_of(moment: datetime, zone: ZoneInfo, unit: Unit) -> int:
    ordinal = moment.astimezone(zone).date().toordinal()
    return ordinal if unit == "day" else (ordinal - 1) // 7  # ordinal 1 (0001-01-01) is a Monday


def period_start(index: int, unit: Unit) -> date:
    return date.fromordinal(index if unit == "day" else index * 7 + 1)


def period_label(index: int, unit: Unit) -> str:
    start = period_start(index, unit)
    return start.isoformat() if unit == "day" else f"week of {start.isoformat()}"


def period_end(index: int, unit: Unit) -> date:
    return period_start(index, unit) + timedelta(days=0 if unit == "day" else 6)


def add_period(intervals: list[list[int]], index: int) -> list[list[int]] | None:
    """``intervals`` with ``index`` added, or ``None`` if it was already there."""
    result: list[list[int]] = []
    placed = False
    for first, last in intervals:
        if first <= index <= last:
            return None
        if not placed and index < first - 1:
            result.append([index, index])
            placed = True
        if not placed and index == first - 1:
            first, placed = index, True
        if not placed and index == last + 1:
            last, placed = index, True
        if result and result[-1][1] + 1 >= first:  # merge touching intervals
            result[-1][1] = max(result[-1][1], last)
        else:
            result.append([first, last])
    if not placed:
        if result and result[-1][1] + 1 == index:
            result[-1][1] = index
        else:
            result.append([index, index])
    return result


def gaps(intervals: list[list[int]]) -> list[tuple[int, int]]:
    """``(last active, next active)`` around every run of inactive periods."""
    return [(intervals[i][1], intervals[i + 1][0]) for i in range(len(intervals) - 1)]
