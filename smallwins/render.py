"""Rich renderings shared by CLI commands: a member card, the leaderboard, the catalogue."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from smallwins.core.contract import MemberSnapshot
from smallwins.core.rules import Catalogue
from smallwins.core.views import LeaderboardRow, next_targets


def leaderboard_table(rows: list[LeaderboardRow], *, title: str = "All-time leaderboard") -> Table:
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("member")
    table.add_column("id", justify="right", style="dim")
    table.add_column("points", justify="right")
    for row in rows:
        table.add_row(str(row.rank), row.display_name, str(row.member_id), str(row.points))
    return table


def catalogue_table(catalogue: Catalogue, rarity: Mapping[str, float]) -> Table:
    table = Table(title="Achievements")
    table.add_column("achievement")
    table.add_column("tier")
    table.add_column("how")
    table.add_column("held by", justify="right")
    for achievement in catalogue.achievements.values():
        share = rarity.get(achievement.id, 0.0)
        table.add_row(
            achievement.name,
            achievement.tier or "",
            achievement.description,
            f"{share:.0%} of members",
        )
    return table


def member_card(snapshot: MemberSnapshot) -> Panel:
    identities = ", ".join(f"{p}:{a}" for p, accounts in sorted(snapshot.identities.items()) for a in accounts)
    header = f"[bold]{snapshot.display_name}[/] (member {snapshot.member_id})\n{identities}\n"
    rank = f"rank #{snapshot.rank}" if snapshot.rank else "private (not ranked)"
    header += f"{snapshot.points} points, {rank}"
    awards = Table(title="Earned", show_header=False, box=None)
    for award in snapshot.awards:
        awards.add_row("🏅", award["name"], award["tier"] or "", award["awarded_at"][:10], award["origin"])
    if not snapshot.awards:
        awards.add_row("", "nothing yet", "", "", "")
    upcoming = Table(title="Next", show_header=False, box=None)
    for item in next_targets(snapshot):
        upcoming.add_row(
            str(item["name"]),
            ProgressBar(total=float(item["target"]), completed=float(item["current"]), width=20),  # type: ignore[arg-type]
            str(item["text"]),
        )
    return Panel(Group(header, awards, upcoming), title="member", expand=False)
