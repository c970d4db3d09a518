"""``smallwins newsletter``: the email plugin's part of the command line.

Registered into the main CLI by :func:`register`. Jinja2 is imported when the command runs, so
the rest of the CLI works without the ``email`` extra.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape

from smallwins.adapters.email.newsletter import (
    PRESENTER,
    IssueBlock,
    IssueError,
    Recipient,
    check_issue,
    community_block,
    issue_window,
    iter_recipients,
    recipient_ids,
    remember_issue,
)
from smallwins.adapters.email.settings import NewsletterSettings
from smallwins.cli import ConfigOption, DatabaseOption, errors, fail, opened, progress_bar
from smallwins.core.app import App
from smallwins.core.config import resolve_secret
from smallwins.core.cursors import CursorStore
from smallwins.presenters.web_widget import write_if_changed

if TYPE_CHECKING:
    from smallwins.adapters.email.render import Renderer

MERGE_COLUMNS = ("email", "member_id", "SW_NAME", "SW_POINTS", "SW_RANK", "SW_NEXT", "SW_NEXT_BADGE", "SW_PROGRESS",
                 "SW_NEW_BADGES", "SW_PROGRESS_HTML")  # fmt: skip

#: What a spreadsheet reads as the start of a formula (OWASP's list for CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert_cell(value: str) -> str:
    """A merge field as plain text in a spreadsheet too: a member named ``=HYPERLINK(...)`` would
    otherwise be a live formula for the operator who opens the file (a leading ``'`` stops it)."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def newsletter_settings(smallwins: App) -> tuple[NewsletterSettings, Path]:
    """The enabled presenter's settings (else the defaults) and the folder paths resolve against."""
    component = smallwins.components.get(PRESENTER)
    base = smallwins.config.base_dir.resolve()
    if component is not None and isinstance(component.settings, NewsletterSettings):
        return component.settings, base
    return NewsletterSettings(), base


def parse_moment(value: str | None, what: str, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise fail(
            f"--{what} '{value}' is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T09:00+01:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def file_name(address: str, member_id: int) -> str:
    return f"{member_id}-{re.sub(r'[^a-z0-9@._-]+', '_', address.lower())[:80]}"


def newsletter(
    issue: Annotated[str, typer.Option("--issue", help="the issue this block is for, e.g. 2026-11")],
    since: Annotated[str | None, typer.Option(help="start of the window (default: end of the last issue)")] = None,
    until: Annotated[str | None, typer.Option(help="end of the window (default: now)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder to write to (default: OUTPUT_DIR/ISSUE)")] = None,
    per_recipient: Annotated[
        bool, typer.Option("--per-recipient", help="also one HTML and text file per recipient")
    ] = False,
    send: Annotated[bool, typer.Option("--send", help="send each recipient their block by SMTP")] = False,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="send only to these addresses (with --send); repeatable")
    ] = None,
    subject: Annotated[str | None, typer.Option(help="subject of sent messages (default: TITLE - ISSUE)")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Render the newsletter block: new badges, top contributors, rarest badge, each reader's progress."""
    from smallwins.adapters.email.render import Renderer, TemplateProblem

    try:
        check_issue(issue)
    except IssueError as exc:
        raise fail(str(exc)) from None
    with opened(config, database) as smallwins:
        settings, base = newsletter_settings(smallwins)
        zone = ZoneInfo(smallwins.config.core.default_timezone)
        cursors = CursorStore(smallwins.store, PRESENTER)
        try:
            start, end = issue_window(
                cursors,
                issue,
                until=parse_moment(until, "until", zone),
                since=parse_moment(since, "since", zone),
                now=smallwins.engine.clock(),
                zone=zone,
            )
            renderer = Renderer((base / settings.template_dir) if settings.template_dir else None)
            block = community_block(
                smallwins,
                issue=issue,
                title=settings.title,
                since=start,
                until=end,
                zone=zone,
                top=settings.top_contributors,
                badges_limit=settings.new_badges_limit,
                names_per_badge=settings.names_per_badge,
            )
            rendered = renderer.block(block)
        except (IssueError, TemplateProblem) as exc:
            raise fail(str(exc)) from None
        folder = out or base / settings.output_dir / issue
        write_if_changed(folder / "block.html", rendered.html)
        write_if_changed(folder / "block.txt", rendered.text)
        with smallwins.store.sessions() as session:
            total = len(recipient_ids(session))
        readers: list[Recipient] = []
        merge = io.StringIO()
        writer = csv.DictWriter(merge, fieldnames=MERGE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        try:
            with progress_bar() as bar:
                task = bar.add_task("rendering recipients", total=total)
                for reader in iter_recipients(smallwins, start, end):
                    own = renderer.recipient(block, reader)
                    row = {"email": reader.address, "SW_PROGRESS_HTML": own.html} | reader.merge_fields
                    writer.writerow({"member_id": reader.member_id} | {k: inert_cell(v) for k, v in row.items()})
                    if per_recipient:
                        name = file_name(reader.address, reader.member_id)
                        write_if_changed(folder / "recipients" / f"{name}.html", own.html)
                        write_if_changed(folder / "recipients" / f"{name}.txt", own.text)
                    if send and (not to or reader.address in {t.casefold() for t in to}):
                        readers.append(reader)
                    bar.advance(task)
        except TemplateProblem as exc:
            raise fail(str(exc)) from None
        write_if_changed(folder / "merge-fields.csv", merge.getvalue())
        remember_issue(cursors, issue, start, end)
        typer.echo(rendered.text)  # as is: rich would wrap it at the terminal's width
        errors.print(
            f"issue {escape(issue)}: {len(block.new_badges)} new badges, "
            f"{len(block.top_contributors)} top contributors, {total} recipients; written to {escape(str(folder))}",
            highlight=False,
        )
        if send:
            send_issue(smallwins, settings, base, renderer, block, readers, subject or f"{settings.title} - {issue}")


def send_issue(
    smallwins: App,
    settings: NewsletterSettings,
    base: Path,
    renderer: Renderer,
    block: IssueBlock,
    readers: list[Recipient],
    subject: str,
) -> None:
    """Send each reader block + progress; already-sent addresses are skipped (re-runs are safe)."""
    from smallwins.adapters.email.send import Smtp, build_message, send_all

    if not settings.smtp_host or not settings.from_address:
        raise fail("--send needs smtp_host and from_address in [plugins.email] (or [plugins.email.newsletter])")
    where = "plugins.email"
    smtp = Smtp(
        host=settings.smtp_host,
        port=settings.effective_smtp_port(),
        security=settings.smtp_security,
        from_address=settings.from_address,
        from_name=settings.from_name,
        reply_address=settings.reply_address,
        message_id_domain=settings.issue_domains[0] if settings.issue_domains else None,
        username=resolve_secret(settings.smtp_username_env, setting=f"{where}.smtp_username_env")
        if settings.smtp_username_env
        else None,
        password=resolve_secret(settings.smtp_password_env, setting=f"{where}.smtp_password_env")
        if settings.smtp_password_env
        else None,
        ca_file=str(base / settings.smtp_ca_file) if settings.smtp_ca_file else None,
    )
    messages = (
        (
            reader.address,
            build_message(
                smtp,
                issue=block.issue,
                subject=subject,
                to=reader.address,
                name=reader.display_name,
                rendered=renderer.email(block, reader),
            ),
        )
        for reader in readers
    )
    with progress_bar() as bar:
        task = bar.add_task("sending", total=len(readers))
        try:
            sent, skipped, failed = send_all(
                smtp,
                messages,
                cursors=CursorStore(smallwins.store, PRESENTER),
                issue=block.issue,
                on_sent=lambda address, problem: bar.advance(task),
            )
        except OSError as exc:
            raise fail(f"cannot send through {smtp.host}:{smtp.port}: {exc}") from None
    for address, problem in failed.items():
        errors.print(f"[yellow]not sent to {escape(address)}:[/] {escape(problem)}", highlight=False)
    errors.print(f"sent {sent}, already sent before {skipped}, failed {len(failed)}", highlight=False)
    if failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command("newsletter")(newsletter)
