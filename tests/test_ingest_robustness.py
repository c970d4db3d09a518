"""No input byte sequence produces a traceback or loses a valid event: `smallwins ingest` on
random bytes, NULs, lone surrogates, huge lines and broken JSON, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from smallwins.cli import app
from smallwins.core.store import StoredEvent, open_store
from tests.conftest import REPO

runner = CliRunner()


def good_line(n: int) -> bytes:
    event = {
        "id": f"ok{n}",
        "source": "discord",
        "type": "message.posted",
        "subject": f"member{n % 7}",
        "time": "2026-03-02T13:00:00+01:00",
        "data": {"display_name": f"Member [bold]{n % 7}[/]"},
    }
    return json.dumps(event).encode()


BAD_LINES = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.just(
        b'{"id": "x", "source": "discord", "type": "message.posted", "subject": "a\\u0000b", '
        b'"time": "2026-03-02T13:00:00Z"}'
    ),
    st.just(
        b'{"id": "y", "source": "discord", "type": "message.posted", "subject": "s", '
        b'"time": "2026-03-02T13:00:00Z", "data": {"k": "\\ud800"}}'
    ),
    st.just(b'{"id": "z", "source": "Bad Source!", "type": "message.posted", "subject": "s", "time": "x"}'),
    st.just(b"\xff\xfe not utf-8 \xc3\x28"),
    st.just(
        b'{"id": "big", "source": "discord", "type": "message.posted", "subject": "s", '
        b'"time": "2026-03-02T13:00:00Z", "data": {"blob": "' + b"a" * 2_000_000 + b'"}}'
    ),
    st.just(b"[1, 2, 3]"),
    st.just(b'{"id": "trunc'),
)


def workdir(tmp_path: Path) -> Path:
    shutil.copy(REPO / "achievements.toml", tmp_path)
    (tmp_path / "plugins.toml").write_text(
        '[smallwins]\ncatalogue = "achievements.toml"\n[plugins.jsonl]\nenabled = true\n'
    )
    return tmp_path


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.integers(0, 10_000), BAD_LINES), min_size=1, max_size=25))
def test_every_valid_line_is_stored_whatever_surrounds_it(lines, database_url: str, tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    if database_url.startswith("postgresql"):
        from tests.conftest import reset_postgres

        reset_postgres(database_url)
    else:
        Path(database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    raw = [good_line(item) if isinstance(item, int) else item for item in lines]
    (folder / "events.jsonl").write_bytes(b"\n".join(raw) + b"\n")
    result = runner.invoke(
        app, ["ingest", str(folder / "events.jsonl"), "--db", database_url, "-c", str(folder / "plugins.toml")]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    expected = {f"ok{item}" for item in lines if isinstance(item, int)}
    store = open_store(database_url)
    with store.sessions() as session:
        stored = set(session.scalars(select(StoredEvent.event_id)))
    store.close()
    assert expected <= stored
    assert stored == expected, "nothing invalid got in"
    bad = [item for item in lines if not isinstance(item, int) and not blank(item)]
    assert result.exit_code == (1 if bad else 0), result.output


def blank(line: bytes) -> bool:
    """A line ingest skips silently (whitespace only)."""
    try:
        return not line.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


def test_bad_lines_are_reported_by_number_with_brackets_intact(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    bad_source = (
        b'{"id": "1", "source": "Bad!", "type": "message.posted", "subject": "s", "time": "2026-03-02T13:00:00Z"}'
    )
    (folder / "events.jsonl").write_bytes(b"\n".join([good_line(1), b"\xff\xfe", bad_source, good_line(2)]) + b"\n")
    result = runner.invoke(app, ["ingest", str(folder / "events.jsonl"), "-c", str(folder / "plugins.toml")])
    assert result.exit_code == 1
    assert "events.jsonl:2:" in result.output and "not valid UTF-8" in result.output
    assert "events.jsonl:3:" in result.output and "^[a-z][a-z0-9_-]{0,39}$" in result.output
    card = runner.invoke(app, ["member", "discord:member1", "-c", str(folder / "plugins.toml")])
    assert "Member [bold]1[/]" in card.output, "a display name is printed as written, not as markup"
