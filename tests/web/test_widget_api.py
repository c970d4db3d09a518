"""The widget API over real HTTP: the documented v1 document, caching, CORS, private details."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from harness import ADMIN_TOKEN, BROWSER_UA, Served

import smallwins.adapters.web as web_package

SCHEMA = json.loads((Path(web_package.__file__).parent / "static" / "widget.v1.schema.json").read_text())


def check_against_schema(document: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The subset of JSON Schema the widget schema uses: type, required, properties, items, const, enum."""
    kinds = schema.get("type")
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        python = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
        ok = any(
            (document is None if kind == "null" else isinstance(document, python[kind]))
            and not (kind in ("integer", "number") and isinstance(document, bool))
            for kind in allowed
        )
        assert ok, f"{where}: {document!r} is not {allowed}"
    if "const" in schema:
        assert document == schema["const"], where
    if "enum" in schema:
        assert document in schema["enum"], f"{where}: {document!r} not in {schema['enum']}"
    if isinstance(document, dict):
        for key in schema.get("required", []):
            assert key in document, f"{where}: missing '{key}'"
        for key, sub in schema.get("properties", {}).items():
            if key in document:
                check_against_schema(document[key], sub, f"{where}.{key}")
    if isinstance(document, list) and "items" in schema:
        for index, item in enumerate(document):
            check_against_schema(item, schema["items"], f"{where}[{index}]")


def api(served: Served) -> httpx.Client:
    return httpx.Client(base_url=served.base, headers={"User-Agent": BROWSER_UA}, timeout=10)


def test_the_card_follows_the_documented_schema(served: Served) -> None:
    member = served.member("lou", posts=3)
    with api(served) as http:
        response = http.get(f"/api/members/{member}/widget.json")
        schema = http.get("/api/schema/widget.v1.json")
    assert response.status_code == 200
    document = response.json()
    check_against_schema(document, SCHEMA)
    assert schema.json() == SCHEMA
    assert document["member"]["name"] == "Lou" and document["member"]["rank"] is not None
    assert [b["name"] for b in document["badges"]] == ["First Words", "Daily Habit"]
    assert document["badges"][0]["alt"] == "First Words badge (bronze)"
    assert document["badges"][0]["rarity_text"].startswith("held by ")
    regular = next(p for p in document["progress"] if p["id"] == "regular")
    assert regular["text"] == "3 of 5 contributions"
    assert document["streak"]["current"] == 3 and document["streak"]["left"] == 2
    assert document["vouchers"] is None and document["private"] is None  # no token: public card only


def test_etag_and_cache_control(served: Served) -> None:
    member = served.member("max")
    with api(served) as http:
        first = http.get(f"/api/members/{member}/widget.json")
        assert first.headers["cache-control"] == "public, max-age=30"
        tag = first.headers["etag"]
        unchanged = http.get(f"/api/members/{member}/widget.json", headers={"If-None-Match": tag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        served.member("max", posts=2)  # one more post: the card changes, so does its tag
        changed = http.get(f"/api/members/{member}/widget.json", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag


def test_cors_only_for_configured_origins(served: Served) -> None:
    member = served.member("ned")
    url = f"/api/members/{member}/widget.json"
    with api(served) as http:
        allowed = http.get(url, headers={"Origin": "https://club.example"})
        other = http.get(url, headers={"Origin": "https://evil.example"})
        preflight = http.options(
            url,
            headers={
                "Origin": "https://club.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        refused = http.options(url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert allowed.headers["access-control-allow-origin"] == "https://club.example"
    assert "etag" in allowed.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200 and "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400


def test_private_details_only_with_the_members_own_token(served: Served) -> None:
    member = served.member("ola")
    someone = served.member("pat")
    token = served.token(member)
    with httpx.Client(base_url=served.base, timeout=10) as http:
        survey = http.post(
            "/f/survey", data={"rating": "5", "m": token}, headers={"Origin": served.base, "User-Agent": BROWSER_UA}
        )
        assert survey.status_code == 201
        public = http.get(f"/api/members/{member}/widget.json").json()
        mine = http.get(f"/api/members/{member}/widget.json", headers={"Authorization": f"Bearer {token}"})
        theirs = http.get(f"/api/members/{someone}/widget.json", params={"m": token})
        tampered = http.get(f"/api/members/{member}/widget.json", params={"m": token[:-2] + "xy"})
    assert public["vouchers"] is None and public["private"] is None
    assert mine.status_code == 200 and mine.headers["cache-control"] == "private, no-cache"
    vouchers = mine.json()["vouchers"]
    assert [v["name"] for v in vouchers] == ["Feedback Giver"] and vouchers[0]["status"] == "open"
    assert mine.json()["private"]["accounts"]["discord"] == ["ola"]
    assert theirs.status_code == 403 and "not member" in theirs.json()["error"]
    assert tampered.status_code == 403 and "not valid" in tampered.json()["error"]


def test_private_members_are_hidden_from_boards_and_public_cards(served: Served) -> None:
    shy = served.member("quinn", posts=4)
    loud = served.member("rae", posts=2)
    served.app.engine.set_profile(shy, private=True)
    with api(served) as http:
        board = http.get("/api/leaderboards/all-time", params={"limit": 100}).json()
        weekly = http.get("/api/leaderboards/weekly", params={"limit": 100}).json()
        card = http.get(f"/api/members/{shy}/widget.json")
        own = http.get(f"/api/members/{shy}/widget.json", params={"m": served.token(shy)})
        page = http.get("/leaderboards/weekly")
        past_page = http.get("/leaderboards/weekly", params={"period": "2026-W09"})
        no_week_page = http.get("/leaderboards/weekly", params={"period": "2026-W99"})
        missing = http.get("/api/leaderboards/yearly")
        past = http.get("/api/leaderboards/weekly", params={"period": "2026-W09"})
        malformed = http.get("/api/leaderboards/weekly", params={"period": "lastweek"})
        nobody = http.get("/api/members/999999/widget.json")
        board_api = "/api/leaderboards/all-time"
        limits = [http.get(board_api, params={"limit": n}).status_code for n in ("0", "-1", "101", "x")]
    ids = {row["member_id"] for row in board["rows"]}
    assert loud in ids and shy not in ids
    assert weekly["period"] == "2026-W10" and shy not in {r["member_id"] for r in weekly["rows"]}
    assert card.status_code == 403 and "private" in card.json()["error"]
    assert own.status_code == 200 and own.json()["member"]["rank"] is None
    assert page.status_code == 200 and "Rae" in page.text and "Quinn" not in page.text
    assert past_page.status_code == 200 and "(2026-W09)" in past_page.text, "the page shows the week asked for"
    assert no_week_page.status_code == 400 and "2026-W99" in no_week_page.text
    assert missing.status_code == 404 and "weekly" in missing.json()["error"]
    assert past.status_code == 200 and past.json()["period"] == "2026-W09"
    assert malformed.status_code == 400 and "'lastweek' is not a period of 'weekly'" in malformed.json()["error"]
    assert nobody.status_code == 404
    assert limits == [400] * 4


def test_badge_icons_and_the_script_are_served(served: Served) -> None:
    with api(served) as http:
        icon = http.get("/api/badges/toolkit.svg", params={"tier": "bronze"})
        script = http.get("/widget.js")
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert "Toolkit in Hand badge (bronze)" in icon.text and ">TI<" in icon.text
    assert script.status_code == 200 and "customElements.define" in script.text


def test_the_operator_page_needs_the_token(served: Served) -> None:
    member = served.member("sam")
    code = served.link(campaign="operator-check")
    with api(served) as http:
        http.get(f"/r/{code}", params={"m": served.token(member)})
        refused = http.get("/admin")
        wrong = http.get("/admin", auth=("op", "guess"))
        page = http.get("/admin", auth=("op", ADMIN_TOKEN))
    assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
    assert wrong.status_code == 401
    assert page.status_code == 200
    assert "operator-check" in page.text and "toolkit" in page.text


def test_a_member_id_that_is_no_number_is_not_found_never_an_error(served: Served) -> None:
    """"²" and full-width digits pass ``str.isdigit`` but are no ids (``int("²")`` raised: a 500)."""
    with api(served) as http:
        answers = {raw: http.get(f"/api/members/{raw}/widget.json") for raw in ("²", "１７", "abc", "-1", "9" * 30)}
    for raw, response in answers.items():
        assert response.status_code == 404 and "member ids are numbers" in response.json()["error"], raw
