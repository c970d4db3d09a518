"""``smallwins links ...`` and ``smallwins serve``: the web adapter's part of the command line.

Registered into the main CLI by :func:`register`; web libraries (segno, uvicorn) are imported
only by the commands that need them, so the rest of the CLI works without the ``web`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.markup import escape
from rich.table import Table

from smallwins.adapters.web.links import LinkError, all_links, campaign_counts, create_link, find_link, web_account_of
from smallwins.adapters.web.settings import CreditPeriod, WebSettings
from smallwins.cli import (
    SHARED,
    ConfigOption,
    DatabaseOption,
    config_failure,
    console,
    fail,
    member_id_of,
    opened,
    stop_on_signals,
)
from smallwins.core.app import App
from smallwins.core.contract import PluginContext

links_app = typer.Typer(help="Tracked links (short links that credit members), QR codes, personal links.")

WEB = "web"


def web_settings(smallwins: App) -> WebSettings:
    """The ``[plugins.web]`` settings when the plugin is enabled, else the defaults."""
    component = smallwins.components.get(WEB)
    if component is not None and isinstance(component.settings, WebSettings):
        return component.settings
    return WebSettings()


def web_context(smallwins: App) -> PluginContext:
    if WEB in smallwins.components:
        return smallwins.context(WEB)
    return PluginContext(
        name=WEB, plugin=WEB, settings=WebSettings(), config_dir=smallwins.config.base_dir.resolve(), app=smallwins
    )


def member_token(smallwins: App, member: str) -> tuple[int, str]:
    """A member's id and personal token (creating their web identity if they have none)."""
    from smallwins.adapters.web.tokens import MemberSigner, signing_key

    settings = web_settings(smallwins)
    member_id = member_id_of(smallwins, member)
    account = web_account_of(smallwins.store, member_id)
    signer = MemberSigner(
        signing_key(smallwins.store, os.environ.get(settings.secret_env)),
        token_max_age=settings.member_token_days * 86400,
        cookie_max_age=settings.cookie_days * 86400,
    )
    return member_id, signer.token(account)


@links_app.command("create")
def links_create(
    url: Annotated[str, typer.Option(help="where the link leads (absolute http(s) URL)")],
    campaign: Annotated[str, typer.Option(help="campaign name, for counts by campaign")],
    event: Annotated[str, typer.Option(help="event type a member's click records")] = "link.clicked",
    period: Annotated[
        CreditPeriod | None, typer.Option(help="one credit per member per day/week/month/ever (default: settings)")
    ] = None,
    note: Annotated[str | None, typer.Option(help="a note for operators")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Make a short tracked link; members' clicks on it count as EVENT."""
    with opened(config, database) as smallwins:
        settings = web_settings(smallwins)
        try:
            link = create_link(
                smallwins.store,
                url=url,
                campaign=campaign,
                event_type=event,
                credit_period=period or settings.credit_period,
                note=note,
            )
        except LinkError as exc:
            raise fail(str(exc)) from None
    console.print(f"{settings.base_url()}/r/{link.code}", highlight=False, soft_wrap=True)
    console.print(
        escape(
            f"code {link.code}: {event} for campaign '{link.campaign}', one credit per member per {link.credit_period}"
        )
    )


@links_app.command("list")
def links_list(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Every tracked link, and fetches by campaign (credited, repeats, anonymous, bots, bad tokens)."""
    with opened(config, database, existing=True) as smallwins, smallwins.store.sessions() as session:
        base = web_settings(smallwins).base_url()
        table = Table(title=f"Tracked links ({base}/r/CODE)")
        for column in ("code", "campaign", "event", "per", "target"):
            table.add_column(column)
        for link in all_links(session):
            table.add_row(
                link.code, escape(link.campaign), link.event_type, link.credit_period, escape(link.target_url)
            )
        counts = Table(title="Fetches by campaign")
        columns = ("campaign", "links", "fetches", "credited", "repeats", "anonymous", "bots/HEAD", "bad token")
        for column in columns:
            counts.add_column(column, justify="left" if column == "campaign" else "right")
        for row in campaign_counts(session):
            numbers = (row.links, row.fetches, row.credited, row.repeats, row.anonymous, row.automated, row.bad_tokens)
            counts.add_row(escape(row.campaign), *(str(n) for n in numbers))
    console.print(table)
    console.print(counts)


@links_app.command("qr")
def links_qr(
    code: Annotated[str, typer.Argument(help="the link's code (the part after /r/)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="image to write: .png or .svg")] = Path("qr.png"),
    scale: Annotated[int, typer.Option(min=1, max=100, help="pixels per module")] = 10,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """A QR code for a tracked link (posters, slides): scanning it follows the same /r/ path."""
    import segno

    if out.suffix.lower() not in (".png", ".svg"):
        raise fail(f"{out}: write a .png or .svg file")
    with opened(config, database, existing=True) as smallwins, smallwins.store.sessions() as session:
        if find_link(session, code) is None:
            raise fail(f"no tracked link '{code}' (see smallwins links list)")
        url = f"{web_settings(smallwins).base_url()}/r/{code}"
    qr = segno.make(url, error="m", micro=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    qr.save(str(out), scale=scale, border=4)
    console.print(escape(f"{out}: QR code (version {qr.version}, {qr.error}) for {url}"))


@links_app.command("member")
def links_member(
    member: Annotated[str, typer.Argument(help="member id, PLATFORM:ACCOUNT, or display name")],
    code: Annotated[list[str] | None, typer.Option(help="also print this link personalized (repeatable)")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """A member's personal links (newsletters, DMs): their card page and tracked links that credit them."""
    with opened(config, database, existing=True) as smallwins:
        member_id, token = member_token(smallwins, member)
        base = web_settings(smallwins).base_url()
        with smallwins.store.sessions() as session:
            for wanted in code or []:
                if find_link(session, wanted) is None:
                    raise fail(f"no tracked link '{wanted}' (see smallwins links list)")
    console.print(f"member {member_id} card: {base}/m/{token}", highlight=False, soft_wrap=True)
    for wanted in code or []:
        console.print(f"{base}/r/{wanted}?m={token}", highlight=False, soft_wrap=True)


def serve(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="address to listen on (default: settings)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: settings, 8321)")] = None,
    member: Annotated[str | None, typer.Option(help="print this member's personal card URL")] = None,
) -> None:
    """Serve the web adapter: tracked links, forms, webhooks, the widget API and pages."""
    with opened(config, database) as smallwins:
        run_server(smallwins, host=host, port=port, member=member)


def serve_demo(config: Path | None, database: str) -> None:
    """After ``smallwins demo``: a member one click from a badge, their links, then serve."""
    from smallwins.adapters.web.showcase import prepare

    with opened(config, database) as smallwins:
        base = web_settings(smallwins).base_url()
        showcase = prepare(smallwins, base_url=base)
        if showcase is None:
            run_server(smallwins, host=None, port=None, member=None)
            return
        _, token = member_token(smallwins, str(showcase.member_id))
        console.print(
            escape(
                f"\n{showcase.display_name} (member {showcase.member_id}) is one click away from "
                f"'{showcase.achievement}'. Open their card, then click their tracked link:"
            ),
            highlight=False,
        )
        console.print(f"  card:         {base}/m/{token}", highlight=False, soft_wrap=True)
        console.print(f"  tracked link: {base}/r/{showcase.link_code}?m={token}", highlight=False, soft_wrap=True)
        run_server(smallwins, host=None, port=None, member=None)


def run_server(smallwins: App, *, host: str | None, port: int | None, member: str | None) -> None:
    """Print where to look, then serve (with outbox delivery) until Ctrl-C."""
    from smallwins.adapters.web.capture import WebServer, build_web
    from smallwins.core.config import ConfigError
    from smallwins.core.logs import configure_logging
    from smallwins.core.runtime import dispatch_forever

    context = web_context(smallwins)
    settings = web_settings(smallwins)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
        context = PluginContext(
            name=context.name, plugin=context.plugin, settings=settings, config_dir=context.config_dir, app=smallwins
        )
    try:
        web = build_web(context)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    base = settings.base_url()
    console.print(f"smallwins web on {base}/   leaderboards: {base}/leaderboards", highlight=False)
    if member is not None:
        member_id, token = member_token(smallwins, member)
        console.print(f"member {member_id}'s card: {base}/m/{token}", highlight=False, soft_wrap=True)
    if web.admin_token is None:
        console.print(f"operator page off (set {settings.admin_token_env} to turn on {base}/admin)")
    log_level, log_format = SHARED.get("log_level"), SHARED.get("log_format")
    configure_logging(
        log_level if isinstance(log_level, str) else "INFO",  # a server says what it does
        log_format="json" if log_format == "json" else "console",
    )

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: dispatch_forever(smallwins, interval=2.0))
            await WebServer(web, host=settings.host, port=settings.port).serve()
            group.cancel_scope.cancel()

    stop_on_signals()
    try:
        anyio.run(main)
    except KeyboardInterrupt:
        console.print("stopped")
    except ExceptionGroup as group:  # the server could not start (its port is taken)
        raise config_failure(group) from None


def register(app: typer.Typer) -> None:
    app.add_typer(links_app, name="links")
    app.command()(serve)
