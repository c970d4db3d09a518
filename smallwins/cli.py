"""The ``smallwins`` command line: demo, ingest, members, leaderboard, moderation, plugins."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from smallwins.adapters.jsonl import Normalizer, read_lines
from smallwins.core import leaderboards, views
from smallwins.core.app import App, build_app
from smallwins.core.config import DEFAULT_CONFIG, ConfigError
from smallwins.core.contract import PresenterSpec, SourceSpec
from smallwins.core.engine import BULK_BATCH_SIZE, IngestReport
from smallwins.core.events import Event
from smallwins.core.identity import AccountRef, IdentityError
from smallwins.core.logs import LogFormat, configure_logging
from smallwins.core.plugins import PluginHost
from smallwins.render import backfill_table, catalogue_table, leaderboard_table, member_card, vouchers_table

#: Shared options that may also be written after the command (``smallwins run --log-level INFO``).
HOISTED = {"--log-level": True, "--log-format": True}


def hoist_shared_options(argv: list[str]) -> list[str]:
    """Move shared options written after the command to the front, where the callback reads them."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        name = arg.split("=", 1)[0]
        if name in HOISTED:
            takes_value = "=" not in arg and index + 1 < len(argv)
            front.extend(argv[index : index + (2 if takes_value else 1)])
            index += 2 if takes_value else 1
            continue
        rest.append(arg)
        index += 1
    return front + rest


class SmallwinsApp(typer.Typer):
    """The command line; shared options are accepted before or after the command."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and "args" not in kwargs:
            kwargs["args"] = hoist_shared_options(sys.argv[1:])
        return super().__call__(*args, **kwargs)


app = SmallwinsApp(
    help="smallwins: one achievement system across every platform your community uses.", no_args_is_help=True
)
link_app = typer.Typer(help="Link one member's accounts on different platforms.", no_args_is_help=True)
app.add_typer(link_app, name="link")
voucher_app = typer.Typer(help="Vouchers that achievements issue.", no_args_is_help=True)
app.add_typer(voucher_app, name="voucher")
outbox_app = typer.Typer(help="What presenters have applied, what failed and why; retry parked changes.")
app.add_typer(outbox_app, name="outbox")
console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", envvar="SMALLWINS_CONFIG", help="plugins.toml to use")
]
DatabaseOption = Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL; overrides the store in plugins.toml")]
#: Options every command shares; given before the command (``smallwins -c FILE grant``) they
#: land here, given after it the command's own option wins.
SHARED: dict[str, object] = {}


def _version(value: bool) -> None:
    if value:
        console.print(f"smallwins {metadata.version('smallwins')}")
        raise typer.Exit()


@app.callback()
def main(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING (default), ERROR")] = None,
    log_format: Annotated[LogFormat, typer.Option(help="console lines, or one JSON object per line")] = "console",
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    SHARED.update(config=config, database=database, log_level=log_level, log_format=log_format)
    configure_logging(log_level or "WARNING", log_format=log_format)


def config_path(given: Path | None) -> Path:
    """The plugins.toml to use: the option (after or before the command), else ./plugins.toml,
    else the defaults packaged with smallwins (said once, on stderr)."""
    chosen = given or SHARED.get("config")
    if isinstance(chosen, Path):
        return chosen
    local = Path("plugins.toml")
    if local.exists():
        return local
    errors.print(f"[dim]no plugins.toml here: using the packaged defaults ({escape(str(DEFAULT_CONFIG))})[/]")
    return DEFAULT_CONFIG


def fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=2)


def config_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What a command raises when its task group failed: the first setting that cannot work (an
    unset secret, a busy port) as a one-line error, else the group itself."""
    config_errors = [e for e in group.exceptions if isinstance(e, ConfigError)]
    return fail(str(config_errors[0])) if config_errors else group


def chosen_database(database: str | None) -> str | None:
    """The ``--db`` given to the command or before it (else the configuration decides)."""
    shared_database = SHARED.get("database")
    return database or (shared_database if isinstance(shared_database, str) else None)


@contextmanager
def opened(config: Path | None, database: str | None, *, existing: bool = False) -> Iterator[App]:
    """Build the app or exit with the configuration error; always close the store.

    ``existing``: for commands about what is stored (a SQLite store must be there already).
    """
    database = chosen_database(database)
    try:
        smallwins = build_app(config_path(config), database_url=database, existing=existing)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    try:
        yield smallwins
    finally:
        smallwins.close()


def member_id_of(smallwins: App, ref: str) -> int:
    """The member an operator named (id, PLATFORM:ACCOUNT or display name), or exit with why not."""
    with smallwins.store.sessions() as session:
        try:
            return views.find_member(session, ref).id
        except views.MemberNotFound as exc:
            raise fail(str(exc)) from None


def parse_account(value: str) -> AccountRef:
    platform, sep, account = value.partition(":")
    if not sep or not platform or not account:
        raise fail(f"'{value}' is not PLATFORM:ACCOUNT (e.g. discord:80351110224678912)")
    return AccountRef(platform, account)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,  # progress and per-line problems on stderr; results on stdout
        transient=False,
    )


def ingest_with_progress(
    smallwins: App, events: Iterable[Event], description: str, *, total: int, batch_size: int = BULK_BATCH_SIZE
) -> IngestReport:
    report = IngestReport()
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for outcome in smallwins.engine.ingest_many(events, batch_size=batch_size):
            report.add(outcome)
            bar.advance(task)
    return report


def ingest_file(
    smallwins: App, file: Path, normalize: Normalizer | None = None, *, batch_size: int = BULK_BATCH_SIZE
) -> tuple[IngestReport, int, int]:
    """Stream a JSONL file into the engine; bad lines are reported as they are met.

    Returns the report, the lines rejected, and the lines the source turned into no event (a
    bot's message, a direct message): counted, so that every line of the file is accounted for.
    """
    report, rejected, ignored = IngestReport(), 0, 0
    with file.open("rb") as handle:
        total = sum(1 for line in handle if line.strip())
    with progress_bar() as bar:
        task = bar.add_task(f"ingesting {escape(file.name)}", total=total)  # descriptions are markup

        def valid_events() -> Iterator[Event]:
            nonlocal rejected, ignored
            for result in read_lines(file, normalize=normalize):
                if result.error is None:
                    if not result.events:
                        ignored += 1
                        bar.advance(task)  # a payload the source turns into nothing (a bot's message)
                    yield from result.events
                    continue
                rejected += 1
                bar.advance(task)
                bar.console.print(
                    f"[yellow]{escape(str(file))}:{result.line_number}:[/] {escape(result.error or '')}",
                    highlight=False,
                    soft_wrap=True,  # one problem per line, whole, whatever the terminal's width: greppable
                )

        for outcome in smallwins.engine.ingest_many(valid_events(), batch_size=batch_size):
            report.add(outcome)
            bar.advance(task)  # approximate when a payload gives several events
    return report, rejected, ignored


def deliver_outbox(smallwins: App) -> dict[str, int]:
    """Deliver pending changes in a short event loop; presenters' connections close with it."""

    async def deliver_and_close() -> dict[str, int]:
        try:
            return await smallwins.deliver()
        finally:
            await smallwins.close_presenters()

    return anyio.run(deliver_and_close)


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="normalized events, one JSON per line")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
    source: Annotated[
        str | None,
        typer.Option("--source", help="lines are recorded payloads of this source: pass them through its normalize"),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="processes ingesting in parallel (PostgreSQL only)")
    ] = 1,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, help="events per transaction (per worker): larger is faster, smaller commits sooner"
        ),
    ] = BULK_BATCH_SIZE,
) -> None:
    """Ingest a JSONL file. Bad lines are reported by number; the rest are ingested. Re-runs add nothing."""
    if workers > 1:
        ingest_with_workers(file, config, database, source, workers, batch_size)
        return
    with opened(config, database) as smallwins:
        normalize = None
        if source is not None:
            sources = smallwins.host.sources()
            if source not in sources:
                raise fail(f"no installed source named '{source}'; installed: {', '.join(sorted(sources))}")
            normalize = smallwins.normalizer(source)
        report, rejected, ignored = ingest_file(smallwins, file, normalize, batch_size=batch_size)
        for warning in report.told():
            errors.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        delivered = deliver_outbox(smallwins)
    skipped = f", {ignored} ignored (the source counts nothing in them)" if ignored else ""
    console.print(
        f"{report.stored} stored, {report.duplicates} already known, {rejected} rejected{skipped}, "
        f"{report.awarded} achievements awarded; presenters updated: {delivered}"
    )
    if rejected:
        raise typer.Exit(code=1)


def ingest_with_workers(
    file: Path, config: Path | None, database: str | None, source: str | None, workers: int, batch_size: int
) -> None:
    """``ingest --workers N``: N processes on one PostgreSQL, partitioned by account."""
    from sqlalchemy.engine import make_url

    from smallwins.core.config import load_app_config
    from smallwins.core.workers import WorkerFailed, ingest_parallel

    try:  # refused before the store is opened: a SQLite file is not created for nothing
        url = chosen_database(database) or load_app_config(config_path(config)).database_url()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if make_url(url).get_backend_name() != "postgresql":
        raise fail("--workers needs PostgreSQL (SQLite takes one writer at a time); give --db postgresql://...")
    with opened(config, database) as smallwins:
        if source is not None and source not in smallwins.host.sources():
            raise fail(f"no installed source named '{source}'")
        url = smallwins.store.engine.url.render_as_string(hide_password=False)
        with file.open("rb") as handle:  # the workers parse it; the bar counts lines (a payload may give several)
            total = sum(1 for line in handle if line.strip())
        with progress_bar() as bar:
            task = bar.add_task(f"ingesting {escape(file.name)} with {workers} workers", total=total)
            try:
                totals = ingest_parallel(
                    config_path(config),
                    url,
                    file,
                    workers=workers,
                    source=source,
                    batch_size=batch_size,
                    on_progress=lambda done: bar.update(task, completed=done),
                )
            except WorkerFailed as exc:
                raise fail(str(exc)) from None
            bar.update(task, completed=total)
        for number, error in totals.rejections:
            errors.print(f"[yellow]{escape(str(file))}:{number}:[/] {escape(error)}", highlight=False, soft_wrap=True)
        if totals.rejected > len(totals.rejections):
            errors.print(f"[yellow]{totals.rejected - len(totals.rejections)} more refused lines left out[/]")
        for warning in totals.told():
            errors.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
        delivered = deliver_outbox(smallwins)
    console.print(
        f"{totals.stored} stored, {totals.duplicates} already known, {totals.rejected} rejected, "
        f"{totals.awarded} achievements awarded by {workers} workers; presenters updated: {delivered}"
    )
    if totals.rejected:
        raise typer.Exit(code=1)


@app.command("member")
def member_show(
    member: Annotated[str, typer.Argument(help="member id, PLATFORM:ACCOUNT, or display name")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the widget JSON instead")] = False,
) -> None:
    """Show a member: identities, points, rank, achievements and progress toward the next ones."""
    with opened(config, database, existing=True) as smallwins:
        member_id = member_id_of(smallwins, member)
        with smallwins.store.sessions() as session:
            snapshot = smallwins.snapshot(session, member_id)
    if as_json:
        from smallwins.presenters.web_widget import widget_document

        console.print_json(json.dumps(widget_document(snapshot)))
    else:
        console.print(member_card(snapshot))


@app.command()
def leaderboard(
    board: Annotated[str | None, typer.Option(help="a time-boxed board from the catalogue, e.g. weekly")] = None,
    period: Annotated[str | None, typer.Option(help="which period, e.g. 2026-W19; default: the current one")] = None,
    history: Annotated[bool, typer.Option("--history", help="list the board's past periods")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="rows to show")] = 10,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """The all-time leaderboard, or a weekly/monthly/season board (members in private mode are left out)."""
    with opened(config, database, existing=True) as smallwins, smallwins.store.sessions() as session:
        if board is None or board == leaderboards.ALL_TIME:
            if period is not None or history:
                raise fail("the all-time board has no periods: give --board with a weekly, monthly or season board")
            console.print(leaderboard_table(leaderboards.all_time(session, limit=limit)))
            return
        spec = smallwins.catalogue.leaderboards.get(board)
        if spec is None:
            known = ", ".join([leaderboards.ALL_TIME, *smallwins.catalogue.leaderboards])
            raise fail(f"no leaderboard '{board}'; known: {known}")
        if period is not None and not leaderboards.is_period_of(spec, period):
            raise fail(f"'{period}' is not a period of '{board}': {leaderboards.PERIOD_EXAMPLES[spec.period]}")
        if history:
            table = Table(title=escape(f"{spec.name}: periods"))
            table.add_column("period")
            table.add_column("members who scored", justify="right")
            for key, count in leaderboards.history(session, board):
                table.add_row(escape(key), str(count))
            console.print(table)
            return
        zone = ZoneInfo(smallwins.config.core.default_timezone)
        key = period or leaderboards.period_key(spec, smallwins.engine.clock(), zone) or "season"
        rows = leaderboards.standings(session, board, key, limit=limit)
        console.print(leaderboard_table(rows, title=escape(f"{spec.name} ({key})")))


def _moderate(
    action: str, member: str, achievement: str, reason: str, actor: str, config: Path | None, database: str | None
) -> None:
    with opened(config, database, existing=True) as smallwins:
        member_id = member_id_of(smallwins, member)
        operation = smallwins.engine.grant if action == "grant" else smallwins.engine.revoke
        try:
            changed = operation(member_id, achievement, actor=actor, reason=reason)
        except (KeyError, ValueError) as exc:
            raise fail(str(exc).strip("\"'")) from None
        deliver_outbox(smallwins)
    if changed:
        said = f"{achievement} {'granted' if action == 'grant' else 'revoked'} for member {member_id}"
    else:
        state = "already holds" if action == "grant" else "does not hold"
        said = f"nothing to do: member {member_id} {state} {achievement}"
    console.print(escape(said))


ReasonOption = Annotated[str, typer.Option("--reason", help="why; kept in the audit log")]
ActorOption = Annotated[str, typer.Option("--actor", help="who is acting (moderator name or platform id): audited")]


@app.command()
def grant(
    member: str,
    achievement: str,
    reason: ReasonOption,
    actor: ActorOption,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Grant an achievement by hand (audited). A grant is never undone by the rules."""
    _moderate("grant", member, achievement, reason, actor, config, database)


@app.command()
def revoke(
    member: str,
    achievement: str,
    reason: ReasonOption,
    actor: ActorOption,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke an achievement (audited). The rules will not award it again."""
    _moderate("revoke", member, achievement, reason, actor, config, database)


@app.command()
def plugins(config: ConfigOption = None) -> None:
    """What is installed (entry points in the 'smallwins' group) and what plugins.toml enables."""
    from smallwins.core.components import enabled_components
    from smallwins.core.config import load_app_config

    host = PluginHost()
    try:
        path = config_path(config)
        enabled = enabled_components(load_app_config(path), host) if path.exists() else {}
    except ConfigError as exc:
        raise fail(str(exc)) from None
    components = host.components()
    title = "Plugins: [plugins.PLUGIN] enables a plugin, [plugins.PLUGIN.COMPONENT] configures one part"
    table = Table(title=escape(title))
    for column in ("plugin", "component", "distribution", "module", "enabled", "settings"):
        table.add_column(column)
    for plugin in PluginHost().installed():
        rules = [p.removeprefix("rule type:") for p in plugin.provides if p.startswith("rule type:")]
        rows: list[tuple[str, str | None]] = [
            (f"{kind} {name}", name)
            for name, spec in components.get(plugin.name, {}).items()
            for kind in ["source" if isinstance(spec, SourceSpec) else "presenter"]
        ]
        rows += [(f"rule type {name}", None) for name in rules]
        for label, component in rows:
            if component is None:
                state, settings = "always", ""
            elif component in enabled:
                state, settings = "yes", json.dumps(enabled[component].settings.model_dump(mode="json"))
            else:
                state, settings = "no", ""
            table.add_row(
                escape(plugin.name),
                escape(label),
                escape(plugin.distribution or ""),
                escape(plugin.module),
                state,
                escape(settings),
            )
    console.print(table)


@app.command()
def present(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Deliver pending outbox changes to every enabled presenter."""
    with opened(config, database, existing=True) as smallwins:
        console.print(f"applied: {deliver_outbox(smallwins)}")


@outbox_app.callback(invoke_without_command=True)
def outbox_status(ctx: typer.Context, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Each enabled presenter's pending and parked changes, and the failure it is stuck on."""
    if ctx.invoked_subcommand is not None:
        return
    from smallwins.core import outbox

    with opened(config, database, existing=True) as smallwins:
        presenters = sorted(n for n, c in smallwins.components.items() if isinstance(c.spec, PresenterSpec))
        table = Table(title="Presenters")
        for column in ("presenter", "pending", "parked", "status"):
            table.add_column(column)
        for name in presenters:
            state = outbox.delivery_state(smallwins.store, name)
            table.add_row(name, str(state["pending"]), str(state["parked"]), escape(str(state["status"])))
        console.print(table)
        parked = outbox.parked_changes(smallwins.store)
        if parked:
            rows = Table(title="Parked changes (smallwins outbox retry)")
            for column in ("change", "presenter", "member", "kind", "attempts", "parked at (UTC)", "reason"):
                rows.add_column(column)
            for item in parked:
                rows.add_row(
                    str(item.outbox_id),
                    item.presenter,
                    str(item.member_id),
                    item.kind,
                    str(item.attempts),
                    f"{item.parked_at:%Y-%m-%d %H:%M}",
                    escape(item.reason),
                )
            console.print(rows)


@outbox_app.command("retry")
def outbox_retry(
    change: Annotated[list[int] | None, typer.Argument(help="parked change ids (default: all)")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Apply parked changes again with each member's current standing (after fixing the cause)."""

    async def retry(smallwins: App) -> tuple[int, int]:
        try:
            return await smallwins.retry_parked(set(change) if change else None)
        finally:
            await smallwins.close_presenters()

    with opened(config, database, existing=True) as smallwins:
        applied, failed = anyio.run(retry, smallwins)
    console.print(f"{applied} applied, {failed} still failing")
    if failed:
        raise typer.Exit(code=1)


def stop_on_signals() -> None:
    """Ctrl-C, SIGINT and SIGTERM (systemd, docker stop) all stop ``run`` and ``serve`` the same
    clean way.

    A process started in the background by a non-interactive shell inherits SIGINT *ignored*;
    a long-running service must still stop when its supervisor sends it. SIGTERM is turned into
    SIGINT rather than an exception raised wherever the process happens to be: inside the event
    loop, the loop's own SIGINT handler cancels the main task and everything unwinds in order
    (an exception raised from the handler surfaced as a traceback during the loop's shutdown,
    after uvicorn had passed the signal on).
    """

    def stop(signum: int, frame: object) -> None:
        signal.raise_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)


@app.command()
def run(
    config: ConfigOption = None,
    database: DatabaseOption = None,
    outbox_interval: Annotated[float, typer.Option(min=0.1, help="seconds between outbox deliveries")] = 2.0,
) -> None:
    """Run the enabled sources' capture tasks and deliver to presenters until Ctrl-C."""
    from smallwins.core.runtime import run as run_forever

    log_level, log_format = SHARED.get("log_level"), SHARED.get("log_format")
    configure_logging(
        log_level if isinstance(log_level, str) else "INFO",  # a long-running process says what it does
        log_format="json" if log_format == "json" else "console",
    )
    stop_on_signals()
    with opened(config, database) as smallwins:
        try:
            anyio.run(lambda: run_forever(smallwins, outbox_interval=outbox_interval))
        except KeyboardInterrupt:
            console.print("stopped")
        except ExceptionGroup as group:  # a capture task found its settings unusable (a secret unset)
            raise config_failure(group) from None
        except ConfigError as exc:
            raise fail(str(exc)) from None


@app.command()
def profile(
    member: Annotated[str, typer.Argument(help="member id, PLATFORM:ACCOUNT, or display name")],
    timezone: Annotated[str | None, typer.Option(help="IANA zone for streaks, e.g. America/New_York")] = None,
    private: Annotated[bool | None, typer.Option("--private/--public", help="leave public leaderboards")] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Set a member's time zone (streaks are recounted in it) or leaderboard privacy."""
    from smallwins.core.config import check_timezone

    if timezone is None and private is None:
        raise fail("nothing to change: give --timezone ZONE, --private or --public")
    if timezone is not None:
        try:
            check_timezone(timezone)
        except ValueError as exc:
            raise fail(str(exc)) from None
    with opened(config, database, existing=True) as smallwins:
        member_id = member_id_of(smallwins, member)
        smallwins.engine.set_profile(member_id, timezone=timezone, private=private)
        deliver_outbox(smallwins)
    console.print(f"member {member_id} updated")


@voucher_app.command("claim")
def voucher_claim(code: str, config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Claim a voucher; refused once claimed or after its claim window."""
    from smallwins.core.vouchers import VoucherError

    with opened(config, database, existing=True) as smallwins:
        try:
            voucher = smallwins.engine.claim_voucher(code)
        except VoucherError as exc:
            raise fail(str(exc)) from None
    console.print(escape(f"voucher {code} claimed by member {voucher.member_id} for {voucher.achievement_id}"))


@voucher_app.command("stats")
def voucher_stats(config: ConfigOption = None, database: DatabaseOption = None) -> None:
    """Issued, claimed and expired vouchers per achievement, and the claim rate."""
    from smallwins.core.vouchers import claim_stats

    with opened(config, database, existing=True) as smallwins, smallwins.store.sessions() as session:
        console.print(vouchers_table(claim_stats(session, now=smallwins.engine.clock())))


@app.command()
def backfill(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would change; write nothing")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="members per transaction")] = 100,
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Recompute every member's awards from stored history after the catalogue changed.

    Audited, in batches, resumable: run it again after an interruption and it continues.
    """
    from smallwins.core import backfill as backfills

    with opened(config, database, existing=True) as smallwins:
        total = backfills.count_members(smallwins.engine)
        with progress_bar() as bar:
            task = bar.add_task("planning" if dry_run else "backfilling", total=total)
            step = lambda: bar.advance(task)  # noqa: E731 - a one-line progress callback
            if dry_run:
                tally = backfills.preview(smallwins.engine, on_member=step)
            else:
                tally = backfills.run(smallwins.engine, batch_size=batch_size, on_member=step)
        if not dry_run:
            deliver_outbox(smallwins)
    console.print(backfill_table(tally, title="Backfill preview (dry run)" if dry_run else "Backfill applied"))


@app.command("migrate-store")
def migrate_store(
    to: Annotated[str, typer.Option("--to", help="SQLAlchemy URL of an empty database, e.g. postgresql://host/smallwins")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Copy the whole store (every table, ids kept) into an empty database, then compare counts.

    The path from the embedded SQLite to PostgreSQL: stop `smallwins run` first, copy, then point
    `\\[smallwins.store] url` in plugins.toml at the new database. The source is only read.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from smallwins.adapters.web import models as web_models  # noqa: F401  (its tables are in every store)
    from smallwins.core.copy_store import CopyError, copy_store, table_counts

    with opened(config, database, existing=True) as smallwins:
        total = sum(table_counts(smallwins.store).values())
        with progress_bar() as bar:
            task = bar.add_task("copying", total=total)
            try:
                copies = copy_store(smallwins.store, to, on_rows=lambda _table, n: bar.advance(task, n))
            except CopyError as exc:
                raise fail(str(exc)) from None
            except SQLAlchemyError as exc:  # one transaction: the target is left as it was
                raise fail(f"the copy failed and wrote nothing: {getattr(exc, 'orig', None) or exc}") from None
    table = Table(title="Copied, counted on both sides")
    for column in ("table", "source rows", "target rows"):
        table.add_column(column, justify="right" if column != "table" else "left")
    for copy in copies:
        table.add_row(copy.name, f"{copy.source_rows:,}", f"{copy.target_rows:,}")
    console.print(table)
    console.print(escape(f"now set [smallwins.store] url = \"{to}\" in plugins.toml"), highlight=False)


@link_app.command("code")
def link_code(
    account: Annotated[str, typer.Argument(help="PLATFORM:ACCOUNT asking for the code")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Issue a one-time link code for the member behind ACCOUNT."""
    with opened(config, database, existing=True) as smallwins:
        code = smallwins.engine.issue_link_code(parse_account(account))
    console.print(f"link code for {escape(account)}: [bold]{code}[/] (present it from your other account)")


@link_app.command("redeem")
def link_redeem(
    code: str,
    account: Annotated[str, typer.Argument(help="PLATFORM:ACCOUNT presenting the code")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Present a link code from another account: the two members become one."""
    with opened(config, database, existing=True) as smallwins:
        try:
            survivor = smallwins.engine.redeem_link_code(code, parse_account(account))
        except IdentityError as exc:
            raise fail(str(exc)) from None
        deliver_outbox(smallwins)
    console.print(f"{escape(account)} is now linked to member {survivor}")


@app.command()
def unlink(
    account: Annotated[str, typer.Argument(help="PLATFORM:ACCOUNT to detach")],
    config: ConfigOption = None,
    database: DatabaseOption = None,
) -> None:
    """Detach an identity (and its history) into a member of its own."""
    with opened(config, database, existing=True) as smallwins:
        try:
            original, detached = smallwins.engine.unlink(parse_account(account))
        except IdentityError as exc:
            raise fail(str(exc)) from None
        deliver_outbox(smallwins)
    console.print(f"{escape(account)} is now member {detached}; member {original} keeps the rest")


@app.command()
def demo(
    db: Annotated[Path, typer.Option(help="SQLite file to create (replaced if it exists)")] = Path("smallwins-demo.db"),
    members: Annotated[int, typer.Option(min=2)] = 400,
    weeks: Annotated[int, typer.Option(min=1)] = 6,
    seed: int = 7,
    config: ConfigOption = None,
    serve: Annotated[bool, typer.Option("--serve", help="then serve it on the web (see `smallwins serve`)")] = False,
) -> None:
    """Generate a synthetic community, ingest it into a fresh SQLite file, and show the results."""
    from smallwins.demo import (
        DEMO_BATCH_SIZE,
        DEMO_START,
        LiveClock,
        generate_community,
        link_accounts,
        seed_badge_effect,
        simulate_voucher_claims,
    )

    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    community = generate_community(members=members, weeks=weeks, seed=seed)
    console.print(
        f"[bold]smallwins demo[/]: {members} members over {weeks} weeks, "
        f"{len(community.events)} deliveries ({community.duplicates} of them retried duplicates) into {escape(str(db))}"
    )
    demo_end = DEMO_START + timedelta(weeks=weeks)
    with opened(config, f"sqlite:///{db.resolve()}") as smallwins:
        live = LiveClock(DEMO_START)  # delivered as it happens: vouchers open when awards are made
        smallwins.engine.clock = live
        # Members respond to a badge they see; the catalogue's holdout hides it from some (README "Measurement").
        effect = seed_badge_effect(smallwins.engine, smallwins.catalogue, community, end=demo_end, seed=seed)
        if effect is not None:
            console.print(
                escape(
                    f"Seeded effect: an earner of {effect.achievement_id} who sees it and would not have come back "
                    f"within {effect.window_days} days comes back with probability {effect.boost:.0%}; true lift "
                    f"in this community {effect.true_lift:+.1%} over {effect.earners} earners "
                    f"({effect.return_visits} return visits added). `smallwins report` should recover it."
                )
            )
        # In small batches, as a live source delivers: the clock follows the stream only as far as
        # the batch being ingested, so awards (and their vouchers' claim windows) come when earned.
        report = ingest_with_progress(
            smallwins, live.follow(community.events), "ingesting community history", total=len(community.events),
            batch_size=DEMO_BATCH_SIZE,
        )
        smallwins.engine.clock = lambda: demo_end  # the rest of the story is told as of its last day
        linked = link_accounts(smallwins.engine, community)
        claims = simulate_voucher_claims(smallwins.engine, seed=seed)
        delivered = deliver_outbox(smallwins)
        console.print(
            f"{report.stored} events stored, {report.duplicates} duplicates dropped, "
            f"{report.awarded} achievements awarded, {linked} members linked their accounts, "
            f"{claims} vouchers claimed; presenters applied {delivered}"
        )
        with smallwins.store.sessions() as session:
            console.print(catalogue_table(smallwins.catalogue, views.rarity(session)))
            console.print(leaderboard_table(leaderboards.all_time(session, limit=5)))
            zone = ZoneInfo(smallwins.config.core.default_timezone)
            for board_id, moment in (("weekly", demo_end - timedelta(days=1)), ("launch", None)):
                spec = smallwins.catalogue.leaderboards.get(board_id)
                if spec is not None:
                    key = leaderboards.period_key(spec, moment, zone) if moment else "season"
                    rows = leaderboards.standings(session, board_id, key or "season", limit=5)
                    console.print(leaderboard_table(rows, title=escape(f"{spec.name} ({key})")))
            from smallwins.core.vouchers import claim_stats

            console.print(vouchers_table(claim_stats(session, now=demo_end)))
            featured = views.most_decorated(session, [str(first) for first, _ in community.links])
            if featured is not None:
                console.print(member_card(smallwins.snapshot(session, featured)))
    console.print(
        escape(f"Explore: smallwins member ID --db sqlite:///{db}   |   smallwins leaderboard --db sqlite:///{db}")
    )
    if serve:
        from smallwins.adapters.web.commands import serve_demo

        serve_demo(config, f"sqlite:///{db.resolve()}")


# The web adapter's commands (`smallwins links ...`, `smallwins serve`); registered last because
# they use the helpers above. They import web libraries only when run.
from smallwins.adapters.web.commands import register as _register_web_commands  # noqa: E402

_register_web_commands(app)

# The email plugin's command (`smallwins newsletter`); it imports Jinja2 only when run.
from smallwins.adapters.email.commands import register as _register_email_commands  # noqa: E402

_register_email_commands(app)

# The YouTube plugin's commands (`smallwins youtube status|backfill`); Google's client is imported
# only by backfill.
from smallwins.adapters.youtube.commands import register as _register_youtube_commands  # noqa: E402

_register_youtube_commands(app)

# The measurement report (`smallwins report`); matplotlib is imported only for --html.
from smallwins.measure.commands import register as _register_report_commands  # noqa: E402

_register_report_commands(app)

# The Discord plugin's commands (`smallwins discord backfill|sync`); discord.py is imported when run.
from smallwins.adapters.discord.commands import register as _register_discord_commands  # noqa: E402

_register_discord_commands(app)
