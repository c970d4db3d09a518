"""Leaderboards: all-time, and time-boxed per week, month or season in the community's time zone.

Each period is its own set of rows, so a board "resets" at the boundary simply because a new
period key begins, and past periods stay queryable as history.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlalchemy.orm import Session

from smallwins.core import rank_index
from smallwins.core.bulk import DriverWrite
from smallwins.core.rules import LeaderboardSpec
from smallwins.core.store import Member, PeriodPoints

#: ``session.info`` key of the point changes waiting to be written when the transaction commits.
PENDING = "smallwins.pending_period_points"


#: The name the all-time board goes by where boards are named (the CLI, the web API).
ALL_TIME = "all-time"
_PERIOD_PATTERNS = {
    "week": re.compile(r"\d{4}-W(0[1-9]|[1-4]\d|5[0-3])"),
    "month": re.compile(r"\d{4}-(0[1-9]|1[0-2])"),
    "season": re.compile(r"season"),
}
#: What a period of each kind of board looks like, for error messages.
PERIOD_EXAMPLES = {
    "week": "an ISO week such as 2026-W19",
    "month": "a month such as 2026-05",
    "season": "a season board has one period, 'season'",
}


def is_period_of(board: LeaderboardSpec, period: str) -> bool:
    """Whether ``period`` names a period of ``board`` (its format; it may have no scores)."""
    pattern = _PERIOD_PATTERNS.get(board.period)
    if pattern is None or pattern.fullmatch(period) is None:
        return False
    return board.period != "week" or _week_exists(period)


def _week_exists(period: str) -> bool:
    """Whether an ISO week such as ``2026-W53`` is real: only some years have a 53rd week."""
    year, week = period.split("-W")
    try:
        date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        return False
    return True


def period_key(board: LeaderboardSpec, moment: datetime, zone: ZoneInfo) -> str | None:
    """The period of ``board`` that ``moment`` falls in, or ``None`` (outside a season)."""
    return _period_on(board, moment, moment.astimezone(zone).date())


def _period_on(board: LeaderboardSpec, moment: datetime, local_day: date) -> str | None:
    if board.period == "season":
        return "season" if board.window and moment in board.window else None
    return _week_of(local_day) if board.period == "week" else _month_of(local_day)


@functools.lru_cache(maxsize=4096)
def _week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@functools.lru_cache(maxsize=4096)
def _month_of(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def add_points(
    session: Session,
    boards: dict[str, LeaderboardSpec],
    zone: ZoneInfo,
    *,
    member_id: int,
    moment: datetime,
    points: int,
) -> None:
    """Credit ``points`` earned at ``moment`` to every board's period it falls in.

    Changes add up in memory and are written as one upsert per row at commit
    (:func:`write_pending`), so a batch of events costs one statement, not one per event.
    """
    if not points:
        return
    pending: dict[tuple[str, str, int], int] = session.info.setdefault(PENDING, {})
    local_day = moment.astimezone(zone).date()  # once for all boards: this runs per event and award
    for board in boards.values():
        key = _period_on(board, moment, local_day)
        if key is not None:
            pending[(board.id, key, member_id)] = pending.get((board.id, key, member_id), 0) + points


def write_pending(session: Session) -> None:
    """Upsert the accumulated point changes; registered to run before every commit."""
    pending: dict[tuple[str, str, int], int] = session.info.pop(PENDING, {})
    # In key order: the upsert then walks the primary key's pages in order instead of at random
    # (tens of thousands of rows a batch; 60,000 into a 720,000-row table on SQLite: 2.6 -> 1.3 s).
    rows = [{"board": b, "period": p, "member_id": m, "points": n} for (b, p, m), n in sorted(pending.items()) if n]
    _ADD_POINTS.execute(session, rows)


def _add_points(statement: Any) -> Any:
    return statement.on_conflict_do_update(
        index_elements=["board", "period", "member_id"],
        set_={"points": PeriodPoints.points + statement.excluded.points},
    )


_ADD_POINTS = DriverWrite(cast(Table, PeriodPoints.__table__), ("board", "period", "member_id", "points"), _add_points)


def forget_member(session: Session, member_id: int) -> None:
    """Drop a member's period rows and unwritten changes (before rebuilding them from history)."""
    forget_members(session, [member_id])


def forget_members(session: Session, member_ids: Sequence[int]) -> None:
    """:func:`forget_member` for several members in one statement."""
    gone = set(member_ids)
    pending: dict[tuple[str, str, int], int] = session.info.get(PENDING, {})
    for key in [k for k in pending if k[2] in gone]:
        del pending[key]
    session.execute(delete(PeriodPoints).where(PeriodPoints.member_id.in_(gone)))


@dataclass(frozen=True)
class LeaderboardRow:
    rank: int
    member_id: int
    display_name: str
    points: int


def _ranked(rows: Sequence[Any]) -> list[LeaderboardRow]:
    """Competition ranks (1, 2, 2, 4) over rows already sorted by points, descending."""
    result: list[LeaderboardRow] = []
    for position, (member_id, name, points) in enumerate(rows, start=1):
        rank = result[-1].rank if result and result[-1].points == points else position
        result.append(LeaderboardRow(rank, member_id, name, points))
    return result


def _public() -> tuple[ColumnElement[bool], ...]:
    """Members who appear on boards: not merged away, not private, not staff."""
    return Member.merged_into_id.is_(None), Member.private.is_(False), Member.staff.is_(False)


def all_time(session: Session, *, limit: int = 10) -> list[LeaderboardRow]:
    """The all-time leaderboard of public members."""
    return _ranked(
        session.execute(
            select(Member.id, Member.display_name, Member.points)
            .where(*_public())
            .order_by(Member.points.desc(), Member.id)
            .limit(limit)
        ).all()
    )


def ranks_of(session: Session, members: list[Member]) -> dict[int, int]:
    """All-time competition ranks of several public members, from the counts per points total
    (:mod:`smallwins.core.rank_index`): one indexed sum per distinct total, not a count of members."""
    public = [m for m in members if not (m.private or m.staff or m.merged_into_id is not None)]
    if not public:
        return {}
    ahead = rank_index.members_above(session, (m.points for m in public))
    return {m.id: ahead[m.points] + 1 for m in public}


def rank_of(session: Session, member: Member) -> int | None:
    """Competition rank on the all-time leaderboard; private and merged members have none."""
    return ranks_of(session, [member]).get(member.id)


def standings(session: Session, board: str, period: str, *, limit: int = 10) -> list[LeaderboardRow]:
    """One period of a time-boxed board, public members who scored in it."""
    return _ranked(
        session.execute(
            select(Member.id, Member.display_name, PeriodPoints.points)
            .join(Member, Member.id == PeriodPoints.member_id)
            .where(PeriodPoints.board == board, PeriodPoints.period == period, PeriodPoints.points > 0, *_public())
            .order_by(PeriodPoints.points.desc(), Member.id)
            .limit(limit)
        ).all()
    )


def history(session: Session, board: str) -> list[tuple[str, int]]:
    """Every period of a board that has points, newest first, with how many members scored."""
    return [
        (period, count)
        for period, count in session.execute(
            select(PeriodPoints.period, func.count())
            .where(PeriodPoints.board == board, PeriodPoints.points > 0)
            .group_by(PeriodPoints.period)
            .order_by(PeriodPoints.period.desc())
        )
    ]
