"""``smallwins report``: the measurement report in the terminal, and as HTML with charts."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``report`` to the command line (imported lazily: matplotlib only when asked for HTML)."""
    from smallwins.cli import ConfigOption, DatabaseOption, console, errors, fail, opened

    @app.command()
    def report(
        html: Annotated[
            Path | None, typer.Option("--html", help="also write a self-contained HTML report here")
        ] = None,
        as_of: Annotated[
            datetime | None,
            typer.Option("--as-of", help="measure as of this UTC time (default: the end of the last active day)"),
        ] = None,
        launch_window: Annotated[int, typer.Option(min=1, help="days before/after a launch to compare")] = 28,
        config: ConfigOption = None,
        database: DatabaseOption = None,
    ) -> None:
        """Does it work? Retention cohorts, the metric table, holdout lift (see README "Measurement")."""
        from smallwins.measure.report import NothingToReport, build_report
        from smallwins.measure.terminal import report_tables

        # A naive time is UTC; one with an offset is the instant it names, shown in UTC.
        moment = None if as_of is None else as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
        with (
            opened(config, database, existing=True) as smallwins,
            smallwins.store.sessions() as session,
            errors.status("measuring"),
        ):
            try:
                built = build_report(session, smallwins.catalogue, as_of=moment, launch_window_days=launch_window)
            except NothingToReport as exc:
                raise fail(str(exc)) from None
        console.print(report_tables(built))
        if html is not None:
            try:
                from smallwins.measure.html import write_html
            except ImportError as exc:  # matplotlib or jinja2 missing
                raise fail(f"the HTML report needs the report extra: pip install 'smallwins[report]' ({exc})") from None
            with errors.status("drawing charts..."):
                written = write_html(built, html)
            console.print(f"HTML report with charts: {written}")
