"""Built-in presenter ``web_widget``: one JSON document per member for a website widget.

Idempotent by construction: the document is the member's whole current state, written only
when it differs from what is on disk (atomically), so a re-run or a hand edit is repaired.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import fields
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict

from smallwins.core.contract import MemberSnapshot, OutboxChange, PluginContext, Presenter, PresenterSpec
from smallwins.core.hookspecs import hookimpl

log = structlog.get_logger(__name__)


class WidgetSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    output_dir: str = "widgets"


def widget_document(member: MemberSnapshot) -> dict[str, object]:
    """The snapshot as a JSON-ready dict (its fields are plain data already: no deep copy)."""
    return {f.name: getattr(member, f.name) for f in fields(member)}


def _file_mode() -> int:
    """0666 less the process umask: what a plain ``open(path, "w")`` would create."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_if_changed(path: Path, text: str) -> bool:
    """Atomically replace ``path`` with ``text`` unless it already holds exactly that."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; a web server running as another user must read it
    os.replace(tmp, path)
    return True


class WebWidgetPresenter:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, member_id: int) -> Path:
        return self.root / "members" / f"{member_id}.json"

    async def apply(self, change: OutboxChange, member: MemberSnapshot) -> None:
        path = self.path_for(member.member_id)
        if member.merged_into is not None:
            path.unlink(missing_ok=True)
            return
        text = json.dumps(widget_document(member), indent=1, sort_keys=True) + "\n"
        if write_if_changed(path, text):
            log.debug("web_widget.written", member=member.member_id, change=change.id)


def create(context: PluginContext) -> Presenter:
    """``output_dir`` is relative to plugins.toml, wherever the command runs from."""
    assert isinstance(context.settings, WidgetSettings)
    return WebWidgetPresenter(context.path(context.settings.output_dir))


@hookimpl
def smallwins_register_presenters() -> list[PresenterSpec]:
    return [PresenterSpec(name="web_widget", create=create, settings_model=WidgetSettings)]
