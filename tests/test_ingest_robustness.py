"""No input byte sequence produces a traceback or loses a valid event: `smallwins ingest` on
random bytes, NULs, lone surrogates, huge lines and broken JSON, on SQLite and PostgreSQL; and
every event that passes validation stores on both backends, so they accept and refuse the same."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from smallwins.adapters.jsonl import JsonlSettings, follow
from smallwins.cli import app
from smallwins.core.app import build_app
from smallwins.core.contract import PluginContext
from smallwins.core.events import (
    MAX_DATA_DEPTH,
    MAX_DISPLAY_NAME,
    MAX_STORED_INT,
    MIN_STORED_INT,
    Event,
    InvalidEvent,
    parse_event,
)
from smallwins.core.store import StoredEvent, open_store
from tests.conftest import REPO

runner = CliRunner()
BASE = {"id": "e1", "source": "discord", "type": "message.posted", "subject": "s", "time": "2026-03-02T13:00:00Z"}


# -- validation: what no database stores alike is refused, naming where -----------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"subject": "a\x00b"}, "'subject'"),
        ({"id": "x\x00"}, "'id'"),
        ({"proof": "https://x/\x00"}, "'proof'"),
        ({"type": "message.posted\x00"}, "'type'"),
        ({"data": {"k\x00": 1}}, "(a key)"),
        ({"data": {"a": [{"b": ["ok", "bad\x00"]}]}}, "a[0].b[1]: contains a NUL"),
        ({"subject": "\ud800"}, "lone surrogate"),
        ({"data": {"\udfff": "x"}}, "lone surrogate"),
        ({"data": {"x": math.nan}}, "finite"),
        ({"data": {"x": [math.inf]}}, "finite"),
        ({"data": {"x": 1e400}}, "finite"),  # JSON text 1e400 parses to inf
        ({"data": {"n": 2**64}}, "n: is 18446744073709551616, outside the 64-bit range"),
        ({"data": {"a": [-(2**63) - 1]}}, "a[0]: is -9223372036854775809, outside the 64-bit range"),
        ({"data": {"d": json.loads("[" * (MAX_DATA_DEPTH + 5) + "]" * (MAX_DATA_DEPTH + 5))}}, "nested deeper"),
        ({"data": {"target": "discord:" + "x" * 300}}, "at most 250"),
        ({"data": {"retracts": "discord:" + "x" * 300}}, "at most 250"),
        ({"data": {"display_name": 5}}, "display_name must be text"),
        ({"data": {"display_name": {"a": 1}}}, "display_name must be text"),
        ({"time": "0001-01-01T00:00:00+05:00"}, "out of range"),
        ({"time": "9999-12-31T23:59:59-05:00"}, "out of range"),
        ({"time": "1970-01-01T00:00:00Z"}, "zero or mis-parsed"),
        ({"subject": "x" * 321}, "'subject'"),
    ],
)
def test_unstorable_events_are_refused_naming_the_field(change: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**BASE, **change})
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "1", "x": NaN}', "NaN is not a JSON value"),
        ('{"id": "1", "x": -Infinity}', "-Infinity is not a JSON value"),
        ("[" * 100_000, "nested too deeply"),
        ('{"x": ' + "9" * 5000 + "}", "thousands of digits"),
        ('{"id": "trunc', "not valid JSON"),
    ],
)
def test_json_python_parses_loosely_or_not_at_all_is_a_reason(line: str, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(line)


def test_the_widest_integers_a_store_keeps_are_accepted() -> None:
    event = parse_event({**BASE, "data": {"max": 2**63 - 1, "min": -(2**63), "flag": True}})
    assert event.data == {"max": 2**63 - 1, "min": -(2**63), "flag": True}


@pytest.mark.parametrize("length", [500, 5_000, 50_000])  # longer than data may be: cut before it is measured
def test_a_long_display_name_is_cut_not_refused(length: int) -> None:
    event = parse_event({**BASE, "data": {"display_name": "n" * length}})
    assert event.data["display_name"] == "n" * MAX_DISPLAY_NAME


# -- any event that validates stores, on both backends -----------------------------------------

SAFE_CHAR = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
SOME_TEXT = st.text(SAFE_CHAR, min_size=1, max_size=10).filter(str.strip)
ODD_TEXT = st.sampled_from(["", " \t", "a\x00b", "\x00", "\ud800", "x\udfff"])


def sized(low: int, high: int, fill: str, prefix: str = "") -> st.SearchStrategy[str]:
    """Text from ``low`` to ``high`` characters long: column widths are where backends differ."""
    return st.integers(low, high).map(lambda n: prefix + fill * (n - len(prefix)))


SAFE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(MIN_STORED_INT, MAX_STORED_INT)  # wider ones are refused (a test above)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(SAFE_CHAR, max_size=10),  # small enough that a valid event stays under data's 4096 bytes
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(SAFE_CHAR, max_size=6), inner, max_size=3),
    max_leaves=12,
)
OFFSET = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
KEYS = st.sampled_from(["discord:p1", "youtube:p2", "discord:p2"])
#: Events that must be accepted, many right at a column's width.
VALID_EVENT = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["p1", "p2"]) | SOME_TEXT | sized(190, 200, "i"),
        "source": st.sampled_from(["discord", "youtube"]) | sized(1, 40, "s"),
        "type": st.sampled_from(
            ["message.posted", "reaction.added", "moderator.approved", "message.deleted", "link.code_presented"]
        )
        | sized(3, 80, "y", "a."),
        "subject": st.sampled_from(["ann", "bob"]) | SOME_TEXT | sized(300, 320, "u"),
        "time": st.datetimes(datetime(2024, 1, 1), datetime.now() - timedelta(days=1), timezones=OFFSET).map(
            datetime.isoformat
        ),
    },
    optional={
        "proof": st.text(SAFE_CHAR, max_size=30) | sized(1990, 2000, "p"),
        "data": st.fixed_dictionaries(
            {},
            optional={
                "display_name": SOME_TEXT | sized(190, 400, "n"),  # a long one is cut, not refused
                "target": KEYS | sized(240, 250, "t", "discord:"),
                "retracts": KEYS | sized(240, 250, "r", "discord:"),
                "staff": st.booleans(),
                "code": st.text(SAFE_CHAR, max_size=20),
                "extra": SAFE_JSON,
            },
        ),
    },
)
DEEP = json.loads("[" * 40 + "]" * 40)
#: One field made unstorable or out of bounds: each must be refused, never half-stored.
ODD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": ODD_TEXT | sized(201, 205, "i"),
    "source": ODD_TEXT | sized(41, 43, "s") | st.just("Bad!"),
    "type": ODD_TEXT | sized(81, 83, "y", "a.") | st.just("Bad"),
    "subject": ODD_TEXT | sized(321, 325, "u"),
    "time": st.one_of(
        st.datetimes(max_value=datetime(1970, 1, 1), timezones=OFFSET),
        st.datetimes(min_value=datetime.now() + timedelta(days=2), timezones=OFFSET),
    ).map(datetime.isoformat),
    "proof": ODD_TEXT.filter(str.strip) | sized(2001, 2003, "p"),
    "data": st.sampled_from(
        [
            {"target": "discord:" + "t" * 243},
            {"retracts": "x:" + "r" * 300},
            {"display_name": 5},
            {"k": math.nan},
            {"k": [math.inf]},
            {"k": 2**64},
            {"k": {"n": -(2**63) - 1}},
            {"k\x00": 1},
            {"k": {"n": "\ud800"}},
            {"deep": DEEP},
            {"staff": 1},
            {"blob": "a" * 5000},
        ]
    ),
}
#: ``(payload, whether it must be accepted)``.
CASE = VALID_EVENT.map(lambda payload: (payload, True)) | st.tuples(
    VALID_EVENT, st.sampled_from(sorted(ODD_FIELDS))
).flatmap(lambda pair: ODD_FIELDS[pair[1]].map(lambda odd: ({**pair[0], pair[1]: odd}, False)))
_examples = itertools.count()


def as_line(payload: dict[str, Any]) -> str:
    """JSON as a careless sender writes it: lone surrogates escaped, NaN as Python writes it."""
    return json.dumps(payload)


def tagged(payload: dict[str, Any], tag: str) -> dict[str, Any]:
    """The payload with ids (and the ids its target/retracts name) ending in this example's tag,
    so examples share one database; a long id keeps its length, an edge case stays one."""

    def retag(ident: str) -> str:
        if not ident.strip():
            return ident  # a blank id stays blank (and refused)
        return ident[: -len(tag)] + tag if len(ident) > 150 else ident + tag

    data = payload.get("data")
    if isinstance(data, dict):
        data = {k: retag(v) if k in ("target", "retracts") and v in PLAIN_KEYS else v for k, v in data.items()}
        payload = {**payload, "data": data}
    return {**payload, "id": retag(str(payload["id"]))}


PLAIN_KEYS = {"discord:p1", "youtube:p2", "discord:p2"}


def checked(line: str) -> Event | None:
    try:
        return parse_event(line)
    except InvalidEvent:
        return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(CASE, min_size=1, max_size=8))
def test_every_event_that_validates_is_stored(cases: list[tuple[dict[str, Any], bool]], database_url: str) -> None:
    """Valid events (many at a column's width) are accepted and stored on either backend; one odd
    field gets an event refused, whatever sits beside it."""
    from smallwins.core.config import load_catalogue
    from smallwins.core.engine import Engine
    from smallwins.core.plugins import PluginHost

    tag = f"~v{next(_examples)}"
    lines = [as_line(tagged(payload, tag)) for payload, _ in cases]
    verdicts = [checked(line) for line in lines]
    assert [event is not None for event in verdicts] == [valid for _, valid in cases]
    accepted = [event for event in verdicts if event is not None]
    store = open_store(database_url)  # one fresh database per test; each example uses ids of its own
    try:
        engine = Engine(store, load_catalogue(REPO / "achievements.toml", PluginHost().rule_types()))
        list(engine.ingest_many(accepted))
        with store.sessions() as session:
            rows = session.execute(
                select(StoredEvent.source, StoredEvent.event_id, StoredEvent.subject, StoredEvent.data)
            ).all()
    finally:
        store.close()
    stored = {(row.source, row.event_id): row for row in rows if row.event_id.endswith(tag)}
    assert set(stored) == {(e.source, e.id) for e in accepted}
    deliveries: dict[tuple[str, str], list[Event]] = {}
    for event in accepted:
        deliveries.setdefault((event.source, event.id), []).append(event)
    for key, events in deliveries.items():  # a re-delivery with other content: the engine keeps one
        assert any(
            stored[key].subject == event.subject and same_json(stored[key].data, event.data) for event in events
        ), "what is stored is what was sent"


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON (PostgreSQL's jsonb keeps numbers as numeric: 1e300 comes back an int)."""
    return json.loads(json.dumps(left), parse_int=float) == json.loads(json.dumps(right), parse_int=float)


# -- the ingest command: bad lines reported, good lines stored, never a traceback -------------


def good_line(tag: str, n: int) -> bytes:
    event = {
        "id": f"{tag}ok{n}",
        "source": "discord",
        "type": "message.posted",
        "subject": f"member{n % 7}",
        "time": "2026-03-02T13:00:00+01:00",
        "data": {"display_name": f"Member [bold]{n % 7}[/]"},
    }
    return json.dumps(event).encode()


def event_line(**change: Any) -> bytes:
    return json.dumps({**BASE, **change}).encode()


BAD_LINES = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b),
    st.just(b"\x00" * 50),
    st.just(event_line(id="nul", subject="a\x00b")),
    st.just(event_line(id="sur", data={"k": "\ud800"})),
    st.just(event_line(id="nan", data={"k": math.nan})),
    st.just(event_line(id="bigint", data={"k": 18446744073709551616})),
    st.just(event_line(id="deep").replace(b'"time"', b'"data": ' + b"[" * 5000 + b"]" * 5000 + b', "time"')),
    st.just(event_line(id="old", time="0001-01-01T00:00:00+05:00")),
    st.just(event_line(id="src", source="Bad Source!")),
    st.just(b"\xff\xfe not utf-8 \xc3\x28"),
    st.just(b"\xed\xa0\x80"),  # a surrogate encoded as UTF-8: not valid UTF-8
    st.just(event_line(id="big", data={"blob": "a" * 2_000_000})),  # a 2 MB line
    st.just(b"x" * 2_000_000),  # 2 MB of nothing
    st.just(b"[1, 2, 3]"),
    st.just(b'{"id": "trunc'),
    CASE.map(lambda case: as_line(case[0]).encode()),  # random events, many valid
)
GOOD = st.integers(0, 10_000).map(lambda n: ("good", n))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(GOOD, BAD_LINES), min_size=1, max_size=25), crlf=st.booleans())
def test_every_valid_line_is_stored_whatever_surrounds_it(
    lines: list[tuple[str, int] | bytes], crlf: bool, database_url: str, tmp_path: Path
) -> None:
    folder = workdir(tmp_path)
    tag = f"i{next(_examples)}-"
    raw = [good_line(tag, item[1]) if isinstance(item, tuple) else item for item in lines]
    (folder / "events.jsonl").write_bytes(b"".join(line + (b"\r\n" if crlf else b"\n") for line in raw))
    before = stored_keys(database_url)

    result = runner.invoke(
        app, ["ingest", str(folder / "events.jsonl"), "--db", database_url, "-c", str(folder / "plugins.toml")]
    )

    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    accepted = [event for line in raw if (event := checked_bytes(line)) is not None]
    new = stored_keys(database_url) - before
    assert {(e.source, e.id) for e in accepted} - before == new, "every valid line stored, nothing invalid"
    refused = sum(1 for line in raw if not blank(line) and checked_bytes(line) is None)
    assert f"{refused} rejected" in result.output
    assert result.exit_code == (1 if refused else 0), result.output
    assert "Traceback" not in result.output


def checked_bytes(line: bytes) -> Event | None:
    try:
        return checked(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def blank(line: bytes) -> bool:
    """A line ingest skips silently (whitespace only)."""
    try:
        return not line.decode("utf-8").strip()
    except UnicodeDecodeError:
        return False


def stored_keys(url: str) -> set[tuple[str, str]]:
    store = open_store(url)
    try:
        with store.sessions() as session:
            return {
                (row.source, row.event_id) for row in session.execute(select(StoredEvent.source, StoredEvent.event_id))
            }
    finally:
        store.close()


def workdir(tmp_path: Path) -> Path:
    if not (tmp_path / "plugins.toml").exists():
        shutil.copy(REPO / "achievements.toml", tmp_path)
        (tmp_path / "plugins.toml").write_text(
            '[smallwins]\ncatalogue = "achievements.toml"\n[plugins.jsonl]\nenabled = true\n'
        )
    return tmp_path


# -- what is printed is what was written --------------------------------------------------------


def test_bad_lines_are_reported_by_number_with_brackets_intact(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    bad_source = event_line(id="1", source="Bad!")
    (folder / "events.jsonl").write_bytes(
        b"\n".join([good_line("", 1), b"\xff\xfe", bad_source, event_line(id="n", subject="a\x00"), good_line("", 2)])
        + b"\n"
    )
    config = ["-c", str(folder / "plugins.toml")]
    result = runner.invoke(app, ["ingest", str(folder / "events.jsonl"), *config], terminal_width=200)
    assert result.exit_code == 1
    assert "events.jsonl:2:" in result.output and "not valid UTF-8" in result.output
    assert "events.jsonl:3:" in result.output and "^[a-z][a-z0-9_-]{0,39}$" in result.output
    assert "events.jsonl:4:" in result.output and "'subject': Value error, contains a NUL" in result.output
    assert "2 stored" in result.output and "3 rejected" in result.output
    card = runner.invoke(app, ["member", "discord:member1", *config], terminal_width=200)
    assert "Member [bold]1[/]" in card.output, "a display name is printed as written, not as markup"
    board = runner.invoke(app, ["leaderboard", *config], terminal_width=200)
    assert "Member [bold]1[/]" in board.output and "Member [bold]2[/]" in board.output
    catalogue = runner.invoke(app, ["grant", "discord:member2", "[red]nope", "--reason", "x", "--actor", "m", *config])
    assert "no achievement '[red]nope'" in catalogue.output


def test_a_file_name_with_brackets_shows_in_the_progress_bar(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    path = folder / "[bold]events.jsonl"
    path.write_bytes(good_line("", 1) + b"\n")
    result = runner.invoke(app, ["ingest", str(path), "-c", str(folder / "plugins.toml")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "ingesting [bold]events.jsonl" in result.output


# -- the jsonl capture task: the same rules while following a file ----------------------------


def following(folder: Path, incoming: Path, steps: Callable[[list[Event]], Awaitable[None]]) -> tuple[
    list[Event], list[dict[str, Any]]
]:
    """Run the jsonl capture task on ``incoming`` while ``steps`` (given the events received so
    far) writes to it; the events received and the log entries."""
    smallwins = build_app(folder / "plugins.toml", database_url=f"sqlite:///{folder / 'follow.db'}")
    context = PluginContext(
        name="jsonl", plugin="jsonl", settings=JsonlSettings(path=str(incoming), poll_seconds=0.02),
        config_dir=folder, app=smallwins,
    )
    received: list[Event] = []

    async def sink(events: list[Event]) -> None:
        received.extend(events)

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(follow, context, sink)
            with anyio.fail_after(10):
                await steps(received)
            group.cancel_scope.cancel()

    try:
        with capture_logs() as logs:
            anyio.run(scenario)
    finally:
        smallwins.close()
    return received, logs


async def received_at_least(received: list[Event], count: int) -> None:
    while len(received) < count:
        await anyio.sleep(0.02)


def test_following_a_file_reports_bad_bytes_by_line_and_keeps_the_rest(tmp_path: Path) -> None:
    folder = workdir(tmp_path)
    incoming = folder / "incoming.jsonl"
    incoming.write_bytes(
        b"\n".join([good_line("", 1), b"\xc3\x28 broken", event_line(id="n", data={"k": "\x00"}), good_line("", 2)])
        + b"\n"
        + good_line("", 3)[:10]  # a writer caught mid-line: not read yet
    )
    received, logs = following(folder, incoming, lambda received: received_at_least(received, 2))
    assert [e.id for e in received] == ["ok1", "ok2"]
    bad = {entry["line"]: entry["error"] for entry in logs if entry["event"] == "jsonl.bad_line"}
    assert set(bad) == {2, 3}
    assert "not valid UTF-8" in bad[2] and "contains a NUL" in bad[3]


def test_following_a_file_survives_truncation_and_rotation(tmp_path: Path) -> None:
    """Cut short, the file is read again from its start; replaced (log rotation), the old file is
    read to its end, then the new one from its start."""
    folder = workdir(tmp_path)
    incoming = folder / "incoming.jsonl"
    incoming.write_bytes(good_line("", 1) + b"\n" + good_line("", 2) + b"\n")

    async def steps(received: list[Event]) -> None:
        await received_at_least(received, 2)
        incoming.write_bytes(good_line("", 3) + b"\n")  # truncated, then one line written
        await received_at_least(received, 3)
        with incoming.open("ab") as old:
            incoming.rename(folder / "incoming.jsonl.1")
            old.write(good_line("", 4) + b"\n")  # the writer still had the old file open
        incoming.write_bytes(good_line("", 5) + b"\n")
        await received_at_least(received, 5)

    received, logs = following(folder, incoming, steps)
    assert [e.id for e in received] == ["ok1", "ok2", "ok3", "ok4", "ok5"]
    assert "jsonl.file_truncated" in [entry["event"] for entry in logs]  # a rotation is routine: logged at info


# -- the installed command, end to end ----------------------------------------------------------


def test_a_byte_order_mark_costs_no_line_and_a_utf16_file_is_named(tmp_path: Path) -> None:
    """Files saved by Windows editors: a UTF-8 mark before the first line is skipped; a UTF-16
    file is refused line by line with its encoding named, not as broken JSON."""
    folder = workdir(tmp_path)
    config = ["-c", str(folder / "plugins.toml")]
    text = "\n".join(good_line("", n).decode() for n in (1, 2)) + "\n"
    (folder / "marked.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (folder / "wide.jsonl").write_bytes(text.encode("utf-16"))
    marked = runner.invoke(app, ["ingest", str(folder / "marked.jsonl"), *config], terminal_width=200)
    assert marked.exit_code == 0 and "2 stored" in marked.output, marked.output
    wide = runner.invoke(app, ["ingest", str(folder / "wide.jsonl"), *config], terminal_width=200)
    # split at b"\n", a UTF-16 newline's second byte starts the next line: the last "line" is that byte
    assert wide.exit_code == 1 and "0 stored" in wide.output and "3 rejected" in wide.output, wide.output
    for line in (1, 2, 3):
        assert f"wide.jsonl:{line}: NUL bytes or a UTF-16 byte order mark: the file looks UTF-16" in wide.output


def test_the_installed_command_on_a_hostile_file(database_url: str, tmp_path: Path) -> None:
    """A real `smallwins ingest` process: bad lines on stderr by number, exit 1, no traceback,
    every good line stored; run again, nothing new and the same report."""
    folder = workdir(tmp_path)
    lines = [
        good_line("", 1),
        b"\xff\xfe\x00garbage",
        event_line(id="nul", data={"k\x00": 1}),
        good_line("", 2),
        event_line(id="big", data={"blob": "a" * 2_000_000}),
        b"[" * 200_000,
        event_line(id="nan").replace(b'"time"', b'"data": {"x": NaN}, "time"'),
        good_line("", 3) + b"\r",  # written on Windows
        b'{"id": "cut',
    ]
    (folder / "hostile.jsonl").write_bytes(b"\n".join(lines))  # and no newline at the end
    command = [str(Path(sys.executable).parent / "smallwins"), "ingest", "hostile.jsonl", "--db", database_url]
    for attempt in (1, 2):
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        reported = {n for n in range(1, len(lines) + 1) if f"hostile.jsonl:{n}:" in done.stderr}
        assert reported == {2, 3, 5, 6, 7, 9}, done.stderr
        assert ("3 stored" if attempt == 1 else "3 already known") in done.stdout
        assert "6 rejected" in done.stdout
    assert stored_keys(database_url) == {("discord", f"ok{n}") for n in (1, 2, 3)}


def test_recorded_payloads_through_a_source_normalize_get_the_same_care(tmp_path: Path) -> None:
    """`ingest --source NAME`: bad bytes, loose JSON and deep nesting are line reasons there too."""
    folder = workdir(tmp_path)
    lines = [good_line("", 1), b"\xc3\x28", b'{"x": Infinity}', b"[" * 50_000, good_line("", 2)]
    (folder / "payloads.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    config = ["-c", str(folder / "plugins.toml")]
    result = runner.invoke(app, ["ingest", str(folder / "payloads.jsonl"), "--source", "jsonl", *config])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "payloads.jsonl:2:" in result.output and "not valid UTF-8" in result.output
    assert "payloads.jsonl:3:" in result.output and "Infinity is not a JSON value" in result.output
    assert "payloads.jsonl:4:" in result.output and "nested too deeply" in result.output
    assert "2 stored" in result.output and "3 rejected" in result.output


def test_an_unknown_source_is_stored_with_a_warning_said_once_per_kind(tmp_path: Path) -> None:
    """A mistyped source ("dsicord") would silently count as a separate member: it is stored, and
    the operator is told which sources are known; a thousand such lines give a few lines of
    warning and a count, not a thousand. A source the catalogue names in a scope is known."""
    folder = workdir(tmp_path)
    lines = [event_line(id=f"t{n}", source="dsicord", subject="alice") for n in range(10)]
    lines.append(event_line(id="real", source="discord", subject="alice"))
    (folder / "typo.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    config = ["-c", str(folder / "plugins.toml")]
    result = runner.invoke(app, ["ingest", str(folder / "typo.jsonl"), *config], terminal_width=400)
    assert result.exit_code == 0 and "11 stored" in result.output, result.output
    output = result.output.replace("\n", "")  # the error console wraps long warnings
    assert output.count("unknown source 'dsicord' (known: discord, email, jsonl, web, youtube)") == 4, output
    assert "dsicord:t0: unknown source" in output and "dsicord:t3:" not in output  # three by key...
    assert "warning: 7 more events: unknown source 'dsicord'" in output  # ...and the rest counted
    assert "discord:real" not in result.output  # a known source says nothing

    catalogue = folder / "achievements.toml"  # events imported from a forum no plugin captures
    catalogue.write_text(catalogue.read_text().replace('sources = ["youtube"]', 'sources = ["youtube", "forum"]'))
    (folder / "forum.jsonl").write_bytes(event_line(id="f1", source="forum", subject="alice") + b"\n")
    forum = runner.invoke(app, ["ingest", str(folder / "forum.jsonl"), *config], terminal_width=400)
    assert forum.exit_code == 0 and "1 stored" in forum.output and "warning" not in forum.output, forum.output
