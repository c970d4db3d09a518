"""Partitioned ingest: engines that each own a share of the accounts, handing approvals for each
other's members across, end exactly where one process does, progress included."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select

from smallwins.core import backfill, rule_states
from smallwins.core.config import parse_catalogue
from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.partitions import Partition, account_partition
from smallwins.core.plugins import PluginHost
from smallwins.core.rules import Progress, RuleContext
from smallwins.core.store import Handoff, Identity, MemberStates, Store, open_store
from smallwins.core.workers import partition_of
from smallwins.demo import generate_community
from tests.conftest import T0, Clock
from tests.rules_helpers import progress_of
from tests.test_event_time import START, launch_engine, standing


def progress(store: Store) -> list[tuple[str, str, int, int, bool, str | None]]:
    """Every member's progress on every achievement they have a state for ("2 of 3 approved
    posts"), keyed by their accounts (member ids, also inside states, depend on arrival)."""
    achievements = launch_engine(store).catalogue.achievements
    with store.sessions() as session:
        accounts: dict[int, list[str]] = {}
        for member_id, platform, name in session.execute(
            select(Identity.member_id, Identity.platform, Identity.account)
        ):
            accounts.setdefault(member_id, []).append(f"{platform}:{name}")
        rows = []
        stored = rule_states.read(session, session.scalars(select(MemberStates.member_id)))
        for row in (saved for states in stored.values() for saved in states.values()):
            achievement = achievements[row.achievement_id]
            shown = achievement.rule.progress(achievement.params, row.state)
            who = " ".join(sorted(accounts[row.member_id]))
            rows.append((who, row.achievement_id, shown.current, shown.target, shown.met, shown.tier))
        return sorted(rows)


def handoffs_waiting(store: Store) -> int:
    with store.sessions() as session:
        return session.scalar(select(func.count()).select_from(Handoff)) or 0


def single_process(url: str, events: list[Event]) -> tuple[dict[str, Any], list[Any]]:
    store = open_store(url)
    try:
        list(launch_engine(store).ingest_many(events, batch_size=200))
        return standing(store), progress(store)
    finally:
        store.close()


def test_partitions_taking_turns_reach_the_single_process_standing(database_url: str, tmp_path: Path) -> None:
    """Three partitions ingest a shuffled community with redeliveries in turns of small batches,
    as concurrent workers would interleave; what is left handed off is drained at the end."""
    events = generate_community(members=120, weeks=6, seed=21, start=START).events
    shuffled = events + random.Random(2).sample(events, 150)
    random.Random(1).shuffle(shuffled)
    expected = single_process(f"sqlite:///{tmp_path / 'single.db'}", shuffled)

    store = open_store(database_url)
    try:
        engines = [launch_engine(store) for _ in range(3)]
        shares: list[list[Event]] = [[] for _ in engines]
        for event in shuffled:
            shares[partition_of(event, 3)].append(event)
        for index, engine in enumerate(engines):
            engine.partition = Partition(index, 3)
        for start in range(0, max(len(share) for share in shares), 150):
            for engine, share in zip(engines, shares, strict=True):
                list(engine.ingest_many(share[start : start + 150], batch_size=150))
        assert handoffs_waiting(store) > 0, "the last turn handed approvals to partitions that had finished"
        engines[0].drain_handoffs()
        assert handoffs_waiting(store) == 0
        assert (standing(store), progress(store)) == expected
    finally:
        store.close()


class ReactionsReceived(BaseModel):
    target: int


class ReactionsReceivedRule:
    """A plugin author's rule that counts every reaction to a member's posts, with no memory of
    which it has seen: applying one reaction twice would count it twice."""

    name = "reactions_received"
    params_model = ReactionsReceived

    def triggers(self, params: ReactionsReceived) -> frozenset[str]:
        return frozenset()

    def target_triggers(self, params: ReactionsReceived) -> frozenset[str]:
        return frozenset({"reaction.added"})

    def initial_state(self, params: ReactionsReceived) -> dict[str, Any]:
        return {"received": 0}

    def apply(
        self, params: ReactionsReceived, state: Mapping[str, Any], event: Event, ctx: RuleContext
    ) -> dict[str, Any]:
        return {"received": state["received"] + 1}

    def progress(self, params: ReactionsReceived, state: Mapping[str, Any], ctx: RuleContext | None = None) -> Progress:
        return Progress(current=state["received"], target=params.target, unit="reactions received")


def accounts_in_two_partitions() -> tuple[str, str]:
    """Two Discord accounts that two partitions own one each."""
    names = (f"4100000000000000{n:02d}" for n in count())
    author = next(names)
    actor = next(n for n in names if account_partition("discord", n, 2) != account_partition("discord", author, 2))
    return author, actor


def test_a_handoff_claimed_after_a_replay_counts_once(store: Store, clock: Clock) -> None:
    """The author's rules replay from history (a backfill) after a reaction is stored but before
    its handoff is claimed: the replay counted it, so claiming it must not count it again."""
    author, actor = accounts_in_two_partitions()
    rule_types = {**PluginHost().rule_types(), "reactions_received": ReactionsReceivedRule()}
    achievements = {
        "liked": {"name": "Liked", "description": "Two reactions.", "rule": "reactions_received", "target": 2}
    }
    catalogue = parse_catalogue({"achievements": achievements}, rule_types, path=Path("test.toml"))
    post = Event(id="p1", source="discord", type="message.posted", subject=author, time=T0)
    reaction = Event(
        id="r1",
        source="discord",
        type="reaction.added",
        subject=actor,
        time=T0 + timedelta(hours=1),
        data={"target": post.key},
    )
    owner, other = Engine(store, catalogue, clock=clock), Engine(store, catalogue, clock=clock)
    owner.partition = Partition(partition_of(post, 2), 2)
    other.partition = Partition(partition_of(reaction, 2), 2)

    list(owner.ingest_many([post]))
    list(other.ingest_many([reaction]))
    assert handoffs_waiting(store) == 1, "the reaction was handed to the author's partition"
    assert progress_of(owner, store, f"discord:{author}", "liked").current == 0
    backfill.run(Engine(store, catalogue, clock=clock))
    assert progress_of(owner, store, f"discord:{author}", "liked").current == 1, "the replay read the reaction"
    owner.drain_handoffs()
    assert handoffs_waiting(store) == 0
    assert progress_of(owner, store, f"discord:{author}", "liked").current == 1
