"""Identity linking: one member across platforms, merged without double counting."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from smallwins.core.config import load_catalogue
from smallwins.core.engine import Engine
from smallwins.core.identity import AccountRef, IdentityError
from smallwins.core.plugins import PluginHost
from smallwins.core.store import AuditEntry, Award, Member, Store, StoredEvent
from smallwins.core.views import find_member, member_snapshot
from tests.conftest import REPO, T0

DISCORD = AccountRef("discord", "d1")
YOUTUBE = AccountRef("youtube", "UCyt1")


def standing(store: Store, engine: Engine, ref: str) -> tuple[int, int, dict[str, int], set[str]]:
    """(member id, points, progress counts, active awards) of the member behind ``ref``."""
    with store.sessions() as session:
        member = find_member(session, ref)
        snapshot = member_snapshot(session, engine.catalogue, member.id)
    progress = {p["id"]: p["current"] for p in snapshot.progress}
    return member.id, snapshot.points, progress, {a["id"] for a in snapshot.awards}


def test_first_sight_creates_a_member_per_account(engine: Engine, store: Store, make_event) -> None:
    engine.ingest(make_event(subject="d1", source="discord", display_name="Ada"))
    engine.ingest(make_event(subject="UCyt1", source="youtube", type="comment.posted"))
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Member)) == 2
        assert find_member(session, "Ada").id == find_member(session, "discord:d1").id


def test_merge_combines_history_without_double_counting(engine: Engine, store: Store, make_event) -> None:
    for _ in range(3):
        engine.ingest(make_event(subject="d1", source="discord"))
    for _ in range(2):
        engine.ingest(make_event(subject="UCyt1", source="youtube", type="comment.posted"))
    # Each account alone: First Words, 3 and 2 of 5 toward Regular.
    assert standing(store, engine, "discord:d1")[1] == 3 * 2 + 10
    assert standing(store, engine, "youtube:UCyt1")[1] == 2 * 2 + 10

    code = engine.issue_link_code(DISCORD)
    survivor = engine.redeem_link_code(code, YOUTUBE)

    member_id, points, progress, held = standing(store, engine, "youtube:UCyt1")
    assert member_id == survivor == standing(store, engine, "discord:d1")[0]
    assert progress["regular"] == 5 and progress["first-words"] == 1
    assert held == {"first-words", "regular"}
    assert points == 5 * 2 + 10 + 25, "First Words counted once, Regular earned by the combined history"
    with store.sessions() as session:
        # one award per achievement for the survivor; the merged member's duplicate stays parked
        # with it, so an unlink could give it back
        assert session.scalar(select(func.count()).select_from(Award).where(Award.member_id == survivor)) == 2
        assert (
            session.scalar(select(func.count()).select_from(StoredEvent).where(StoredEvent.member_id == survivor)) == 5
        )
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "merge")) == 2


def test_link_code_presented_as_an_event(engine: Engine, store: Store, make_event) -> None:
    engine.ingest(make_event(subject="d1", source="discord"))
    code = engine.issue_link_code(DISCORD)
    outcome = engine.ingest(
        make_event(subject="UCyt1", source="youtube", type="link.code_presented", code=code.lower())
    )
    assert outcome.warning is None
    assert standing(store, engine, "youtube:UCyt1")[0] == standing(store, engine, "discord:d1")[0]
    # The same code a second time is refused; the event is still stored, nothing merges.
    again = engine.ingest(make_event(subject="x@example.org", source="email", type="link.code_presented", code=code))
    assert again.stored and "already used" in (again.warning or "")


def test_a_code_presented_by_its_own_member_is_not_used_up(engine: Engine, store: Store, make_event) -> None:
    engine.ingest(make_event(subject="d1", source="discord"))
    code = engine.issue_link_code(DISCORD)
    with pytest.raises(IdentityError, match="asked for by this same member"):
        engine.redeem_link_code(code, DISCORD)
    own = engine.ingest(make_event(subject="d1", source="discord", type="link.code_presented", code=code))
    assert "asked for by this same member" in (own.warning or "")
    assert engine.redeem_link_code(code, YOUTUBE) == standing(store, engine, "discord:d1")[0]
    assert standing(store, engine, "youtube:UCyt1")[0] == standing(store, engine, "discord:d1")[0]


def test_a_retracted_link_event_links_whichever_arrives_first(store: Store, make_event) -> None:
    """Deleting the comment that carried a code does not undo the link (``unlink`` does): the
    accounts end up linked whether the deletion arrives after the code's event or before it."""
    linked = []
    for retraction_first in (False, True):
        engine = Engine(store, load_catalogue(REPO / "achievements.toml", PluginHost().rule_types()))
        owner = f"d{retraction_first}"
        engine.ingest(make_event(subject=owner, source="discord"))
        code = engine.issue_link_code(AccountRef("discord", owner))
        presented = make_event(subject=f"UC{retraction_first}", source="youtube", type="link.code_presented",
                               code=code, at=T0 + timedelta(hours=1))
        deleted = make_event(subject=f"UC{retraction_first}", source="youtube", type="comment.deleted",
                             retracts=f"youtube:{presented.id}", at=T0 + timedelta(hours=2))
        for event in (deleted, presented) if retraction_first else (presented, deleted):
            engine.ingest(event)
        member_ids = {standing(store, engine, ref)[0] for ref in (f"youtube:UC{retraction_first}", f"discord:{owner}")}
        linked.append(len(member_ids) == 1)
    assert linked == [True, True]


def test_bad_and_expired_codes(engine: Engine, clock, make_event) -> None:
    with pytest.raises(IdentityError, match="unknown"):
        engine.redeem_link_code("ZZZZ-ZZZZ", YOUTUBE)
    code = engine.issue_link_code(DISCORD)
    clock.advance(minutes=31)
    with pytest.raises(IdentityError, match="expired"):
        engine.redeem_link_code(code, YOUTUBE)
    assert engine.link_code_ttl == timedelta(minutes=30)


def test_unlink_splits_history_and_standing(engine: Engine, store: Store, make_event) -> None:
    for _ in range(3):
        engine.ingest(make_event(subject="d1", source="discord"))
    for _ in range(2):
        engine.ingest(make_event(subject="UCyt1", source="youtube", type="comment.posted"))
    engine.redeem_link_code(engine.issue_link_code(DISCORD), YOUTUBE)
    assert "regular" in standing(store, engine, "discord:d1")[3]

    _original, _detached = engine.unlink(YOUTUBE)
    _, points, progress, held = standing(store, engine, "discord:d1")
    assert progress["regular"] == 3 and held == {"first-words"} and points == 3 * 2 + 10
    _, points, progress, held = standing(store, engine, "youtube:UCyt1")
    assert progress["regular"] == 2 and held == {"first-words"} and points == 2 * 2 + 10
    with pytest.raises(IdentityError, match="only identity"):
        engine.unlink(YOUTUBE)


def test_unlink_gives_each_member_the_names_of_its_own_events(engine: Engine, store: Store, make_event) -> None:
    """After an unlink each member is named as if never linked: the later name the linked account
    brought goes with it, and an account whose events carry no name is named after itself."""
    engine.ingest(make_event(subject="d1", source="discord", display_name="Cy", at=T0))
    engine.ingest(make_event(subject="UCyt1", source="youtube", display_name="cy-web", at=T0 + timedelta(days=1)))
    engine.ingest(make_event(subject="x@example.org", source="email", at=T0 + timedelta(days=2)))
    engine.redeem_link_code(engine.issue_link_code(DISCORD), YOUTUBE)
    engine.redeem_link_code(engine.issue_link_code(DISCORD), AccountRef("email", "x@example.org"))

    def name(ref: str) -> str:
        with store.sessions() as session:
            member = find_member(session, ref)
            assert member is not None
            return member.display_name

    assert name("discord:d1") == "cy-web"  # the latest named event of the three accounts
    engine.unlink(YOUTUBE)
    assert (name("discord:d1"), name("youtube:UCyt1")) == ("Cy", "cy-web")
    engine.unlink(DISCORD)  # the email account keeps the member, and no event of it gave a name
    assert (name("discord:d1"), name("email:x@example.org")) == ("Cy", "email:x@example.org")


def test_merge_in_the_middle_of_a_batch(engine: Engine, store: Store, make_event) -> None:
    """A link code presented mid-batch: the events after it build on the merged standing, and
    the batch commits whole (no fallback to one transaction per event)."""
    from structlog.testing import capture_logs

    code = engine.issue_link_code(DISCORD)
    batch = [make_event(subject="d1", source="discord") for _ in range(3)]
    batch += [make_event("comment.posted", subject="UCyt1", source="youtube") for _ in range(2)]
    batch.append(make_event("link.code_presented", subject="UCyt1", source="youtube", code=code))
    batch += [make_event(subject="d1", source="discord") for _ in range(2)]
    batch.append(make_event("comment.posted", subject="UCyt1", source="youtube"))
    with capture_logs() as logs:
        outcomes = list(engine.ingest_many(batch))
    assert all(o.stored for o in outcomes) and not [e for e in logs if "batch_failed" in e["event"]]
    member_id, points, progress, held = standing(store, engine, "discord:d1")
    assert member_id == standing(store, engine, "youtube:UCyt1")[0]
    assert progress["regular"] == 5 and progress["pillar"] == 8
    assert held == {"first-words", "regular"}
    assert points == 8 * 2 + 10 + 25


def test_link_then_unlink_gives_back_what_moved_and_mints_no_second_voucher(store: Store, clock, make_event) -> None:
    """Grant Zed a badge with a voucher, link Zed into Ada, unlink Zed: Zed gets back his name,
    his grant and his claimed voucher; nobody is issued a fresh voucher for the same badge."""
    from smallwins.core.store import Voucher
    from tests.rules_helpers import engine_of, held

    engine = engine_of(
        store,
        clock,
        {
            "pillar": {"rule": "count", "events": ["message.posted"], "threshold": 2, "voucher_claim_hours": 72},
            "first": {"rule": "count", "events": ["message.posted"], "threshold": 1},
        },
    )
    engine.ingest(make_event(subject="ada", source="discord", display_name="Ada"))
    engine.ingest(make_event("comment.posted", subject="UCzed", source="youtube", display_name="Zed"))
    with store.sessions() as session:
        zed_id = session.scalar(select(Member.id).where(Member.display_name == "Zed"))
    engine.grant(zed_id, "pillar", actor="mod-ann", reason="ran the meetup")
    with store.sessions() as session:
        [voucher] = session.scalars(select(Voucher)).all()
    engine.claim_voucher(voucher.code)

    engine.redeem_link_code(engine.issue_link_code(AccountRef("discord", "ada")), AccountRef("youtube", "UCzed"))
    assert held(store, "youtube:UCzed") == {"pillar": None, "first": None}, "merged: Ada holds Zed's grant"

    engine.unlink(AccountRef("youtube", "UCzed"))
    assert held(store, "youtube:UCzed") == {"pillar": None}
    assert held(store, "discord:ada") == {"first": None}
    with store.sessions() as session:
        vouchers = session.execute(select(Voucher.code, Voucher.member_id, Voucher.claimed_at)).all()
        zed = session.get(Member, zed_id)
        assert zed is not None and zed.display_name == "Zed" and zed.merged_into_id is None
    assert [(code, member) for code, member, _ in vouchers] == [(voucher.code, zed_id)], "no second voucher"
    assert vouchers[0].claimed_at is not None


def test_unlink_sorts_vouchers_back_when_the_merge_showed_the_claimed_one(store: Store, clock, make_event) -> None:
    """Both earned the badge; Zed had claimed his voucher, Ada had not. Merged, the claimed one is
    shown; unlinked, each has their own voucher again."""
    from smallwins.core.store import Voucher
    from tests.rules_helpers import engine_of

    engine = engine_of(
        store,
        clock,
        {"merch": {"rule": "count", "events": ["message.posted", "comment.posted"], "voucher_claim_hours": 72}},
    )
    engine.ingest(make_event(subject="ada", source="discord"))
    engine.ingest(make_event("comment.posted", subject="UCzed", source="youtube"))
    with store.sessions() as session:
        issued = {v.member_id: v.code for v in session.scalars(select(Voucher))}
        ada_id = find_member(session, "discord:ada").id
        zed_id = find_member(session, "youtube:UCzed").id
    engine.claim_voucher(issued[zed_id])
    engine.redeem_link_code(engine.issue_link_code(AccountRef("discord", "ada")), AccountRef("youtube", "UCzed"))
    with store.sessions() as session:
        shown = member_snapshot(session, engine.catalogue, ada_id).vouchers
    assert [v["code"].replace("-", "") for v in shown] == [issued[zed_id]]

    engine.unlink(AccountRef("youtube", "UCzed"))
    with store.sessions() as session:
        holders = {v.code: v.member_id for v in session.scalars(select(Voucher))}
    assert holders == {issued[ada_id]: ada_id, issued[zed_id]: zed_id}


def _reactions_from_two_accounts(make_event) -> tuple[list, list]:
    """Pia posts three times; Quinn reacts to each post from Discord and from YouTube."""
    posts = [make_event(subject="pia", at=T0 + timedelta(hours=n)) for n in range(3)]
    reactions = [
        make_event(type="reaction.added", subject=who, source=source, at=post.time + timedelta(minutes=5),
                   target=post.key)
        for post in posts
        for source, who in (("discord", "quinn"), ("youtube", "UCquinn"))
    ]
    return posts, reactions


@pytest.fixture
def demo_engine(store: Store, host: PluginHost, clock) -> Engine:
    """An engine with the demo catalogue, whose Helping Hand wants two distinct reactors per post."""
    return Engine(store, load_catalogue(REPO / "achievements.toml", host.rule_types()), clock=clock)


def _helping_hand(store: Store, engine: Engine) -> tuple[int, bool]:
    _, _, progress, held = standing(store, engine, "discord:pia")
    return progress["helping-hand"], "helping-hand" in held


@pytest.mark.parametrize("link", ["before", "in the same batch", "after", "by the command after"])
def test_a_link_joins_the_approvals_its_accounts_gave(
    demo_engine: Engine, store: Store, make_event, link: str
) -> None:
    """Two reactions from one person's two accounts are one person's, whenever the link arrives:
    Helping Hand (two distinct reactors per post, three posts) is never Pia's."""
    posts, reactions = _reactions_from_two_accounts(make_event)
    code = demo_engine.issue_link_code(AccountRef("discord", "quinn"))
    presented = make_event(type="link.code_presented", subject="UCquinn", source="youtube", code=code,
                           at=T0 + timedelta(minutes=20))  # within the code's half hour
    if link == "before":
        demo_engine.ingest(presented)
    list(demo_engine.ingest_many([*posts, *reactions, *([presented] if link == "in the same batch" else [])]))
    assert link in {"before", "in the same batch"} or _helping_hand(store, demo_engine) == (3, True)
    if link == "after":
        demo_engine.ingest(presented)
    elif link == "by the command after":
        demo_engine.redeem_link_code(code, AccountRef("youtube", "UCquinn"))
    assert _helping_hand(store, demo_engine) == (0, False)


def test_an_unlink_parts_the_approvals_its_account_gave(demo_engine: Engine, store: Store, make_event) -> None:
    posts, reactions = _reactions_from_two_accounts(make_event)
    code = demo_engine.issue_link_code(AccountRef("discord", "quinn"))
    demo_engine.redeem_link_code(code, AccountRef("youtube", "UCquinn"))
    list(demo_engine.ingest_many([*posts, *reactions]))
    assert _helping_hand(store, demo_engine) == (0, False)
    demo_engine.unlink(AccountRef("youtube", "UCquinn"))
    assert _helping_hand(store, demo_engine) == (3, True)
