"""Tracked links over real HTTP: credit once per member per period, no open redirect, signed
members only, bots and HEAD never count."""

from __future__ import annotations

import httpx
import pytest
from harness import BROWSER_UA, Served

from smallwins.adapters.web.links import LinkError, campaign_counts, create_link
from smallwins.adapters.web.tokens import COOKIE_NAME, MemberSigner


def client(served: Served, **kw: object) -> httpx.Client:
    headers = {"User-Agent": BROWSER_UA}
    return httpx.Client(base_url=served.base, headers=headers, follow_redirects=False, timeout=10, **kw)  # type: ignore[arg-type]


def test_a_member_click_is_credited_once_per_day_and_earns_the_badge(served: Served) -> None:
    member = served.member("ada")
    code = served.link()
    token = served.token(member)
    with client(served) as http:
        first = http.get(
            f"/r/{code}",
            params={"m": token, "utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "march"},
            headers={"Referer": "https://mail.example/inbox"},
        )
        assert first.status_code == 302
        assert first.headers["location"] == "https://club.example/kit.zip"
        assert first.headers["cache-control"] == "no-store"
        assert COOKIE_NAME in first.cookies
        assert "toolkit" in served.awards(member)

        again = http.get(f"/r/{code}")  # same day, known by the signed cookie only
        assert again.status_code == 302 and again.headers["location"] == "https://club.example/kit.zip"

        served.clock.advance(days=1)
        next_day = http.get(f"/r/{code}")
        assert next_day.status_code == 302

    clicks = served.clicks(code)
    assert [c.outcome for c in clicks] == ["credited", "repeat", "credited"]
    assert clicks[0].utm_source == "newsletter" and clicks[0].utm_medium == "email"
    assert clicks[0].utm_campaign == "march"
    assert clicks[0].referrer == "https://mail.example/inbox"
    assert {c.member_id for c in clicks} == {member}
    with served.app.store.sessions() as session:
        card = served.app.snapshot(session, member)
    downloads = next(p for p in card.progress if p["id"] == "collector")
    assert downloads["current"] == 2  # two days credited, the repeat not


def test_credit_period_ever_counts_one_click_for_good(served: Served) -> None:
    member = served.member("bo")
    code = served.link(credit_period="ever", event="link.clicked")
    token = served.token(member)
    with client(served) as http:
        for _ in range(2):
            http.get(f"/r/{code}", params={"m": token})
            served.clock.advance(days=40)
    assert [c.outcome for c in served.clicks(code)] == ["credited", "repeat"]


@pytest.mark.parametrize(
    "path",
    [
        "/r/{code}?url=https://evil.example/",
        "/r/{code}?next=//evil.example&redirect=https://evil.example",
        "/r/{code}/..%2F..%2Fevil.example",
        "/r/{code}%2F%2Fevil.example",
        "/r//evil.example",
        "/r/https:%2F%2Fevil.example",
    ],
)
def test_no_open_redirect(served: Served, path: str) -> None:
    code = served.link(url="https://club.example/safe")
    with client(served) as http:
        response = http.get(path.format(code=code))
    location = response.headers.get("location")
    assert location in (None, "https://club.example/safe"), location
    if location is None:
        assert response.status_code == 404


def test_unknown_code_is_404_without_a_redirect(served: Served) -> None:
    with client(served) as http:
        response = http.get("/r/nosuchcode")
    assert response.status_code == 404 and "location" not in response.headers
    assert "no link" in response.text.lower()


@pytest.mark.parametrize("url", ["javascript:alert(1)", "//evil.example", "/relative", "ftp://x.example/f", "data:x"])
def test_a_link_leads_only_to_an_absolute_http_url(served: Served, url: str) -> None:
    with pytest.raises(LinkError, match="absolute http"):
        create_link(served.app.store, url=url, campaign="c", event_type="link.clicked", credit_period="day")


def test_tampered_expired_or_foreign_tokens_credit_no_one(served: Served) -> None:
    member = served.member("cy")
    code = served.link(campaign="tampering")
    token = served.token(member)
    other_key = MemberSigner(b"another-server-key", token_max_age=3600, cookie_max_age=3600)
    expired = MemberSigner(served.web.signer.key, token_max_age=-1, cookie_max_age=-1)
    payload, stamp, signature = token.split(".")
    forged = [
        f"{payload}.{stamp}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",  # altered signature
        other_key.token(f"m{member}"),  # signed by someone else
        f"m{member}",  # an unsigned id
        "",
    ]
    with client(served) as http:
        for bad in forged:
            response = http.get(f"/r/{code}", params={"m": bad})
            assert response.status_code == 302 and response.headers["location"] == "https://club.example/kit.zip"
            assert COOKIE_NAME not in response.cookies
        http.cookies.set(COOKIE_NAME, other_key.cookie(f"m{member}"))
        http.get(f"/r/{code}")
        http.cookies.clear()
        http.cookies.set(COOKIE_NAME, token)  # a link token is not a cookie (different salt)
        http.get(f"/r/{code}")
    assert "toolkit" not in served.awards(member)
    outcomes = [c.outcome for c in served.clicks(code)]
    assert outcomes == ["bad_token", "bad_token", "bad_token", "anonymous", "bad_token", "bad_token"]
    with served.app.store.sessions() as session:
        (counted,) = [c for c in campaign_counts(session) if c.campaign == "tampering"]
    assert (counted.fetches, counted.bad_tokens, counted.anonymous, counted.credited) == (6, 5, 1, 0)
    with pytest.raises(ValueError, match="expired"):
        expired.read_token(expired.token(f"m{member}"))


@pytest.mark.parametrize(
    ("method", "agent", "extra"),
    [
        ("GET", "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", {}),
        ("GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", {}),
        ("GET", "Twitterbot/1.0", {}),
        ("GET", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", {}),
        ("GET", "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", {}),
        ("GET", "Mozilla/5.0 (Windows NT 10.0) Mimecast URL Protect", {}),
        ("GET", "", {}),
        ("GET", BROWSER_UA, {"Sec-Purpose": "prefetch"}),
        ("HEAD", BROWSER_UA, {}),
    ],
)
def test_crawlers_unfurlers_scanners_and_head_never_count(
    served: Served, method: str, agent: str, extra: dict[str, str]
) -> None:
    member = served.member("dee")
    code = served.link()
    with client(served) as http:
        response = http.request(
            method, f"/r/{code}", params={"m": served.token(member)}, headers={"User-Agent": agent, **extra}
        )
    assert response.status_code == 302 and response.headers["location"] == "https://club.example/kit.zip"
    assert COOKIE_NAME not in response.cookies
    assert "toolkit" not in served.awards(member)
    [click] = served.clicks(code)
    assert click.outcome in ("bot", "head", "prefetch") and click.member_id is None


def test_a_visitor_without_a_token_is_anonymous_and_counted_by_campaign(served: Served) -> None:
    code = served.link(campaign="posters")
    with client(served) as http:
        assert http.get(f"/r/{code}", params={"utm_source": "qr"}).status_code == 302
    [click] = served.clicks(code)
    assert click.outcome == "anonymous" and click.account is None and click.utm_source == "qr"
