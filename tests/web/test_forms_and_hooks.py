"""Forms and signed webhooks over real HTTP: valid input becomes events, bad input a clear 4xx."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from harness import BROWSER_UA, HOOK_SECRET, Served

from smallwins.adapters.web.tokens import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_body

SITE = "https://club.example"


def post_form(
    served: Served, form: str, data: dict[str, str] | str, *, origin: str | None = SITE, **kw: object
) -> httpx.Response:
    headers = {"User-Agent": BROWSER_UA, "Accept": "application/json"}
    if origin:
        headers["Origin"] = origin
    headers.update(kw.pop("headers", {}))  # type: ignore[arg-type]
    with httpx.Client(base_url=served.base, timeout=10) as http:
        if isinstance(data, str):
            return http.post(f"/f/{form}", content=data, headers=headers)
        return http.post(f"/f/{form}", data=data, headers=headers)


def test_a_member_submission_is_recorded_once(served: Served) -> None:
    member = served.member("erin")
    token = served.token(member)
    first = post_form(served, "survey", {"rating": "5", "comment": "great workshop", "m": token})
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "stored" and "voice" in first.json()["awarded"]
    again = post_form(served, "survey", {"rating": "5", "comment": "great workshop", "m": token})
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    with served.app.store.sessions() as session:
        card = served.app.snapshot(session, member)
    assert [v["achievement_id"] for v in card.vouchers] == ["voice"]


def test_a_poll_counts_one_vote_per_member(served: Served) -> None:
    token = served.token(served.member("fin"))
    assert post_form(served, "poll", {"choice": "yes", "m": token}).json()["status"] == "stored"
    assert post_form(served, "poll", {"choice": "no", "m": token}).json()["status"] == "duplicate"


def test_json_submissions_and_same_site_referer_are_accepted(served: Served) -> None:
    token = served.token(served.member("gil"))
    response = post_form(
        served,
        "survey",
        json.dumps({"rating": "3", "m": token}),
        origin=None,
        headers={"Content-Type": "application/json", "Referer": f"{served.base}/f/survey"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"comment": "no rating"}, 422, "field 'rating' is required"),
        ({"rating": "9"}, 422, "field 'rating' must be one of 1, 2, 3, 4, 5"),
        ({"rating": "4", "email": "x@example.org"}, 422, "unknown field 'email'"),
        ({"rating": "4", "comment": "x" * 201}, 422, "field 'comment' is 201 characters; at most 200"),
        ({"rating": "4", "comment": "y" * 3000}, 413, "at most 2048"),
    ],
)
def test_bad_submissions_get_a_clear_4xx(served: Served, data: dict[str, str], status: int, message: str) -> None:
    member = served.member("hal")
    response = post_form(served, "survey", {**data, "m": served.token(member)})
    assert response.status_code == status
    assert message in response.json()["error"]
    assert "voice" not in served.awards(member)


def test_cross_site_and_anonymous_submissions_are_refused(served: Served) -> None:
    token = served.token(served.member("ivy"))
    evil = post_form(served, "survey", {"rating": "5", "m": token}, origin="https://evil.example")
    assert evil.status_code == 403 and "https://evil.example" in evil.json()["error"]
    no_origin = post_form(served, "survey", {"rating": "5", "m": token}, origin=None)
    assert no_origin.status_code == 403 and "(none sent)" in no_origin.json()["error"]
    nobody = post_form(served, "survey", {"rating": "5"})
    assert nobody.status_code == 401 and "personal link" in nobody.json()["error"]
    forged = post_form(served, "survey", {"rating": "5", "m": token[:-3] + "abc"})
    assert forged.status_code == 403 and "not valid" in forged.json()["error"]
    text = post_form(served, "survey", "rating=5", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    two = post_form(served, "survey", json.dumps({"rating": "5", "m": [token, token]}),
                    headers={"Content-Type": "application/json"})
    assert two.status_code == 422 and "field 'm' was given 2 times" in two.json()["error"]
    unknown = post_form(served, "nope", {"rating": "5", "m": token})
    assert unknown.status_code == 404 and "no form 'nope'" in unknown.json()["error"]


def test_a_browser_submission_gets_a_page(served: Served) -> None:
    token = served.token(served.member("jo"))
    with httpx.Client(base_url=served.base, timeout=10) as http:
        page = http.get("/f/survey", params={"m": token})
        assert page.status_code == 200 and 'name="rating"' in page.text and token in page.text
        done = http.post(
            "/f/survey",
            data={"rating": "4", "m": token},
            headers={"Origin": served.base, "Accept": "text/html", "User-Agent": BROWSER_UA},
        )
    assert done.status_code == 200 and "Thank you" in done.text


# --- webhooks ----------------------------------------------------------------------------------


def order(order_id: str, customer: str, **extra: object) -> dict[str, object]:
    return {"id": order_id, "type": "order.paid", "subject": customer, "time": "2026-03-02T11:00:00Z", **extra}


def post_hook(
    served: Served, body: bytes, *, secret: str = HOOK_SECRET, timestamp: int | None = None, source: str = "shop"
) -> httpx.Response:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(stamp),
        SIGNATURE_HEADER: sign_body(secret, stamp, body),
    }
    with httpx.Client(base_url=served.base, timeout=10) as http:
        return http.post(f"/hooks/{source}", content=body, headers=headers)


def test_a_signed_webhook_is_answered_event_by_event(served: Served) -> None:
    body = json.dumps(
        {
            "events": [
                order("o-1", "cust-1", data={"display_name": "Kim"}),
                order("o-2", "cust-2", time="not a time"),
                order("o-3", "cust-3", source="other"),
                order("o-4", "cust-4", type="account.deleted"),
                order("o-5", "cust-5"),
            ]
        }
    ).encode()
    response = post_hook(served, body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["stored", "rejected", "rejected", "rejected", "stored"]
    assert results[0]["awarded"] == ["customer"]
    assert "warning" not in results[0] and "warning" not in results[4]  # the operator declared this source
    assert "'time'" in results[1]["error"]
    assert "source 'other' is not this hook's" in results[2]["error"]
    assert "type 'account.deleted' is not allowed" in results[3]["error"]
    assert response.json()["stored"] == 2 and response.json()["rejected"] == 3

    replay = post_hook(served, body)  # the same delivery again, inside the window: nothing counts twice
    assert [r["status"] for r in replay.json()["results"]] == [
        "duplicate",
        "rejected",
        "rejected",
        "rejected",
        "duplicate",
    ]


def test_webhooks_with_bad_signatures_or_old_timestamps_are_refused(served: Served) -> None:
    body = json.dumps([order("o-10", "cust-10")]).encode()
    wrong = post_hook(served, body, secret="guessed")
    assert wrong.status_code == 401 and "signature does not match" in wrong.json()["error"]
    stamp = int(time.time())
    signature = sign_body(HOOK_SECRET, stamp, body)
    with httpx.Client(base_url=served.base, timeout=10) as http:
        altered = http.post(
            "/hooks/shop",
            content=body.replace(b"cust-10", b"cust-11"),
            headers={TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: signature},
        )
        unsigned = http.post("/hooks/shop", content=body)
    assert altered.status_code == 401 and "altered" in altered.json()["error"]
    assert unsigned.status_code == 401 and TIMESTAMP_HEADER in unsigned.json()["error"]
    old = post_hook(served, body, timestamp=int(time.time()) - 3600)
    assert old.status_code == 401 and "only 300 s are accepted" in old.json()["error"]
    endless = post_hook(served, body, timestamp=10**400)  # signed, but no time a float can hold
    assert endless.status_code == 401 and "must be unix seconds" in endless.json()["error"]
    unknown = post_hook(served, body, source="lms")
    assert unknown.status_code == 404 and "no webhook source 'lms'" in unknown.json()["error"]
    with served.app.store.sessions() as session:
        from smallwins.core.identity import AccountRef, find_identity

        assert find_identity(session, AccountRef("shop", "cust-10")) is None
        assert find_identity(session, AccountRef("shop", "cust-11")) is None


def test_webhook_bodies_too_large_or_not_json_are_refused(served: Served) -> None:
    big = json.dumps([order(f"o-big-{i}", "cust-big") for i in range(200)]).encode()
    assert len(big) > 8192
    too_large = post_hook(served, big)
    assert too_large.status_code == 413 and "at most 8192" in too_large.json()["error"]
    broken = post_hook(served, b'{"events": [')
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
    nested = post_hook(served, b"[" * 4000 + b"]" * 4000)
    assert nested.status_code == 400 and "nested too deeply" in nested.json()["error"], "a 400, never a 500"
    empty = post_hook(served, b'{"events": []}')
    assert empty.status_code == 400 and "no events" in empty.json()["error"]
