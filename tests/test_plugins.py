"""A third-party plugin, installed the way pip installs one (a dist-info with entry points), is
discovered through the 'smallwins' entry-point group and called, exactly like the built-ins."""

from pathlib import Path
from textwrap import dedent

import anyio
import pytest

from smallwins.core.config import parse_catalogue
from smallwins.core.engine import Engine
from smallwins.core.outbox import deliver
from smallwins.core.plugins import PluginHost, entry_point_names
from smallwins.core.store import Store

PLUGIN = '''
from pydantic import BaseModel, ConfigDict
from smallwins.core.contract import PresenterSpec, SourceSpec
from smallwins.core.events import Event
from smallwins.core.hookspecs import hookimpl
from smallwins.core.rules import Progress

APPLIED = []

class LongPostParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_words: int
    target: int = 1

class LongPostRule:
    """Counts posts of at least min_words words."""
    name = "long_post"
    params_model = LongPostParams
    def triggers(self, params): return frozenset({"message.posted"})
    def initial_state(self, params): return {"n": 0}
    def apply(self, params, state, event, ctx):
        if len(str(event.data.get("text", "")).split()) < params.min_words:
            return None
        return {"n": state["n"] + 1}
    def progress(self, params, state, ctx=None): return Progress(state["n"], params.target, "long posts")

class Recorder:
    async def apply(self, change, member):
        APPLIED.append((change.kind, member.member_id))

def normalize(payload):
    return [Event(id=payload["ts"], source="smoke_signals", type="signal.sent",
                  subject=payload["who"], time=payload["at"])]

@hookimpl
def smallwins_register_rule_types(): return [LongPostRule()]

@hookimpl
def smallwins_register_presenters():
    return [PresenterSpec(name="recorder", create=lambda context: Recorder())]

@hookimpl
def smallwins_register_sources():
    return [SourceSpec(name="smoke_signals", normalize=normalize, event_types=frozenset({"signal.sent"}))]
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    (site / "smallwins_longpost").mkdir(parents=True)
    (site / "smallwins_longpost" / "__init__.py").write_text(PLUGIN)
    dist = site / "smallwins_longpost-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: smallwins-longpost\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        dedent("""
        [smallwins]
        longpost = smallwins_longpost
    """)
    )
    monkeypatch.syspath_prepend(str(site))
    yield
    import sys

    sys.modules.pop("smallwins_longpost", None)


def test_builtins_come_from_entry_points() -> None:
    assert {"count", "jsonl", "web_widget"} <= set(entry_point_names())
    host = PluginHost()
    assert "count" in host.rule_types()
    assert "jsonl" in host.sources() and "web_widget" in host.presenters()
    dists = {p.name: p.distribution for p in host.installed()}
    assert dists["count"] == "smallwins"


def test_third_party_plugin_is_discovered_and_called(installed_plugin: None, store: Store, make_event) -> None:
    host = PluginHost()
    installed = {p.name: p for p in host.installed()}
    assert installed["longpost"].distribution == "smallwins-longpost"
    assert set(installed["longpost"].provides) == {"rule type:long_post", "presenter:recorder", "source:smoke_signals"}

    catalogue = parse_catalogue(
        {
            "achievements": {
                "essayist": {
                    "name": "Essayist",
                    "description": "Wrote a long post.",
                    "rule": "long_post",
                    "min_words": 5,
                }
            }
        },
        host.rule_types(),
        path=Path("inline.toml"),
    )
    engine = Engine(store, catalogue)
    short = engine.ingest(make_event(text="hi there"))
    long = engine.ingest(make_event(text="this post has quite a few words"))
    assert short.awarded == [] and long.awarded == ["essayist"]

    [normalized] = host.sources()["smoke_signals"].normalize({"ts": "1", "who": "ann", "at": "2026-03-02T12:00:00Z"})
    assert normalized.key == "smoke_signals:1"

    presenter = host.presenters()["recorder"].create(host.presenters()["recorder"].settings_model())
    applied = anyio.run(deliver, store, catalogue, {"recorder": presenter})
    import smallwins_longpost

    assert applied == {"recorder": 2}
    assert [("member.joined", long.member_id), ("award", long.member_id)] == smallwins_longpost.APPLIED
