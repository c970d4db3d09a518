"""Backfill: recompute every member's standing from stored history after the catalogue changed.

``preview`` is the dry run; ``run`` applies exactly the same per-member plans (one code path,
:meth:`Engine.plan`), audited, in batches of members, one transaction per batch. Each batch
records how far it got, so a run that is interrupted resumes after the last finished batch
when started again with the same catalogue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import func, select

from smallwins.core.engine import Engine, MemberPlan
from smallwins.core.identity import lock_member, lock_members
from smallwins.core.replay import member_histories
from smallwins.core.store import BackfillRun, Member

log = structlog.get_logger(__name__)

MAX_EXAMPLES = 10


@dataclass
class BackfillTally:
    """Counts of what a backfill would do (dry run) or did, per achievement, with examples."""

    members: int = 0
    changed_members: int = 0
    awards: Counter[str] = field(default_factory=Counter)
    revocations: Counter[str] = field(default_factory=Counter)
    tier_changes: Counter[str] = field(default_factory=Counter)
    #: Awards that stay but were earned at another moment under the new catalogue (their date
    #: and the period their points count in move).
    redates: Counter[str] = field(default_factory=Counter)
    #: Held awards of achievements no longer in the catalogue: kept as they are, worth no points.
    retired: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    run_id: int | None = None
    resumed_after_member: int = 0

    def add(self, plan: MemberPlan) -> None:
        self.members += 1
        self.retired.update(plan.retired)
        if not plan.changes:
            return
        self.changed_members += 1
        self.awards.update(plan.award)
        self.revocations.update(plan.revoke)
        self.tier_changes.update(f"{a}: {old or '-'} -> {new}" for a, old, new in plan.tiers)
        self.redates.update(a for a, _, _ in plan.redate)
        if len(self.examples) < MAX_EXAMPLES:
            parts = [f"+{a}" for a in plan.award] + [f"-{a}" for a in plan.revoke]
            parts += [f"{a} {old or '-'}->{new}" for a, old, new in plan.tiers]
            parts += [f"{a} earned {new:%Y-%m-%d %H:%M}" for a, _, new in plan.redate]
            self.examples.append(f"member {plan.member_id} ({plan.display_name}): {', '.join(parts)}")

    def absorb(self, other: BackfillTally) -> None:
        self.members += other.members
        self.changed_members += other.changed_members
        self.awards.update(other.awards)
        self.revocations.update(other.revocations)
        self.tier_changes.update(other.tier_changes)
        self.redates.update(other.redates)
        self.retired.update(other.retired)
        self.examples.extend(other.examples[: MAX_EXAMPLES - len(self.examples)])

    @property
    def totals(self) -> tuple[int, int, int]:
        return sum(self.awards.values()), sum(self.revocations.values()), sum(self.tier_changes.values())


def _member_ids(engine: Engine, after: int, limit: int) -> list[int]:
    with engine.store.sessions() as session:
        return list(
            session.scalars(
                select(Member.id)
                .where(Member.merged_into_id.is_(None), Member.id > after)
                .order_by(Member.id)
                .limit(limit)
            )
        )


def count_members(engine: Engine) -> int:
    with engine.store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Member).where(Member.merged_into_id.is_(None))) or 0


def preview(engine: Engine, *, batch_size: int = 200, on_member: Callable[[], None] | None = None) -> BackfillTally:
    """What a backfill would change; writes nothing."""
    tally, after = BackfillTally(), 0
    while ids := _member_ids(engine, after, batch_size):
        with engine.store.sessions() as session:
            histories = member_histories(session, ids, list(engine.catalogue.achievements.values()))
            for member_id in ids:
                tally.add(engine.plan(session, session.get_one(Member, member_id), histories[member_id]))
                if on_member:
                    on_member()
        after = ids[-1]
    return tally


def run(engine: Engine, *, batch_size: int = 100, on_member: Callable[[], None] | None = None) -> BackfillTally:
    """Apply the backfill, resuming an unfinished run of the same catalogue if there is one."""
    fingerprint = engine.catalogue.fingerprint
    with engine.store.writes.begin() as session:
        backfill = session.scalars(
            select(BackfillRun)
            .where(BackfillRun.catalogue == fingerprint, BackfillRun.finished_at.is_(None))
            .order_by(BackfillRun.id.desc())
        ).first()
        if backfill is None:
            backfill = BackfillRun(catalogue=fingerprint, started_at=engine.clock(), last_member_id=0)
            session.add(backfill)
            session.flush()
        run_id, after = backfill.id, backfill.last_member_id
    tally = BackfillTally(run_id=run_id, resumed_after_member=after)
    log.info("backfill.started", run=run_id, catalogue=fingerprint, resume_after=after)
    while ids := _member_ids(engine, after, batch_size):
        batch = BackfillTally()
        with engine.store.writes.begin() as session:
            lock_members(session, set(ids))
            histories = member_histories(session, ids, list(engine.catalogue.achievements.values()))
            planned = {}
            for member_id in ids:
                member = lock_member(session, member_id)
                plan = engine.plan(session, member, histories[member_id] if member.id == member_id else None)
                engine.apply_plan(
                    session, member, plan, reason=f"backfill run {run_id} (catalogue {fingerprint})",
                    rebuild_points=False,
                )
                planned[member.id] = member
                batch.add(plan)
            engine.rebuild_points_of(session, list(planned.values()))
            progress = session.get_one(BackfillRun, run_id)
            awarded, revoked, tiers = batch.totals
            progress.last_member_id = ids[-1]
            progress.awarded += awarded
            progress.revoked += revoked
            progress.changed_tiers += tiers
        tally.absorb(batch)
        after = ids[-1]
        if on_member:
            for _ in ids:
                on_member()
    with engine.store.writes.begin() as session:
        session.get_one(BackfillRun, run_id).finished_at = engine.clock()
    log.info("backfill.finished", run=run_id, members=tally.members, changed=tally.changed_members)
    return tally
