"""What every stage shares: the engine's settings, a member's rule context, points, stale marks.

The stages of the pipeline are mixins stacked in pipeline order (base, evaluate, recompute,
settle, linking, resolve, store_events, route, handoff, ingest); :class:`smallwins.core.engine.Engine`
is the facade that combines them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session

from smallwins.core import leaderboards, rank_index, rule_states
from smallwins.core.events import CORE_EVENT_TYPES
from smallwins.core.partitions import Partition, account_partition
from smallwins.core.pipeline.outcomes import (
    RETRACTION_TOUCHED,
    STALE,
    STALE_CAUSE,
    RetractionPolicy,
)
from smallwins.core.rule_states import SavedState
from smallwins.core.rules import Achievement, Catalogue, RuleContext
from smallwins.core.store import (
    Handoff,
    Member,
    Store,
)

#: ``session.info`` key: handoffs of this transaction, written together at commit (no other
#: worker can claim them before then anyway).
PENDING_HANDOFFS = "smallwins.pending_handoffs"


def write_handoffs(session: Session) -> None:
    """Insert the transaction's handoffs in one statement; registered to run before every commit."""
    rows = session.info.pop(PENDING_HANDOFFS, None)
    if rows:
        session.execute(insert(Handoff), rows)


class EngineCore:
    """What every stage shares: the engine's settings, a member's rule context, points, stale marks."""

    #: This engine's share of the accounts when several workers ingest (``None``: all of them).
    partition: Partition | None = None

    def __init__(
        self,
        store: Store,
        catalogue: Catalogue,
        *,
        known_event_types: Iterable[str] = (),
        known_sources: Iterable[str] = (),
        link_code_ttl: timedelta = timedelta(minutes=30),
        default_timezone: str = "UTC",
        retraction_policy: RetractionPolicy = "revoke",
        voucher_horizon: timedelta | None = timedelta(days=7),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        for writer in (rule_states.write_pending, leaderboards.write_pending, write_handoffs):
            if writer not in store.before_commit:
                store.before_commit.append(writer)
        self.catalogue = catalogue
        self.known_event_types = frozenset(known_event_types) | catalogue.known_event_types | CORE_EVENT_TYPES
        # Sources with an installed plugin or named by the catalogue; empty: not checked (an
        # engine built without a plugin host, as in benchmarks and most tests).
        given = frozenset(known_sources)
        self.known_sources = given | catalogue.named_sources if given else frozenset()
        self.link_code_ttl = link_code_ttl
        self.default_timezone = ZoneInfo(default_timezone)
        self.retraction_policy = retraction_policy
        self.voucher_horizon = voucher_horizon
        self.clock = clock

    def _context(self, member: Member) -> RuleContext:
        return RuleContext(
            member_id=member.id,
            timezone=ZoneInfo(member.timezone) if member.timezone else self.default_timezone,
            now=self.clock(),
        )

    def _credit(self, session: Session, member: Member, moment: datetime, points: int) -> None:
        """Add points to the all-time total and to every time-boxed board's period (not staff's)."""
        if points and not member.staff:
            rank_index.credit(session, member, points)
            leaderboards.add_points(
                session,
                self.catalogue.leaderboards,
                self.default_timezone,
                member_id=member.id,
                moment=moment,
                points=points,
            )

    def _foreign(self, source: str, subject: str) -> bool:
        """Whether the account belongs to another worker's partition (never, unpartitioned)."""
        return self.partition is not None and not self.partition.owns(source, subject)

    def _hand_off(self, session: Session, member_id: int, account: tuple[str, str], cause: str) -> None:
        """Leave the approval ``cause`` for ``member_id`` to the worker that owns ``account``, the
        account of the contribution it names (see the handoff stage)."""
        assert self.partition is not None
        count = self.partition.count
        row = {
            "partition_count": count,
            "partition_index": account_partition(*account, count),
            "member_id": member_id,
            "cause": cause,
        }
        session.info.setdefault(PENDING_HANDOFFS, []).append(row)

    @staticmethod
    def _mark_stale(
        session: Session, member_id: int, achievements: Iterable[Achievement], *, cause: str, retraction: bool = False
    ) -> None:
        """Have the member's rule states for ``achievements`` replayed when the batch settles."""
        session.info.setdefault(STALE, {}).setdefault(member_id, set()).update(a.id for a in achievements)
        session.info.setdefault(STALE_CAUSE, {}).setdefault(member_id, cause)
        if retraction:
            session.info.setdefault(RETRACTION_TOUCHED, set()).add(member_id)

    @staticmethod
    def _rule_states(session: Session, member_id: int, achievement_ids: list[str]) -> dict[str, SavedState | None]:
        """The member's saved states for these achievements, loaded once per transaction
        (see :mod:`smallwins.core.rule_states`: changes are written in one statement at commit)."""
        return rule_states.of(session, member_id, achievement_ids)
