"""Which components plugins.toml turns on, and with what settings.

A plugin is one entry point in the ``smallwins`` group; it may provide several components
(sources and presenters; Discord is both). ``plugins.toml`` maps onto that directly::

    [plugins.discord]              # the plugin: enabled, and keys its components share
    enabled = true
    token_env = "DISCORD_TOKEN"    # given to every component whose settings declare it

    [plugins.discord.discord_roles]  # one component: its own keys, and it may opt out
    enabled = false

A single-component plugin keeps the flat form (``[plugins.web_widget] output_dir = ...``).
Every key must be declared by some component's settings model; an unknown key is an error that
names it, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from smallwins.core.config import SECRET_WORDS, AppConfig, ConfigError, validation_message
from smallwins.core.contract import PresenterSpec, SourceSpec
from smallwins.core.plugins import PluginHost


@dataclass(frozen=True)
class ComponentConfig:
    """One enabled component: its spec, the plugin it came from, its validated settings."""

    name: str
    plugin: str
    spec: SourceSpec | PresenterSpec
    settings: BaseModel


def enabled_components(config: AppConfig, host: PluginHost) -> dict[str, ComponentConfig]:
    """Validate every ``[plugins.*]`` table; the enabled components, by component name."""
    provided = host.components()
    enabled: dict[str, ComponentConfig] = {}
    for plugin, table in config.plugin_tables.items():
        if plugin not in provided:
            owner = next((p for p, parts in provided.items() if plugin in parts), None)
            hint = f"; '{plugin}' is a component of plugin '{owner}': use [plugins.{owner}.{plugin}]" if owner else ""
            raise ConfigError(
                f"{config.path}: key 'plugins.{plugin}': no installed plugin named '{plugin}'"
                f"{hint}; installed: {', '.join(sorted(provided))}"
            )
        enabled.update(_plugin_components(config, plugin, table, provided[plugin]))
    return enabled


def _plugin_components(
    config: AppConfig, plugin: str, table: dict[str, Any], parts: dict[str, SourceSpec | PresenterSpec]
) -> dict[str, ComponentConfig]:
    where = f"plugins.{plugin}"
    shared = {k: v for k, v in table.items() if k != "enabled" and not (k in parts and isinstance(v, dict))}
    own = {k: v for k, v in table.items() if k in parts and isinstance(v, dict)}
    declared = {field for spec in parts.values() for field in spec.settings_model.model_fields}
    for key in shared:
        _refuse_secret(config, f"{where}.{key}", key)
        if key not in declared:
            known = ", ".join(sorted(declared | set(parts) | {"enabled"}))
            raise ConfigError(
                f"{config.path}: key '{where}.{key}': not a setting of any component of plugin '{plugin}' "
                f"({', '.join(sorted(parts)) or 'none'}); expected one of: {known}"
            )
    result = {}
    for name, spec in parts.items():
        sub = dict(own.get(name, {}))
        on = sub.pop("enabled", True)
        if not isinstance(on, bool):
            raise ConfigError(f"{config.path}: key '{where}.{name}.enabled': expected true or false")
        for key in sub:
            _refuse_secret(config, f"{where}.{name}.{key}", key)
        fields = spec.settings_model.model_fields
        values = {k: v for k, v in shared.items() if k in fields} | sub
        try:
            settings = spec.settings_model.model_validate(values)
        except ValidationError as exc:
            table_name = f"{where}.{name}" if name in own else where
            raise ConfigError(validation_message(config.path, table_name, exc)) from None
        if table.get("enabled", False) and on:
            result[name] = ComponentConfig(name=name, plugin=plugin, spec=spec, settings=settings)
    return result


def _refuse_secret(config: AppConfig, where: str, key: str) -> None:
    if any(word in key.lower() for word in SECRET_WORDS) and not key.endswith("_env"):
        raise ConfigError(
            f"{config.path}: key '{where}': secrets must not be written in the file; "
            f'name an environment variable instead, e.g. {key}_env = "MY_VAR"'
        )
