"""Server-rendered HTML: the member page, leaderboards, a hosted form, the operator page.

Plain HTML with escaped values and no framework; the member card itself is the same
``<smallwins-card>`` element a creator embeds, so there is one card to keep right.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from smallwins.adapters.web.links import CampaignCount
from smallwins.adapters.web.settings import FormSettings

STYLE = """
:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
background:#f6f7f9}body{max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
a{color:#0b57d0}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible{
outline:3px solid #0b57d0;outline-offset:2px}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #d0d5dd}td.n,th.n{text-align:right}
nav a{margin-right:1rem}.muted{color:#475467}label{display:block;margin:.6rem 0 .2rem}
input,select,textarea{font:inherit;padding:.35rem;border:1px solid #667085;border-radius:4px;min-width:16rem}
button{font:inherit;padding:.4rem 1rem;border-radius:4px;border:0;background:#0b57d0;color:#fff;cursor:pointer}
"""


def page(title: str, body: str, *, head: str = "") -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style>{head}</head>"
        f'<body><main id="main">{body}</main></body></html>'
    )


def nav(boards: Sequence[tuple[str, str]]) -> str:
    links = "".join(f'<a href="/leaderboards/{escape(b)}">{escape(name)}</a>' for b, name in boards)
    return f'<nav aria-label="Leaderboards">{links}</nav>'


def member_page(*, name: str, member_id: int, token: str, boards: Sequence[tuple[str, str]]) -> str:
    """A member's own page: their card (with private details), reachable by their personal link."""
    body = (
        "<h1>Your progress</h1>"
        f'<smallwins-card member="{member_id}" token="{escape(token)}" api="">'
        f'<p class="muted">Your progress card needs JavaScript. '
        f'<a href="/api/members/{member_id}/widget.json?m={escape(token)}">See it as data</a>.</p>'
        f"</smallwins-card>{nav(boards)}"
        f'<script src="/widget.js" defer></script>'
    )
    return page(f"{name}: progress", body)


def leaderboard_page(document: dict[str, Any], boards: Sequence[tuple[str, str]]) -> str:
    rows = "".join(
        f'<tr><td class="n">{row["rank"]}</td><td>{escape(row["name"])}</td><td class="n">{row["points"]}</td></tr>'
        for row in document["rows"]
    )
    period = f' <span class="muted">({escape(document["period"])})</span>' if document["period"] else ""
    table = (
        f'<table><caption class="muted">Members who keep their profile private are not listed.</caption>'
        f'<thead><tr><th class="n" scope="col">Rank</th><th scope="col">Member</th>'
        f'<th class="n" scope="col">Points</th></tr></thead><tbody>{rows}</tbody></table>'
        if document["rows"]
        else "<p>No one has scored here yet.</p>"
    )
    body = f"<h1>{escape(document['name'])}{period}</h1>{nav(boards)}{table}"
    return page(f"Leaderboard: {document['name']}", body)


def form_page(name: str, form: FormSettings, *, token: str | None) -> str:
    """A hosted version of a configured form, posting to ``/f/{name}`` from the same origin."""
    parts = []
    for field in form.fields:
        label = escape(field.replace("_", " ").capitalize())
        required = " required" if field in form.required else ""
        if field in form.choices:
            options = "".join(f"<option>{escape(choice)}</option>" for choice in form.choices[field])
            control = f'<select id="f-{field}" name="{field}"{required}><option value=""></option>{options}</select>'
        else:
            control = f'<input id="f-{field}" name="{field}" maxlength="{form.max_length}"{required}>'
        parts.append(f'<label for="f-{field}">{label}</label>{control}')
    hidden = f'<input type="hidden" name="m" value="{escape(token)}">' if token else ""
    body = (
        f"<h1>{escape(name.replace('-', ' ').capitalize())}</h1>"
        f'<form method="post" action="/f/{escape(name)}">{hidden}{"".join(parts)}'
        f'<p><button type="submit">Send</button></p></form>'
    )
    return page(name, body)


def message_page(title: str, text: str) -> str:
    return page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def admin_page(
    *,
    awards: Sequence[dict[str, Any]],
    outbox: dict[str, Any],
    campaigns: Sequence[CampaignCount],
    links: Sequence[dict[str, Any]],
) -> str:
    """The operator's view: recent awards, presenter deliveries, link clicks by campaign."""
    award_rows = "".join(
        f"<tr><td>{escape(a['at'][:16])}</td><td>{escape(a['member'])}</td><td>{escape(a['achievement'])}</td>"
        f"<td>{escape(a['action'])}</td><td>{escape(a['actor'])}</td></tr>"
        for a in awards
    )
    presenter_rows = "".join(
        f'<tr><td>{escape(name)}</td><td class="n">{info["pending"]}</td><td>{escape(info.get("status", ""))}</td></tr>'
        for name, info in outbox["presenters"].items()
    )
    campaign_rows = "".join(
        f'<tr><td>{escape(c.campaign)}</td><td class="n">{c.links}</td><td class="n">{c.fetches}</td>'
        f'<td class="n">{c.credited}</td><td class="n">{c.repeats}</td><td class="n">{c.anonymous}</td>'
        f'<td class="n">{c.automated}</td><td class="n">{c.bad_tokens}</td></tr>'
        for c in campaigns
    )
    link_rows = "".join(
        f"<tr><td><code>{escape(link['code'])}</code></td><td>{escape(link['campaign'])}</td>"
        f"<td>{escape(link['event_type'])}</td><td>{escape(link['target_url'])}</td></tr>"
        for link in links
    )
    body = f"""<h1>smallwins operator</h1>
<h2>Recent awards and revocations</h2>
<table><thead><tr><th>When (UTC)</th><th>Member</th><th>Achievement</th><th>Action</th><th>By</th></tr></thead>
<tbody>{award_rows or '<tr><td colspan="5">none yet</td></tr>'}</tbody></table>
<h2>Presenter deliveries</h2><p>{outbox["total"]} changes in the outbox.</p>
<table><thead><tr><th>Presenter</th><th class="n">Pending</th><th>Status</th></tr></thead>
<tbody>{presenter_rows or '<tr><td colspan="3">no presenter enabled</td></tr>'}</tbody></table>
<h2>Tracked links by campaign</h2>
<table><thead><tr><th>Campaign</th><th class="n">Links</th><th class="n">Fetches</th><th class="n">Credited</th>
<th class="n">Repeats</th><th class="n">Anonymous</th><th class="n">Bots/HEAD</th><th class="n">Bad token</th></tr>
</thead>
<tbody>{campaign_rows or '<tr><td colspan="8">no links yet</td></tr>'}</tbody></table>
<h2>Links</h2><table><thead><tr><th>Code</th><th>Campaign</th><th>Event</th><th>Target</th></tr></thead>
<tbody>{link_rows}</tbody></table>"""
    return page("smallwins operator", body)


def index_page(*, boards: Sequence[tuple[str, str]], featured: str | None) -> str:
    card = f'<p><a href="{escape(featured)}">A member\'s progress card</a></p>' if featured else ""
    body = (
        "<h1>smallwins</h1><p>Achievements for this community. Members open their own card from "
        "their personal link.</p>"
        f"{card}<h2>Leaderboards</h2>{nav(boards)}"
    )
    return page("smallwins", body)
