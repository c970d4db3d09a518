"""Built-in source ``jsonl``: normalized events, one JSON object per line.

The format every other adapter normalizes into, so it doubles as the import path for exports
from tools smallwins has no adapter for. Its capture task follows a file as it grows.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smallwins.core.contract import EventSink, PluginContext, SourceSpec
from smallwins.core.events import (
    Event,
    InvalidEvent,
    describe_validation_error,
    json_kind,
    load_json,
    parse_event,
)
from smallwins.core.hookspecs import hookimpl

log = structlog.get_logger(__name__)


class JsonlSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="file to follow while `smallwins run` runs")
    poll_seconds: float = Field(default=2.0, gt=0)


@dataclass(frozen=True)
class LineResult:
    """One line of a JSONL file: its events (a platform payload may give several), or why it
    was refused."""

    line_number: int
    events: tuple[Event, ...] = ()
    error: str | None = None


#: Turns one JSON object into events: a normalized event as is, or a source's ``normalize``.
Normalizer = Callable[[Mapping[str, Any]], list[Event]]


#: Why a line of a UTF-16 (or UTF-32) file is refused: the file's encoding is the problem, not the line.
WIDE_TEXT = "NUL bytes or a UTF-16 byte order mark: the file looks UTF-16 or UTF-32"


def parse_line(number: int, raw: bytes, normalize: Normalizer | None = None) -> LineResult | None:
    """One line's events, or why it was refused (bad UTF-8 included); ``None`` for a blank line.

    With ``normalize`` (a source's), the line is a recorded platform payload to pass through it.
    """
    utf16_mark = number == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if utf16_mark or b"\x00" in raw:  # a raw NUL is never in UTF-8 JSON: most likely every other byte
        return LineResult(number, error=f"{WIDE_TEXT}; save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineResult(number, error=f"not valid UTF-8 (byte {exc.start + 1}: {exc.reason})")
    if number == 1:
        text = text.removeprefix("\ufeff")  # the byte order mark some editors put first
    if not text.strip():
        return None
    if normalize is None:
        try:
            return LineResult(number, events=(parse_event(text),))
        except InvalidEvent as exc:
            return LineResult(number, error=str(exc))
    try:
        payload = load_json(text)
    except InvalidEvent as exc:
        return LineResult(number, error=str(exc))
    if not isinstance(payload, dict):
        return LineResult(number, error=f"expected a JSON object, got {json_kind(payload)}")
    try:
        return LineResult(number, events=tuple(normalize(payload)))
    except ValidationError as exc:  # the event the source made is not valid (a time in the future)
        reason = describe_validation_error(exc, prefix="field ")
        return LineResult(number, error=f"the source's event is invalid: {reason}")
    except Exception as exc:  # one payload a source chokes on (its bug or ours) must not stop the file
        return LineResult(number, error=f"the source could not normalize it: {type(exc).__name__}: {exc}")


def read_lines(path: Path, *, start_line: int = 1, normalize: Normalizer | None = None) -> Iterator[LineResult]:
    """Parse a JSONL file; blank lines are skipped, bad lines (broken JSON, bad UTF-8, an
    invalid event, a payload the source refuses) reported with their number while the rest go in."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number < start_line:
                continue
            result = parse_line(number, raw, normalize)
            if result is not None:
                yield result


def normalize(payload: Mapping[str, Any]) -> list[Event]:
    return [parse_event(payload)]


async def follow(context: PluginContext, sink: EventSink) -> None:
    """Ingest lines appended to ``settings.path`` (relative to plugins.toml) until cancelled.

    Reads only whole lines (a writer may be mid-line), split on line feeds alone as ``smallwins
    ingest`` does so line numbers agree; a bad line (bad UTF-8 included) is logged with its number
    and reason and skipped. Like ``tail -F``, the file stays open: one cut short (truncated) is
    read again from its start, and one replaced (rotated: another file now at the path) is read
    to its end before the new one is read from its start. Re-reading is safe: ingest is idempotent.
    """
    settings = context.settings
    assert isinstance(settings, JsonlSettings)
    if settings.path is None:
        return
    path = context.path(settings.path)
    followed: _Followed | None = None
    try:
        while True:
            if followed is None and path.exists():
                followed = _Followed(path)
            if followed is not None:
                await sink(followed.read_lines())
                if followed.replaced():
                    await sink(followed.read_lines())  # what was written before the rotation
                    log.info("jsonl.file_replaced", path=str(path), lines_read=followed.line_number)
                    followed.close()
                    followed = None
                    continue
                if followed.truncated():
                    log.warning("jsonl.file_truncated", path=str(path), reading_again_from="the start")
                    followed.restart()
                    continue
            await anyio.sleep(settings.poll_seconds)
    finally:
        if followed is not None:
            followed.close()


class _Followed:
    """One file being followed: its open handle, how far it was read, how many lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("rb")
        self.line_number = 0

    def read_lines(self) -> list[Event]:
        """The events of the whole lines written since the last read (a partial last line waits)."""
        start = self.handle.tell()
        chunk = self.handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.handle.seek(start + len(complete))
        events: list[Event] = []
        for raw in complete.split(b"\n")[:-1]:  # bytes, decoded line by line (bad UTF-8 is one bad line)
            self.line_number += 1
            result = parse_line(self.line_number, raw)
            if result is None:
                continue
            if result.error is None:
                events.extend(result.events)
            else:
                log.warning("jsonl.bad_line", path=str(self.path), line=self.line_number, error=result.error)
        return events

    def replaced(self) -> bool:
        """Whether the path now names another file, or none (rotated or deleted)."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return True
        opened = os.fstat(self.handle.fileno())
        return (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev)

    def truncated(self) -> bool:
        return os.fstat(self.handle.fileno()).st_size < self.handle.tell()

    def restart(self) -> None:
        self.handle.seek(0)
        self.line_number = 0

    def close(self) -> None:
        self.handle.close()


@hookimpl
def smallwins_register_sources() -> list[SourceSpec]:
    return [SourceSpec(name="jsonl", normalize=normalize, settings_model=JsonlSettings, capture=follow)]
