"""The one plugin manager: built-ins and third-party plugins load from the same entry points."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy
import structlog

from smallwins.core import hookspecs
from smallwins.core.contract import PresenterSpec, SourceSpec
from smallwins.core.rules import RuleType

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "smallwins"


class PluginError(RuntimeError):
    """A plugin that cannot be loaded or that clashes with another."""


@dataclass(frozen=True)
class InstalledPlugin:
    name: str
    module: str
    distribution: str | None
    provides: tuple[str, ...]


def _by_name(kind: str, groups: list[list[Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for group in groups:
        for item in group or []:
            if item.name in found:
                raise PluginError(f"two plugins provide a {kind} named '{item.name}'")
            found[item.name] = item
    return found


class PluginHost:
    """Wraps a pluggy ``PluginManager`` and collects what registered plugins provide."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        if load_entry_points:
            loaded = self.manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            log.debug("plugins.loaded", count=loaded)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (tests, embedding applications)."""
        self.manager.register(plugin, name=name)

    def sources(self) -> dict[str, SourceSpec]:
        return _by_name("source", self.manager.hook.smallwins_register_sources())

    def presenters(self) -> dict[str, PresenterSpec]:
        return _by_name("presenter", self.manager.hook.smallwins_register_presenters())

    def rule_types(self) -> dict[str, RuleType]:
        return _by_name("rule type", self.manager.hook.smallwins_register_rule_types())

    def components(self) -> dict[str, dict[str, SourceSpec | PresenterSpec]]:
        """Each registered plugin's configurable components (sources and presenters) by name.

        One plugin (one entry point) may provide several: Discord is a source and a presenter.
        """
        result: dict[str, dict[str, SourceSpec | PresenterSpec]] = {}
        for name, plugin in self.manager.list_name_plugin():
            if plugin is hookspecs or plugin is None:
                continue
            found: dict[str, SourceSpec | PresenterSpec] = {}
            for hook in ("smallwins_register_sources", "smallwins_register_presenters"):
                impl = getattr(plugin, hook, None)
                if impl is not None:
                    found.update({item.name: item for item in impl() or []})
            result[name] = found
        return result

    def installed(self) -> list[InstalledPlugin]:
        """Every registered plugin with the distribution that shipped it and what it provides."""
        dists = {id(plugin): dist.metadata["name"] for plugin, dist in self.manager.list_plugin_distinfo()}
        result = []
        for name, plugin in self.manager.list_name_plugin():
            if plugin is hookspecs or plugin is None:
                continue
            provides: list[str] = []
            for hook, kind in (
                ("smallwins_register_sources", "source"),
                ("smallwins_register_presenters", "presenter"),
                ("smallwins_register_rule_types", "rule type"),
            ):
                impl = getattr(plugin, hook, None)
                if impl is not None:
                    provides.extend(f"{kind}:{item.name}" for item in impl() or [])
            result.append(
                InstalledPlugin(
                    name=name,
                    module=getattr(plugin, "__name__", type(plugin).__name__),
                    distribution=dists.get(id(plugin)),
                    provides=tuple(provides),
                )
            )
        return sorted(result, key=lambda p: p.name)


def entry_point_names() -> list[str]:
    return sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
