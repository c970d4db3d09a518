"""A synthetic but believable creator community, for the demo and for tests at scale.

Hundreds of members act over weeks on Discord, YouTube, the newsletter and the website. Activity
is heavy-tailed (a few regulars, many occasional members, lurkers), weekends are quieter, some
deliveries arrive twice (as webhooks do), and a few members use several platforms and later link
their accounts. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from smallwins.core import awards, identity
from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.holdout import held_out
from smallwins.core.identity import AccountRef
from smallwins.core.rules import Catalogue
from smallwins.core.store import Identity, Voucher
from smallwins.core.vouchers import VoucherError

FIRST_NAMES = [
    "Ada",
    "Ben",
    "Cleo",
    "Dev",
    "Eli",
    "Fay",
    "Gus",
    "Hana",
    "Ivo",
    "Jun",
    "Kai",
    "Lea",
    "Milo",
    "Nia",
    "Otto",
    "Pia",
    "Quinn",
    "Rae",
    "Sam",
    "Tao",
    "Uma",
    "Vik",
    "Wren",
    "Xia",
    "Yara",
    "Zed",
    "Ana",
    "Bo",
    "Cy",
    "Dina",
    "Emre",
    "Femi",
    "Gio",
    "Hugo",
    "Ines",
    "Jai",
    "Kofi",
    "Lina",
    "Mara",
    "Noor",
    "Oren",
]
LAST_NAMES = [
    "Okafor",
    "Silva",
    "Novak",
    "Chen",
    "Haddad",
    "Ito",
    "Berg",
    "Moreau",
    "Quispe",
    "Kowalski",
    "Ndlovu",
    "Rossi",
    "Tanaka",
    "Vega",
]

#: The demo's history starts here, so that the catalogue's launch week falls inside it.
DEMO_START = datetime(2026, 9, 7, tzinfo=UTC)
#: Events per transaction while the demo replays its history through :class:`LiveClock`: a few
#: hours of the community's life, as a live source would deliver it. (In one large batch the
#: clock would already stand at the last event when the first award is made, and every award
#: older than the voucher horizon would come without its voucher.)
DEMO_BATCH_SIZE = 100

#: platform -> (event type, relative weight) members perform there.
PLATFORM_ACTIONS: dict[str, list[tuple[str, int]]] = {
    "discord": [("message.posted", 8), ("reaction.added", 5), ("thread.started", 1)],
    "youtube": [("comment.posted", 5), ("video.liked", 3)],
    "email": [("email.replied", 3), ("email.clicked", 4)],
    "web": [("link.clicked", 4), ("form.submitted", 1)],
}
PLATFORM_SHARE = {"discord": 0.6, "youtube": 0.45, "email": 0.5, "web": 0.3}


@dataclass
class Persona:
    name: str
    accounts: dict[str, str]
    daily_rate: float


@dataclass
class Community:
    personas: list[Persona]
    events: list[Event]
    duplicates: int
    #: (the account asking for a code, an account presenting it); one pair per extra account
    links: list[tuple[AccountRef, AccountRef]] = field(default_factory=list)


def _account_id(rng: random.Random, platform: str, name: str, n: int) -> str:
    if platform == "discord":
        return str(rng.randrange(10**17, 10**18))
    if platform == "youtube":
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return "UC" + "".join(rng.choice(alphabet) for _ in range(22))
    if platform == "email":
        return f"{name.lower().replace(' ', '.')}{n}@example.org"
    return f"v-{rng.getrandbits(64):016x}"


def _personas(rng: random.Random, count: int) -> list[Persona]:
    personas = []
    for n in range(count):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        platforms = [p for p, share in PLATFORM_SHARE.items() if rng.random() < share] or ["discord"]
        # Heavy tail: most members act rarely, a few nearly every day.
        daily_rate = min(rng.paretovariate(1.5) * 0.12, 4.0)
        personas.append(
            Persona(name=name, accounts={p: _account_id(rng, p, name, n) for p in platforms}, daily_rate=daily_rate)
        )
    return personas


#: Reactions and likes name the contribution they approve of (``data.target``).
REACTIONS = {"reaction.added": "discord", "video.liked": "youtube"}
CONTRIBUTIONS = {"message.posted", "comment.posted", "thread.started"}
MODERATOR = AccountRef("discord", "100000000000000001")


def generate_community(*, members: int = 400, weeks: int = 6, seed: int = 7, start: datetime = DEMO_START) -> Community:
    """Events of ``members`` people over ``weeks`` weeks, time-ordered, with duplicate deliveries.

    Reactions target earlier contributions by other people on the same platform, and a
    moderator approves a few contributions a day or two after they were posted.
    """
    rng = random.Random(seed)
    personas = _personas(rng, members)
    events: list[Event] = []
    duplicates = 0
    recent: dict[str, list[Event]] = {"discord": [], "youtube": []}
    for day in range(weeks * 7):
        date = start + timedelta(days=day)
        weekend = date.weekday() >= 5
        posted_today: list[Event] = []
        for persona in personas:
            rate = persona.daily_rate * (0.6 if weekend else 1.0)
            actions = sum(1 for _ in range(6) if rng.random() < rate / 6)
            for _ in range(actions):
                platform = rng.choice(list(persona.accounts))
                types, weights = zip(*PLATFORM_ACTIONS[platform], strict=True)
                event_type = rng.choices(types, weights=weights)[0]
                data: dict[str, str] = {"display_name": persona.name}
                if event_type in REACTIONS:
                    others = [e for e in recent[platform] if e.subject != persona.accounts[platform]]
                    if not others:
                        continue
                    data["target"] = rng.choice(others).key
                at = date + timedelta(seconds=rng.randrange(7 * 3600, 23 * 3600))
                event = Event(
                    id=f"{platform[:2]}-{rng.getrandbits(48):012x}",
                    source=platform,
                    type=event_type,
                    subject=persona.accounts[platform],
                    time=at,
                    proof=f"https://{platform}.example/{event_type.replace('.', '/')}/{len(events)}",
                    data=data,
                )
                events.append(event)
                if event_type in CONTRIBUTIONS:
                    posted_today.append(event)
                if rng.random() < 0.03:  # webhook retried: the same event delivered twice
                    events.append(event)
                    duplicates += 1
        for post in posted_today:
            if post.source in recent:
                recent[post.source] = [*recent[post.source], post][-300:]
            if rng.random() < 0.06:  # the moderator team highlights a good post a day or two later
                events.append(
                    Event(
                        id=f"mod-{post.source}-{post.id}",
                        source=MODERATOR.platform,
                        type="moderator.approved",
                        subject=MODERATOR.account,
                        time=post.time + timedelta(hours=rng.randrange(12, 48)),
                        data={"target": post.key, "display_name": "Moderator team"},
                    )
                )
    events.sort(key=lambda e: e.time)
    links = [
        (AccountRef(first, p.accounts[first]), AccountRef(other, p.accounts[other]))
        for p in personas
        if len(p.accounts) >= 2 and rng.random() < 0.25
        for first, *others in [list(p.accounts)]
        for other in others
    ]
    return Community(personas=personas, events=events, duplicates=duplicates, links=links)


def link_accounts(engine: Engine, community: Community) -> int:
    """Members who use several platforms link them with one-time codes, as a member would.

    Returns how many members linked accounts.
    """
    for first, other in community.links:
        engine.redeem_link_code(engine.issue_link_code(first), other)
    return len({first for first, _ in community.links})


class LiveClock:
    """A clock that follows a stream of events, as if each were ingested minutes after it happened.

    The demo replays weeks of history; with this clock, awards are made (and their vouchers'
    claim windows open) when the community would have seen them, not all at the end.
    """

    def __init__(self, start: datetime, *, delay: timedelta = timedelta(minutes=5)) -> None:
        self.now, self.delay = start, delay

    def __call__(self) -> datetime:
        return self.now

    def follow(self, events: Iterable[Event]) -> Iterator[Event]:
        for event in events:
            self.now = max(self.now, event.time + self.delay)
            yield event


def _frozen_clock(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def simulate_voucher_claims(engine: Engine, *, seed: int) -> int:
    """Most members claim their voucher within a day or two; some never do, a few too late."""
    rng = random.Random(seed)
    with engine.store.sessions() as session:
        issued = session.execute(select(Voucher.code, Voucher.issued_at).order_by(Voucher.code)).all()
    real_clock, claimed = engine.clock, 0
    try:
        for code, issued_at in issued:
            if rng.random() < 0.3:
                continue  # never claimed
            at = issued_at + timedelta(hours=rng.choice([2, 10, 30, 60, 80]))
            engine.clock = _frozen_clock(at)
            try:
                engine.claim_voucher(code)
                claimed += 1
            except VoucherError:
                pass  # came back after the claim window
    finally:
        engine.clock = real_clock
    return claimed


@dataclass(frozen=True)
class BadgeEffect:
    """What the demo seeded and what it really amounted to in this community.

    Members respond to seeing a badge: an earner who would not have come back within
    ``window_days`` (after the first day) comes back with probability ``boost`` if they were
    shown it. Held-out earners never see it, so only their natural return remains. ``true_lift``
    is the realised effect on the return rate over the earners whose window has passed: the
    number a holdout experiment should recover.
    """

    achievement_id: str
    boost: float
    window_days: int
    earners: int
    boosted: int
    return_visits: int

    @property
    def true_lift(self) -> float:
        return self.boosted / self.earners if self.earners else 0.0


def register_members(engine: Engine, community: Community) -> dict[AccountRef, int]:
    """Create a member for every account up front (as importing a member list would), so the
    generator knows the member ids that decide who is held out."""
    accounts: dict[AccountRef, str | None] = {
        AccountRef(p, a): persona.name for persona in community.personas for p, a in persona.accounts.items()
    }
    with engine.store.writes.begin() as session:
        for member_id in identity.create_missing_members(session, accounts).values():
            awards.enqueue(session, member_id=member_id, kind="member.joined", at=engine.clock(), payload={})
        rows = session.execute(select(Identity.platform, Identity.account, Identity.member_id)).all()
    return {AccountRef(platform, account): int(member_id) for platform, account, member_id in rows}


def _final_members(community: Community) -> list[tuple[AccountRef, set[tuple[str, str]]]]:
    """(surviving account, every account) per member as the store ends up: linked accounts are one."""
    linked_to = {other: first for first, other in community.links}
    groups: dict[AccountRef, set[tuple[str, str]]] = {}
    for persona in community.personas:
        for platform, account in persona.accounts.items():
            ref = AccountRef(platform, account)
            survivor = linked_to.get(ref, ref)
            groups.setdefault(survivor, set()).add((platform, account))
    return list(groups.items())


def seed_badge_effect(
    engine: Engine,
    catalogue: Catalogue,
    community: Community,
    *,
    end: datetime,
    seed: int,
    achievement_id: str = "first-words",
    boost: float = 0.5,
) -> BadgeEffect | None:
    """Make members respond to seeing ``achievement_id``: add the return visits that seeing it
    causes (see :class:`BadgeEffect`). Needs the achievement to have a holdout; else None."""
    achievement = catalogue.achievements.get(achievement_id)
    if achievement is None or achievement.holdout <= 0:
        return None
    member_ids = register_members(engine, community)
    window = catalogue.experiment.window_days
    rng = random.Random(seed * 7919 + 1)
    by_account: dict[tuple[str, str], list[Event]] = {}
    for event in community.events:
        by_account.setdefault((event.source, event.subject), []).append(event)
    earners = boosted = 0
    added: list[Event] = []
    for survivor, accounts in _final_members(community):
        events = sorted((e for a in accounts for e in by_account.get(a, [])), key=lambda e: e.time)
        earned = next((e.time for e in events if e.type in achievement.triggers), None)
        if earned is None or earned + timedelta(days=1 + window) > end:
            continue  # never earned it, or too late for its outcome window to have passed
        start, stop = earned + timedelta(days=1), earned + timedelta(days=1 + window)
        came_back = any(start <= e.time < stop for e in events)
        responds = rng.random() < boost  # drawn for everyone: the same members respond whatever is held out
        earners += 1
        if came_back or not responds:
            continue
        boosted += 1
        if held_out(catalogue, achievement_id, member_ids[survivor]):
            continue  # never saw it: stays away
        event_type = PLATFORM_ACTIONS[survivor.platform][0][0]
        at = start + timedelta(seconds=rng.randrange(int((stop - start).total_seconds())))
        added.append(
            Event(
                id=f"back-{survivor.platform[:2]}-{rng.getrandbits(48):012x}",
                source=survivor.platform,
                type=event_type,
                subject=survivor.account,
                time=at,
                proof=f"https://{survivor.platform}.example/{event_type.replace('.', '/')}/back-{len(added)}",
                data={
                    "display_name": next(p.name for p in community.personas if survivor.account in p.accounts.values())
                },
            )
        )
    community.events = sorted([*community.events, *added], key=lambda e: e.time)
    return BadgeEffect(achievement_id, boost, window, earners, boosted, len(added))
