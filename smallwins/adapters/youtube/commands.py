"""``smallwins youtube status`` and ``smallwins youtube backfill``: the YouTube plugin's part of the
command line. Status reads only the store (no request, no unit spent); backfill reads comments
with a progress bar. Google's client is imported when backfill runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio
import typer
from rich.markup import escape
from rich.table import Table

from smallwins.adapters.youtube.quota import PACIFIC, QuotaLedger
from smallwins.adapters.youtube.settings import YouTubeSettings
from smallwins.adapters.youtube.state import ChannelState, VideoInfo
from smallwins.cli import ConfigOption, DatabaseOption, console, deliver_outbox, errors, fail, opened, progress_bar
from smallwins.core.app import App
from smallwins.core.config import ConfigError
from smallwins.core.cursors import CursorStore

SOURCE = "youtube"
youtube_app = typer.Typer(help="The YouTube source: quota, followed videos, catch-up.", no_args_is_help=True)


def youtube_settings(smallwins: App) -> YouTubeSettings | None:
    component = smallwins.components.get(SOURCE)
    if component is not None and isinstance(component.settings, YouTubeSettings):
        return component.settings
    return None


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def quota_line(report: dict[str, Any]) -> str:
    resets = datetime.fromisoformat(report["resets_at"])
    line = (
        f"quota {report['day']} (Pacific): {report['used']} of {report['budget']} units used, {report['left']} left; "
        f"resets {resets.astimezone(PACIFIC).strftime('%Y-%m-%d %H:%M %Z')} ({_when(resets)})"
    )
    if report["paused_until"]:
        line += f"; paused until {_when(datetime.fromisoformat(report['paused_until']))}: YouTube said quotaExceeded"
    return line


def _next_read(settings: YouTubeSettings, info: VideoInfo, now: datetime) -> datetime | None:
    if info.pending or info.scanned is None:
        return None
    recent = info.status == "ok" and now - info.published < timedelta(days=settings.recent_days)
    return info.scanned + timedelta(seconds=settings.recent_poll_seconds if recent else settings.old_poll_seconds)


@youtube_app.command("status")
def status(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document instead of tables")] = False,
) -> None:
    """Units used and left today, the videos followed and when each is read next (no API call)."""
    with opened(config, database) as smallwins:
        settings = youtube_settings(smallwins)
        if settings is None:
            raise fail("the youtube plugin is not enabled: set [plugins.youtube] enabled = true in plugins.toml")
        cursors = CursorStore(smallwins.store, SOURCE)
        report = QuotaLedger(cursors, settings.daily_quota).load().report()
        now = datetime.now(UTC)
        channels = [ChannelState.of(c, cursors.get(f"channel:{c}")) for c in settings.channels]
        rows: list[dict[str, Any]] = []
        for channel in channels:
            for video, info in sorted(channel.videos.items(), key=lambda item: item[1].published, reverse=True):
                known = cursors.get(f"video:{video}") or {}
                rows.append(
                    {
                        "channel": channel.id,
                        "video": video,
                        "published": info.published.isoformat(),
                        "last_read": info.scanned.isoformat() if info.scanned else None,
                        "next_read": (n.isoformat() if (n := _next_read(settings, info, now)) else "now"),
                        "status": info.status + (" (read under way)" if info.pending else ""),
                        "comments": len(known.get("comments", {})),
                    }
                )
    if as_json:
        channel_rows = [{"channel": c.id, "status": c.status, "uploads_checked": c.checked and c.checked.isoformat(),
                         "videos": len(c.videos)} for c in channels]  # fmt: skip
        typer.echo(json.dumps({"quota": report, "channels": channel_rows, "videos": rows}, indent=2))
        return
    console.print(escape(quota_line(report)), highlight=False)
    for channel in channels:
        console.print(
            escape(f"channel {channel.id}: {len(channel.videos)} videos followed, uploads checked "
                   f"{_when(channel.checked)}" + ("" if channel.status == "ok" else f", {channel.status}")),
            highlight=False,
        )  # fmt: skip
    table = Table("video", "published", "last read", "next read", "status", "comments", title="Videos followed")
    for row in rows:
        table.add_row(
            escape(row["video"]),
            row["published"][:10],
            _when(datetime.fromisoformat(row["last_read"])) if row["last_read"] else "never",
            row["next_read"] if row["next_read"] == "now" else _when(datetime.fromisoformat(row["next_read"])),
            escape(row["status"]),
            str(row["comments"]),
        )
    console.print(table)


@youtube_app.command("backfill")
def backfill(
    videos: Annotated[
        int | None,
        typer.Option("--videos", min=1, help="catch up this many newest videos per channel (default: catch_up_videos)"),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="read every followed video again, not only unread ones")] = False,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Catch up: all comments of the newest videos (first enable, or more videos), with a progress bar."""
    from smallwins.adapters.youtube.capture import Poller
    from smallwins.adapters.youtube.quota import QuotaExhausted
    from smallwins.core.runtime import make_sink

    with opened(config, database) as smallwins:
        settings = youtube_settings(smallwins)
        if settings is None:
            raise fail("the youtube plugin is not enabled: set [plugins.youtube] enabled = true in plugins.toml")
        try:
            poller = Poller.from_context(smallwins.context(SOURCE))
        except ConfigError as exc:
            raise fail(str(exc)) from None
        sink = make_sink(smallwins, SOURCE)
        want = min(videos, settings.max_videos) if videos else None

        async def catch_up() -> int:
            await poller.load()
            for channel in poller.channels.values():
                await poller.refresh_uploads(channel, want=want)
            todo = [
                (channel.id, video)
                for channel in poller.channels.values()
                for video, info in sorted(channel.videos.items(), key=lambda item: item[1].published, reverse=True)
                if every or info.scanned is None or info.pending
            ]
            with progress_bar() as bar:
                task = bar.add_task("reading YouTube comments", total=len(todo))
                return await poller.poll_once(sink, videos=todo, on_video=lambda channel, video: bar.advance(task))

        stopped: QuotaExhausted | None = None
        read = 0
        try:
            read = anyio.run(catch_up)
        except QuotaExhausted as exc:
            stopped = exc
        except ConfigError as exc:
            raise fail(str(exc)) from None
        delivered = deliver_outbox(smallwins)
        stats = poller.stats
        console.print(
            escape(
                f"{read if stopped is None else stats.videos_read} videos read, {stats.pages} pages, "
                f"{stats.events} events; skipped {stats.skipped or 'none'}; presenters applied {delivered}"
            ),
            highlight=False,
        )
        console.print(escape(quota_line(poller.ledger.report())), highlight=False)
        if stopped is not None:
            errors.print(
                escape(
                    f"stopped: {stopped.why}. Run again after {_when(stopped.resume_at)}: it continues where it stopped"
                ),
                highlight=False,
            )
            raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.add_typer(youtube_app, name="youtube")
