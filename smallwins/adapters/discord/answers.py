"""What the slash commands say: plain functions over the store, run in a worker thread.

Kept apart from discord.py so the wording is testable without a gateway, and so every database
call happens off the event loop (the gateway's heartbeat must not wait for the store).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from smallwins.core import leaderboards, views
from smallwins.core.app import App
from smallwins.core.identity import AccountRef, IdentityError

PLATFORM = "discord"
NO_ACTIVITY = "No activity from you yet: post a message and your progress starts here."


def member_id_for(app: App, user_id: str) -> int | None:
    """The member a Discord account belongs to, if it has ever done anything counted."""
    with app.store.sessions() as session:
        try:
            return views.find_member(session, f"{PLATFORM}:{user_id}").id
        except views.MemberNotFound:
            return None


def progress(app: App, user_id: str) -> str:
    """``/progress``: badges with rarity, streaks and days left, what is next, vouchers to claim."""
    member_id = member_id_for(app, user_id)
    if member_id is None:
        return NO_ACTIVITY
    with app.store.sessions() as session:
        snapshot = app.snapshot(session, member_id)
    lines = [
        f"**{snapshot.display_name}**: {snapshot.points} points" + (f", rank #{snapshot.rank}" if snapshot.rank else "")
    ]
    if snapshot.awards:
        lines.append("**Badges**")
        for award in snapshot.awards:
            tier = f" ({award['tier']})" if award.get("tier") else ""
            lines.append(f"- {award['name']}{tier}: {award['held_by']}")
    for item in snapshot.progress:
        detail = item.get("detail") or {}
        if "current" in detail and "longest" in detail and detail.get("current"):
            left = detail.get("periods_left")
            due = f", act within {left} day{'s' if left != 1 else ''}" if left is not None else ""
            lines.append(f"Streak **{item['name']}**: {detail['current']} in a row{due}")
    upcoming = views.next_targets(snapshot)[:3]
    if upcoming:
        lines.append("**Next**")
        lines.extend(f"- {item['name']}: {item['text']}" for item in upcoming)
    open_vouchers = [v for v in snapshot.vouchers if v["status"] == "open"]
    if open_vouchers:
        lines.append("**Vouchers to claim**")
        lines.extend(
            f"- `{v['code']}` ({v['achievement_id']}), until {v['expires_at'][:16]} UTC" for v in open_vouchers
        )
    if snapshot.private:
        lines.append("_Private mode is on: you are not on public leaderboards._")
    return "\n".join(lines)[:1990]


def board_names(app: App) -> dict[str, str]:
    return {board_id: spec.name for board_id, spec in app.catalogue.leaderboards.items()}


def leaderboard(app: App, board: str | None, *, limit: int = 10) -> str:
    """``/leaderboard [board]``: the current period's top members."""
    boards = app.catalogue.leaderboards
    if not boards:
        return "This community has no leaderboards."
    board = board or next(iter(boards))
    spec = boards.get(board)
    if spec is None:
        return f"No leaderboard '{board}'. Boards: {', '.join(boards)}"
    zone = ZoneInfo(app.config.core.default_timezone)
    key = leaderboards.period_key(spec, app.engine.clock(), zone) or "season"
    with app.store.sessions() as session:
        rows = leaderboards.standings(session, board, key, limit=limit)
    if not rows:
        return f"**{spec.name}** ({key}): nobody yet. Be the first!"
    body = "\n".join(f"{row.rank}. {row.display_name}: {row.points}" for row in rows)
    return f"**{spec.name}** ({key})\n{body}"[:1990]


def link(app: App, user_id: str, code: str | None) -> str:
    """``/link``: a code to paste elsewhere, or redeem one made on another platform."""
    ref = AccountRef(PLATFORM, user_id)
    try:
        if not code:
            issued = app.engine.issue_link_code(ref)
            minutes = app.config.core.link_code_ttl_minutes
            return (
                f"Your link code: `{issued}`. Within {minutes} minutes, paste it in a YouTube comment, a newsletter "
                "reply or the website, or run /link with it from your other Discord account."
            )
        member_id = app.engine.redeem_link_code(code, ref)
    except IdentityError as exc:
        return f"Could not link: {exc}"
    return f"Linked: your accounts now count as one member (#{member_id})."


def privacy(app: App, user_id: str, private: bool) -> str:
    """``/privacy``: leave (or rejoin) public leaderboards and widgets."""
    member_id = member_id_for(app, user_id)
    if member_id is None:
        return NO_ACTIVITY
    app.engine.set_profile(member_id, private=private)
    return "Private mode is on: you no longer appear on public leaderboards." if private else "Private mode is off."


def moderate(app: App, action: str, moderator_id: str, user_id: str, achievement: str, reason: str) -> str:
    """``/grant`` and ``/revoke``: audited with the moderator's Discord id as the actor."""
    member_id = member_id_for(app, user_id)
    if member_id is None:
        return "That member has no activity here yet."
    operation = app.engine.grant if action == "grant" else app.engine.revoke
    try:
        changed = operation(member_id, achievement, actor=f"{PLATFORM}:{moderator_id}", reason=reason)
    except (KeyError, ValueError) as exc:
        return f"Could not {action}: {str(exc).strip(chr(34) + chr(39))}"
    verb = "granted" if action == "grant" else "revoked"
    return f"{achievement} {verb} (audited)." if changed else f"Nothing to do: {achievement} already {verb}."
