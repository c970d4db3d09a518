"""One plugin, several components: a source and a presenter behind one entry point, configured in
one plugins.toml, with relative paths that mean paths next to that file wherever we run from."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import anyio
import pytest

from smallwins.core.app import build_app
from smallwins.core.config import ConfigError
from smallwins.core.events import Event
from smallwins.core.plugins import PluginHost

PLUGIN = """
import json
from pydantic import BaseModel, ConfigDict
from smallwins.core.contract import PresenterSpec, SourceSpec
from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl

class ForumSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str = "forum.example"
    poll_seconds: float = 60

class AwardsFileSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str = "forum.example"
    path: str = "awards.log"

class AwardsFile:
    def __init__(self, context):
        self.path = context.path(context.settings.path)
        self.site = context.settings.site
    async def apply(self, change, member):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps([self.site, change.kind, member.display_name]) + "\\n")

def normalize(payload):
    return [Event(id=payload["id"], source="forum", type="message.posted", subject=payload["who"], time=payload["at"])]

@hookimpl
def smallwins_register_sources():
    return [SourceSpec(name="forum", normalize=normalize, settings_model=ForumSettings)]

@hookimpl
def smallwins_register_presenters():
    return [PresenterSpec(name="awards_file", create=AwardsFile, settings_model=AwardsFileSettings)]
"""


@pytest.fixture
def extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    (site / "smallwins_extras").mkdir(parents=True)
    (site / "smallwins_extras" / "__init__.py").write_text(PLUGIN)
    dist = site / "smallwins_extras-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smallwins-extras\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[smallwins]\nextras = smallwins_extras\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    import sys

    sys.modules.pop("smallwins_extras", None)


def community(tmp_path: Path, plugins: str) -> Path:
    folder = tmp_path / "srv" / "community"
    folder.mkdir(parents=True)
    (folder / "achievements.toml").write_text(
        dedent("""
        [achievements.first]
        name = "First"
        description = "A first post."
        rule = "count"
        events = ["message.posted"]
        """)
    )
    (folder / "plugins.toml").write_text('[smallwins]\ncatalogue = "achievements.toml"\n' + dedent(plugins))
    return folder / "plugins.toml"


def test_shared_and_component_settings_reach_each_component(
    extras: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = community(
        tmp_path,
        """
        [plugins.extras]
        enabled = true
        site = "club.example"          # both components declare it
        [plugins.extras.awards_file]
        path = "out/awards.log"        # relative to this file
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    app = build_app(config, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        assert set(app.components) == {"forum", "awards_file"}
        assert app.components["forum"].settings.site == "club.example"  # type: ignore[attr-defined]
        [event] = PluginHost().sources()["forum"].normalize({"id": "1", "who": "ann", "at": "2026-03-02T12:00:00Z"})
        app.engine.ingest(event)
        applied = anyio.run(app.deliver)
    finally:
        app.close()
    assert applied["awards_file"] >= 1
    written = config.parent / "out" / "awards.log"
    assert written.exists() and not (elsewhere / "out").exists(), "paths resolve against plugins.toml"
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert lines == [["club.example", "member.joined", "forum:ann"], ["club.example", "award", "forum:ann"]]


def test_a_component_can_be_switched_off(extras: None, tmp_path: Path) -> None:
    config = community(tmp_path, "[plugins.extras]\nenabled = true\n[plugins.extras.awards_file]\nenabled = false\n")
    app = build_app(config, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        assert set(app.components) == {"forum"} and app.presenters() == {}
    finally:
        app.close()


@pytest.mark.parametrize(
    ("plugins", "message"),
    [
        (
            "[plugins.extras]\nenabled = true\nfolder = 'x'\n",
            r"plugins\.extras\.folder': not a setting of any component",
        ),
        (
            "[plugins.extras]\nenabled = true\n[plugins.extras.awards_file]\nsize = 3\n",
            r"plugins\.extras\.awards_file\.size': Extra inputs are not permitted",
        ),
        (
            "[plugins.awards_file]\nenabled = true\n",
            r"component of plugin 'extras': use \[plugins\.extras\.awards_file\]",
        ),
        ("[plugins.extras]\nenabled = true\napi_token = 'x'\n", r"secrets must not be written in the file"),
    ],
)
def test_bad_plugin_tables_name_the_key(extras: None, tmp_path: Path, plugins: str, message: str) -> None:
    config = community(tmp_path, plugins)
    with pytest.raises(ConfigError, match=message):
        build_app(config, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_event_is_normalized_by_the_source(extras: None) -> None:
    [event] = PluginHost().sources()["forum"].normalize({"id": "9", "who": "bo", "at": "2026-03-02T12:00:00Z"})
    assert isinstance(event, Event) and event.key == "forum:9"
