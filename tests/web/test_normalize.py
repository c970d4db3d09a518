"""The web adapter's pure parts: what a request means, decided without a server."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from smallwins.adapters.web.normalize import (
    Click,
    FormRejected,
    automated_reason,
    click_event,
    form_event,
    hook_items,
    period_key,
)
from smallwins.adapters.web.settings import FormSettings, WebSettings
from smallwins.adapters.web.tokens import BadSignatureHeader, sign_body, verify_body

BERLIN = ZoneInfo("Europe/Berlin")


def test_credit_periods_follow_the_community_calendar() -> None:
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # already Monday 00:30 in Berlin
    assert period_key("day", late, BERLIN) == "2026-03-02"
    assert period_key("day", late, ZoneInfo("UTC")) == "2026-03-01"
    assert period_key("week", late, BERLIN) == "2026-W10"
    assert period_key("month", late, BERLIN) == "2026-03"
    assert period_key("ever", late, BERLIN) == "ever"


def test_click_event_ids_name_member_link_and_period() -> None:
    click = Click(code="abc", utm={"utm_source": "nl"}, referrer="https://mail.example/x?y", user_agent="UA")
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    kw = {"event_type": "link.clicked", "campaign": "c", "now": now, "zone": BERLIN, "proof": "p"}
    event = click_event(click, account="m7", credit_period="week", **kw)  # type: ignore[arg-type]
    assert event.id == "link:abc:m7:2026-W10" and event.source == "web" and event.subject == "m7"
    assert event.data == {
        "link": "abc",
        "campaign": "c",
        "period": "2026-W10",
        "utm_source": "nl",
        "referrer": "mail.example",
    }
    other = click_event(click, account="m8", credit_period="week", **kw)  # type: ignore[arg-type]
    assert other.id != event.id


def test_real_browsers_are_people_and_everything_else_is_not() -> None:
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
    safari = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile Safari/604.1"
    )
    assert automated_reason("GET", firefox, {}) is None
    assert automated_reason("GET", safari, {}) is None
    assert automated_reason("HEAD", firefox, {}) == "head"
    assert automated_reason("GET", firefox, {"purpose": "prefetch"}) == "prefetch"
    for agent in (
        "Discordbot/2.0",
        "curl/8.5.0",
        "python-requests/2.32",
        "Go-http-client/1.1",
        "TelegramBot (like TwitterBot)",
        None,
    ):
        assert automated_reason("GET", agent, {}) == "bot", agent


def test_a_form_is_checked_field_by_field() -> None:
    form = FormSettings(fields=["rating", "comment"], required=["rating"], choices={"rating": ["1", "2"]}, max_length=5)
    now = datetime(2026, 3, 2, tzinfo=UTC)
    event = form_event("survey", form, {"rating": ["2"], "comment": ["ok"]}, account="m1", now=now)
    assert event.type == "form.submitted" and event.data == {
        "form": "survey",
        "answers": {"rating": "2", "comment": "ok"},
    }
    same = form_event("survey", form, {"comment": ["ok"], "rating": ["2"]}, account="m1", now=now)
    assert same.id == event.id  # the same answers are the same submission
    with pytest.raises(FormRejected) as problems:
        form_event("survey", form, {"rating": ["1", "2"], "comment": ["toolong"], "x": ["1"]}, account="m1", now=now)
    message = str(problems.value)
    assert "unknown field 'x'" in message and "given 2 times" in message and "at most 5" in message


def test_form_settings_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="'email' is not one of this form's fields"):
        FormSettings(fields=["rating"], required=["email"])
    with pytest.raises(ValueError, match="redirect must be an http"):
        FormSettings(fields=["a"], redirect="javascript:alert(1)")
    with pytest.raises(ValueError, match="not an origin"):
        WebSettings(cors_origins=["https://club.example/path"])


def test_hook_items_keep_good_entries_and_explain_bad_ones() -> None:
    body = {
        "events": [
            {"id": "1", "type": "order.paid", "subject": "c1", "time": "2026-03-02T10:00:00Z"},
            "not an object",
            {"id": "3", "type": "order.paid", "subject": "c3", "time": "2026-03-02T10:00:00Z", "source": "evil"},
        ]
    }
    items = hook_items("shop", body, allowed_types=[], limit=10)
    assert items[0].event is not None and items[0].event.source == "shop"
    assert items[1].error == "expected a JSON object, got a string"
    assert items[2].error is not None and "source 'evil'" in items[2].error


def test_signatures_bind_body_and_time() -> None:
    body = b'{"events": []}'
    signature = sign_body("s3cret", 1000, body)
    verify_body("s3cret", timestamp="1000", signature=signature, body=body, window=300, now=1299)
    with pytest.raises(BadSignatureHeader, match="301 s old"):
        verify_body("s3cret", timestamp="1000", signature=signature, body=body, window=300, now=1301)
    with pytest.raises(BadSignatureHeader, match="does not match"):
        verify_body("s3cret", timestamp="1001", signature=signature, body=body, window=300, now=1001)
    with pytest.raises(BadSignatureHeader, match="unix seconds"):
        verify_body("s3cret", timestamp="yesterday", signature=signature, body=body, window=300)
