"""Pure reply recognition: what a message means, without a server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from messages import ISSUE_ID, T0, message, raw
from typer.testing import CliRunner

from smallwins.adapters.email.authresults import parse_auth_results
from smallwins.adapters.email.mime import parse_message
from smallwins.adapters.email.normalize import ReplyRules, normalize, normalize_message
from smallwins.adapters.email.settings import MailboxSettings
from smallwins.cli import app as cli
from smallwins.core.events import InvalidEvent

RULES = ReplyRules.build(reply_address="news@club.example", issue_domains=["club.example"])
SECURE = ReplyRules.build(
    reply_address="news@club.example",
    issue_domains=["club.example"],
    require_authentication=True,
    authserv_ids=["mx.club.example"],
)
ARRIVED = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def outcome(data: bytes, rules: ReplyRules = RULES, received_at: datetime | None = ARRIVED):
    return normalize_message(parse_message(data), rules=rules, received_at=received_at)


def test_the_sender_address_case_folded_is_the_identity() -> None:
    first = outcome(message("Ann <ANN@Example.ORG>"))
    second = outcome(message('"Ann (phone)" <ann@example.org>'))
    idn = outcome(message("Jörg <Jörg@Bücher.example>"))  # Python writes it as encoded words
    smtputf8 = outcome(
        message(in_reply_to=None)
        .replace(b"Ada Lovelace <ada@example.com>", "Jörg <JÖRG@bücher.example>".encode())
        .replace(b"To: news@", b"To: news+9@")
    )
    assert first.events[0].subject == second.events[0].subject == "ann@example.org"
    assert idn.events[0].subject == smtputf8.events[0].subject == "jörg@xn--bcher-kva.example"
    assert first.events[0].time == ARRIVED  # the server's arrival time, not the sender's Date


def test_reply_recognition_by_headers_and_by_reply_address() -> None:
    by_header = outcome(message(in_reply_to="<newsletter.2026-10.ff00@club.example>"))
    by_chain = outcome(message(in_reply_to=None, references=f"{ISSUE_ID} <a@example.com> <b@example.com>"))
    by_token = outcome(message(to="Newsletter <NEWS+2026-11@club.example>", in_reply_to=None))
    by_delivered_to = outcome(
        message(to="me@example.com", in_reply_to=None, headers={"Delivered-To": "news+w45@club.example"})
    )
    foreign = outcome(message(in_reply_to="<abc@other.example>"))
    bare = outcome(message(to="news@club.example", in_reply_to=None))
    empty_token = outcome(message(to="news+@club.example", in_reply_to=None))
    assert by_header.events[0].data["issue"] == "2026-10"
    assert by_chain.events[0].data == {
        "display_name": "Ada Lovelace",
        "via": "References",
        "subject": "Re: Community wins",
        "issue": "2026-11",
    }
    assert by_token.events[0].data["issue"] == "2026-11" and by_token.events[0].data["via"] == "reply address"
    assert by_delivered_to.events[0].data["issue"] == "w45"
    for nothing in (foreign, bare, empty_token):
        assert nothing.events == [] and nothing.skipped == "not a reply to a newsletter issue"


def test_issues_sent_by_another_tool_are_named_by_message_id() -> None:
    rules = ReplyRules.build(issue_message_ids={"42": "<0100018f.abc@email.buttondown.example>"})
    found = outcome(message(in_reply_to="<0100018f.abc@email.buttondown.example>"), rules)
    assert found.events[0].data["issue"] == "42"
    assert outcome(message(in_reply_to="<0100018f.zzz@email.buttondown.example>"), rules).events == []


@pytest.mark.parametrize(
    ("headers", "sender", "subject", "why"),
    [
        ({"Auto-Submitted": "auto-replied; owner-email=x@example.com"}, None, None, "Auto-Submitted"),
        ({"Auto-Submitted": "auto-generated"}, None, None, "Auto-Submitted"),
        ({"Precedence": "junk"}, None, None, "Precedence"),
        ({"Precedence": "list"}, None, None, "Precedence"),
        ({"X-Autoreply": "yes"}, None, None, "X-Autoreply"),
        ({"X-Autorespond": "Vacation"}, None, None, "X-Autorespond"),
        ({"Return-Path": "<>"}, None, None, "empty Return-Path"),
        ({}, "Mail Delivery System <MAILER-DAEMON@mx.example.com>", None, "automated sender"),
        ({}, "postmaster@example.com", None, "automated sender"),
        ({}, "No Reply <no-reply@shop.example>", None, "automated sender"),
        ({"List-Id": "Talk <talk.lists.example.com>"}, None, None, "mailing-list"),
        ({}, None, "Out of Office: back Monday", "auto-reply subject"),
        ({}, None, "Automatische Antwort: Urlaub", "auto-reply subject"),
    ],
)
def test_machine_mail_never_counts(headers: dict[str, str], sender: str | None, subject: str | None, why: str) -> None:
    found = outcome(message(sender or "Ann <ann@example.org>", subject=subject or "Re: wins", headers=headers))
    assert found.events == []
    assert found.skipped is not None and found.skipped.startswith("automated:") and why in found.skipped


def test_a_person_saying_auto_submitted_no_still_counts() -> None:
    assert len(outcome(message(headers={"Auto-Submitted": "no"})).events) == 1


def test_a_delivery_report_is_a_bounce() -> None:
    report = raw(
        f"""
From: Ann <ann@example.org>
To: news@club.example
Subject: Re: wins
Message-ID: <dsn-1@example.org>
In-Reply-To: {ISSUE_ID}
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.
--b--
"""
    )
    assert outcome(report).skipped == "automated: delivery report (multipart/report)"


def test_link_codes_in_the_readers_own_words_only() -> None:
    text = (
        "Linking my accounts: code mnpq-7x2z.\n\nOn Mon, Nov 2, 2026 News <news@club.example> wrote:\n> code HJKM-NPQR"
    )
    found = outcome(message(body=text))
    assert [(e.type, e.data.get("code")) for e in found.events] == [
        ("link.code_presented", "MNPQ-7X2Z"),
        ("email.replied", None),
    ]
    quoted_only = outcome(message(body="Thanks!\n> Your voucher: HJKM-NPQR"))
    assert [e.type for e in quoted_only.events] == ["email.replied"]
    # a code sent to the reply address without replying still links the address
    code_only = outcome(message(in_reply_to=None, subject="link ABCD-EFGH", body="here it is"))
    assert [(e.type, e.data["code"]) for e in code_only.events] == [("link.code_presented", "ABCD-EFGH")]
    assert outcome(message(body="WELL-DONE and 2026-1234"), RULES).events[0].type == "email.replied"


def test_authentication_required_trusts_only_our_servers_verdict() -> None:
    def signed(results: str, sender: str = "Ann <ann@example.org>") -> bytes:
        return message(sender, headers={"Authentication-Results": results})

    good = signed("mx.club.example; spf=pass smtp.mailfrom=example.org; dkim=pass (2048-bit key) header.d=example.org")
    subdomain = signed("mx.club.example; dkim=pass header.i=@mail.example.org")
    dmarc = signed("mx.club.example 1; dkim=fail; dmarc=pass (p=reject) header.from=example.org")
    forwarded = signed("MX.CLUB.EXAMPLE; dkim=fail header.d=example.org; arc=pass (i=2)")
    forged_by_sender = signed("mx.attacker.example; dkim=pass header.d=example.org")
    unaligned = signed("mx.club.example; dkim=pass header.d=bulkmailer.example")
    failed = signed("mx.club.example; dkim=fail header.d=example.org; dmarc=fail")
    for ok in (good, subdomain, dmarc, forwarded):
        assert len(outcome(ok, SECURE).events) == 1
    assert "no Authentication-Results from mx.club.example" in str(outcome(forged_by_sender, SECURE).skipped)
    assert "no aligned dkim" in str(outcome(unaligned, SECURE).skipped)
    assert "dkim=fail, dmarc=fail" in str(outcome(failed, SECURE).skipped)
    assert outcome(message(), SECURE).skipped == "not authenticated: no Authentication-Results from mx.club.example"
    parsed = parse_auth_results('mx.example (comment (nested)); dkim=pass header.d="Example.ORG" header.s=s1; none')
    assert parsed is not None and parsed.results[0].properties == {"header.d": "example.org", "header.s": "s1"}


def test_messy_mime_encoded_headers_and_odd_charsets() -> None:
    koi8 = raw(
        """
From: =?koi8-r?b?88XSx8XK?= <sergei@example.ru>
To: news@club.example
Subject: =?windows-1251?q?=CF=F0=E8=E2=E5=F2?=
Message-ID: <koi8@example.ru>
In-Reply-To: <newsletter.2026-11.a1b2c3@club.example>
Content-Type: text/plain; charset=koi8-r
Content-Transfer-Encoding: 8bit

"""
    ) + "Спасибо! код QRST-UVWX".encode("koi8-r")
    eight_bit_header = (
        b"From: Ren\xc3\xa9e <renee@example.fr>\r\nTo: news@club.example\r\nSubject: Caf\xe9\r\n"
        b"Message-ID: <8bit@example.fr>\r\nIn-Reply-To: " + ISSUE_ID.encode() + b"\r\n\r\nMerci\r\n"
    )
    unknown_charset = raw(
        f"""
From: =?x-made-up?q?Zo=EB?= <zoe@example.com>
To: news@club.example
Message-ID: <odd@example.com>
In-Reply-To: {ISSUE_ID}
Content-Type: text/plain; charset="x-made-up"

Thanks ABCD-EFGH
"""
    )
    first = outcome(koi8)
    assert first.events[1].data["display_name"] == "Сергей" and first.events[1].data["subject"] == "Привет"
    assert first.events[0].data["code"] == "QRST-UVWX"
    second = outcome(eight_bit_header).events[0]
    assert (
        second.data["display_name"] == "Renée" and second.data["subject"] == "Café"
    )  # a Latin-1 byte: not UTF-8, read as Windows-1252
    third = outcome(unknown_charset)
    assert [e.type for e in third.events] == ["link.code_presented", "email.replied"]


def test_missing_headers_and_dates() -> None:
    no_id = message(message_id=None)
    bare = parse_message(no_id)
    del bare["Message-ID"]
    one = normalize_message(bare, rules=RULES, received_at=ARRIVED)
    again = normalize_message(parse_message(bare.as_bytes()), rules=RULES, received_at=ARRIVED)
    assert one.events[0].id.startswith("sha256:") and one.events[0].id == again.events[0].id  # stable on re-scan
    assert one.events[0].proof is None
    by_date = outcome(message(), received_at=None)
    assert by_date.events[0].time == T0  # no server time given: the Date header
    undated = parse_message(message())
    del undated["Date"]
    assert normalize_message(undated, rules=RULES).skipped == "no arrival time and no readable Date header"
    future = outcome(message(), received_at=datetime.now(UTC) + timedelta(days=3))
    assert future.events == [] and str(future.skipped).startswith("not a valid event")


def test_settings_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match="say how a reply is recognized"):
        MailboxSettings(host="imap.example.com", username="news")
    with pytest.raises(ValueError, match="require_authentication needs authserv_ids"):
        MailboxSettings(host="imap.example.com", username="news", reply_address="news@club.example",
                        require_authentication=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"not a plain address like news@club.example \(no \+tag\)"):
        MailboxSettings(host="imap.example.com", username="news", reply_address="news+x@club.example")
    assert MailboxSettings().host is None  # the newsletter alone may be in use
    assert MailboxSettings(host="h", username="u", issue_domains=["@Club.Example"]).issue_domains == ["club.example"]


def test_recorded_payloads_through_smallwins_ingest(tmp_path: Path) -> None:
    rules = {"reply_address": "news@club.example", "issue_domains": ["club.example"]}
    payloads = [
        {"raw": message("Ann <ann@example.org>").decode(), "received_at": ARRIVED.isoformat(), "rules": rules},
        {"raw": message("Bob <bob@example.org>", headers={"Precedence": "bulk"}).decode(), "rules": rules},
        {"raw": message("Cat <cat@example.org>").decode(), "rules": {"bogus": 1}},
    ]
    assert [e.subject for e in normalize(payloads[0])] == ["ann@example.org"]
    assert normalize(payloads[1]) == []
    with pytest.raises(InvalidEvent, match="'rules'"):
        normalize(payloads[2])
    with pytest.raises(InvalidEvent, match="'raw'"):
        normalize({"message": "x"})
    recorded = tmp_path / "mail.jsonl"
    recorded.write_text("\n".join(json.dumps(p) for p in payloads) + "\n")
    result = CliRunner().invoke(
        cli, ["ingest", "--source", "email", str(recorded), "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    )
    assert result.exit_code == 1, result.output  # the third line is reported
    assert "1 stored" in result.output
