"""What an ingest reports, what a recomputation plans, the per-transaction bookkeeping keys, and
looking up stored events by key (shared by several stages)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from smallwins.core.replay import Position
from smallwins.core.store import StoredEvent, pair_in

SYSTEM_ACTOR = "smallwins"
LINK_EVENT = "link.code_presented"
#: ``session.info`` keys of per-transaction work (rule states live in
#: :mod:`smallwins.core.rule_states`): rule states found stale (an earlier event arrived late),
#: by member; members whose stale rules follow a retraction; members to replay in full; keys
#: retracted before their event arrived.
STALE = "smallwins.stale_rule_states"
STALE_CAUSE = "smallwins.stale_cause"
RETRACTION_TOUCHED = "smallwins.retraction_touched"
FULL_REPLAY = "smallwins.full_replay"
RETRACTED_KEYS = "smallwins.retracted_keys"
UNRESOLVED = "smallwins.unresolved"
#: ``session.info`` key: event key -> what a rule that raised on it said (the event's warning).
RULE_FAILURES = "smallwins.rule_failures"
#: Attempts of a batch PostgreSQL aborted to break a deadlock, before going one event at a time.
DEADLOCK_RETRIES = 4

#: What happens to an award whose evidence was retracted (a deleted message): by default it is
#: revoked (audited) when the rule is no longer met; ``keep`` leaves awards already made alone.
RetractionPolicy = Literal["revoke", "keep"]


#: Events listed by key for one warning; the rest are counted (see :meth:`IngestReport.told`).
SAME_WARNING_SHOWN = 3


@dataclass
class IngestOutcome:
    """What happened to one event."""

    key: str
    stored: bool
    member_id: int | None
    awarded: list[str] = field(default_factory=list)
    warning: str | None = None

    def warn(self, text: str) -> None:
        """Add a warning to the ones this event already has."""
        self.warning = f"{self.warning}; {text}" if self.warning else text


@dataclass
class IngestReport:
    """Totals of a batch of events, plus per-event warnings worth showing an operator."""

    stored: int = 0
    duplicates: int = 0
    awarded: int = 0
    #: ``"<event key>: <warning>"``, the first :data:`SAME_WARNING_SHOWN` events of each warning.
    warnings: list[str] = field(default_factory=list)
    #: How many events each warning was given to (a file from a mistyped source warns on every line).
    warned: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: IngestOutcome) -> None:
        if outcome.stored:
            self.stored += 1
        else:
            self.duplicates += 1
        self.awarded += len(outcome.awarded)
        if outcome.warning:
            seen = self.warned[outcome.warning] = self.warned.get(outcome.warning, 0) + 1
            if seen <= SAME_WARNING_SHOWN:
                self.warnings.append(f"{outcome.key}: {outcome.warning}")

    def told(self) -> list[str]:
        """The warnings to show an operator: each event's, then one line per warning given to
        more events than were listed."""
        more = [
            f"{count - SAME_WARNING_SHOWN} more events: {warning}"
            for warning, count in self.warned.items()
            if count > SAME_WARNING_SHOWN
        ]
        return self.warnings + more


@dataclass
class MemberPlan:
    """What a recomputation would change for one member (shown by a dry run, applied as is)."""

    member_id: int
    display_name: str
    states: dict[str, dict[str, Any]]
    earned: dict[str, tuple[datetime, str | None]]
    seen: dict[str, Position] = field(default_factory=dict)
    award: list[str] = field(default_factory=list)
    revoke: list[str] = field(default_factory=list)
    tiers: list[tuple[str, str | None, str]] = field(default_factory=list)
    redate: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    #: Held awards of achievements no longer in the catalogue: kept (cards show them), worth no
    #: points; not a change, but a dry run says so.
    retired: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.award or self.revoke or self.tiers or self.redate)


@dataclass
class Unresolved:
    """What a transaction could not connect because the other half was not visible to it."""

    approvals: set[str] = field(default_factory=set)  # approvals whose contribution was not found
    approvals_seen: dict[str, set[str]] = field(default_factory=dict)  # contribution -> approvals found
    retracted: set[str] = field(default_factory=set)  # events named by a retraction, not found


def unresolved(session: Session) -> Unresolved:
    found: Unresolved = session.info.setdefault(UNRESOLVED, Unresolved())
    return found


def is_deadlock(exc: OperationalError) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock or a serialization conflict."""
    return getattr(exc.orig, "sqlstate", None) in {"40P01", "40001"}


def stored_events(session: Session, keys: set[str]) -> dict[str, StoredEvent]:
    """Stored events by ``source:id`` key, in one query (the unique index answers it)."""
    pairs = [tuple(key.split(":", 1)) for key in keys if ":" in key]
    if not pairs:
        return {}
    rows = session.scalars(select(StoredEvent).where(pair_in(session, StoredEvent.source, StoredEvent.event_id, pairs)))
    return {row.key: row for row in rows}
