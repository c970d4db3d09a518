"""Rich renderings shared by CLI commands: a member card, leaderboards, the catalogue, backfills."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from smallwins.core.backfill import BackfillTally
from smallwins.core.contract import MemberSnapshot
from smallwins.core.rules import Catalogue
from smallwins.core.views import next_targets
from smallwins.core.vouchers import ClaimStats


def leaderboard_table(rows: Sequence[Any], *, title: str = "All-time leaderboard") -> Table:
    """Rows with ``rank``, ``display_name``, ``member_id`` and ``points`` (all-time or a period)."""
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("member")
    table.add_column("id", justify="right", style="dim")
    table.add_column("points", justify="right")
    for row in rows:
        table.add_row(str(row.rank), escape(row.display_name), str(row.member_id), str(row.points))
    if not rows:
        table.add_row("", "nobody has scored in this period yet", "", "")
    return table


def catalogue_table(catalogue: Catalogue, rarity: Mapping[str, float]) -> Table:
    table = Table(title="Achievements")
    table.add_column("achievement")
    table.add_column("rule")
    table.add_column("how")
    table.add_column("held by", justify="right")
    for achievement in catalogue.achievements.values():
        share = rarity.get(achievement.id, 0.0)
        extras = []
        if achievement.role:
            extras.append(f"role: {achievement.role}")
        if achievement.voucher_hours:
            extras.append(f"voucher, {achievement.voucher_hours:g} h to claim")
        how = escape(achievement.description) + (f" [dim]({escape('; '.join(extras))})[/]" if extras else "")
        table.add_row(escape(achievement.name), escape(achievement.rule.name), how, f"{share:.0%} of members")
    return table


def _streak_line(item: Mapping[str, Any]) -> str | None:
    detail = item["detail"]
    if "longest" not in detail:
        return None
    line = f"{escape(item['name'])}: current {detail['current']}, longest {detail['longest']}"
    if detail.get("freezes"):
        line += f", {detail['freezes']} freeze(s) held"
    if detail.get("act_by"):
        left = detail.get("periods_left")
        unit = item["unit"].split()[0].rstrip("s")  # "days in a row" -> "day"
        line += f" — {left} {unit}{'s' if left != 1 else ''} left, act by {detail['act_by']}" if left else ""
    return line


def member_card(snapshot: MemberSnapshot) -> Panel:
    identities = escape(", ".join(f"{p}:{a}" for p, accounts in sorted(snapshot.identities.items()) for a in accounts))
    rank = f"rank #{snapshot.rank}" if snapshot.rank else "private (not ranked)"
    name = escape(snapshot.display_name)
    header = f"[bold]{name}[/] (member {snapshot.member_id}, {snapshot.timezone})\n{identities}\n"
    header += f"{snapshot.points} points, {rank}"
    if snapshot.roles:
        header += f"\nroles: {escape(', '.join(snapshot.roles))}"
    awards = Table(title="Earned", show_header=False, box=None)
    for award in snapshot.awards:
        name, tier = escape(award["name"]), escape(award["tier"] or "")
        awards.add_row("🏅", name, tier, award["awarded_at"][:10], escape(award["held_by"]))
    for revoked in snapshot.revoked:
        awards.add_row("✖", escape(revoked["name"]), "[red]revoked[/]", revoked["revoked_at"][:10], "by a moderator")
    if not snapshot.awards and not snapshot.revoked:
        awards.add_row("", "nothing yet", "", "", "")
    parts: list[Any] = [header, awards]
    streaks = [line for item in snapshot.progress if (line := _streak_line(item))]
    if streaks:
        parts.append("[bold]Streaks[/]\n" + "\n".join(streaks))
    if snapshot.vouchers:
        parts.append(
            "[bold]Vouchers[/]\n"
            + "\n".join(
                f"{v['code']} ({escape(v['achievement_id'])}): {v['status']}, until {v['expires_at'][:16]}"
                for v in snapshot.vouchers
            )
        )
    upcoming = Table(title="Next", show_header=False, box=None)
    for item in next_targets(snapshot):
        label = escape(item["name"] + (f" → {item['next_tier']}" if item.get("next_tier") and item["earned"] else ""))
        upcoming.add_row(
            label,
            ProgressBar(total=float(item["target"]), completed=float(item["current"]), width=20),
            escape(item["text"]),
        )
    parts.append(upcoming)
    return Panel(Group(*parts), title="member", expand=False)


def vouchers_table(stats: Sequence[ClaimStats]) -> Table:
    table = Table(title="Vouchers")
    for column in ("achievement", "issued", "claimed", "expired unclaimed", "claim rate"):
        table.add_column(column, justify="left" if column == "achievement" else "right")
    for row in stats:
        counts = (str(row.issued), str(row.claimed), str(row.expired), f"{row.claim_rate:.0%}")
        table.add_row(escape(row.achievement_id), *counts)
    return table


def backfill_table(tally: BackfillTally, *, title: str) -> Group:
    table = Table(title=title)
    table.add_column("achievement")
    table.add_column("award", justify="right")
    table.add_column("revoke", justify="right")
    for achievement_id in sorted(set(tally.awards) | set(tally.revocations)):
        table.add_row(escape(achievement_id), str(tally.awards[achievement_id]), str(tally.revocations[achievement_id]))
    for change, n in sorted(tally.tier_changes.items()):
        table.add_row(escape(f"tier {change}"), str(n), "")
    for achievement_id, n in sorted(tally.redates.items()):
        table.add_row(escape(f"{achievement_id}: earned at another moment"), str(n), "")
    summary = (
        f"{tally.members} members checked, {tally.changed_members} would change"
        if tally.run_id is None
        else (
            f"run {tally.run_id}: {tally.members} members recomputed, {tally.changed_members} changed"
            + (f" (resumed after member {tally.resumed_after_member})" if tally.resumed_after_member else "")
        )
    )
    examples = "\n".join(f"  {escape(e)}" for e in tally.examples) or "  (none)"  # they name members
    parts: list[Any] = [table, summary]
    if tally.retired:
        held = ", ".join(f"{achievement_id} ({n})" for achievement_id, n in sorted(tally.retired.items()))
        parts.append(escape(f"kept, no longer in the catalogue (cards still show them; worth no points): {held}"))
    return Group(*parts, "examples:\n" + examples)
