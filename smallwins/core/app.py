"""Assembling one running smallwins: config, plugins, catalogue, store and engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy.orm import Session

from smallwins.core import outbox, views
from smallwins.core.config import AppConfig, ConfigError, load_app_config, load_catalogue
from smallwins.core.contract import MemberSnapshot, Presenter, PresenterSpec, SourceSpec
from smallwins.core.engine import Engine
from smallwins.core.plugins import PluginHost
from smallwins.core.rules import Catalogue
from smallwins.core.store import Store, open_store


@dataclass
class App:
    config: AppConfig
    host: PluginHost
    catalogue: Catalogue
    store: Store
    engine: Engine
    settings: dict[str, BaseModel]

    def presenters(self) -> dict[str, Presenter]:
        """Instances of the enabled presenters, configured from ``plugins.toml``."""
        specs = self.host.presenters()
        return {name: specs[name].create(self.settings[name]) for name in self.settings if name in specs}

    def snapshot(self, session: Session, member_id: int) -> MemberSnapshot:
        """A member as presenters and the CLI show them, in this community's time zone."""
        return views.member_snapshot(
            session,
            self.catalogue,
            member_id,
            default_timezone=self.config.core.default_timezone,
            now=self.engine.clock(),
        )

    async def deliver(self) -> dict[str, int]:
        """Deliver pending outbox changes to the enabled presenters."""
        return await outbox.deliver(
            self.store, self.catalogue, self.presenters(), default_timezone=self.config.core.default_timezone
        )

    def close(self) -> None:
        self.store.close()


def validate_plugin_settings(config: AppConfig, host: PluginHost) -> dict[str, BaseModel]:
    """Every plugin named in ``plugins.toml`` must be installed; enabled ones' settings must validate."""
    installed = {p.name for p in host.installed()}
    for name in config.plugin_tables:
        if name not in installed:
            raise ConfigError(
                f"{config.path}: key 'plugins.{name}': no installed plugin named '{name}'; "
                f"installed: {', '.join(sorted(installed))}"
            )
    specs: dict[str, SourceSpec | PresenterSpec] = {**host.sources(), **host.presenters()}
    return {
        name: config.plugin_settings(name, specs[name].settings_model)
        for name in config.enabled_plugins
        if name in specs
    }


def build_app(config_path: Path, *, database_url: str | None = None, host: PluginHost | None = None) -> App:
    """Load everything ``plugins.toml`` describes, fail early on any bad setting, open the store."""
    config = load_app_config(config_path)
    host = host or PluginHost()
    settings = validate_plugin_settings(config, host)
    catalogue = load_catalogue(config.catalogue_path(), host.rule_types())
    known_types = {t for spec in host.sources().values() for t in spec.event_types}
    store = open_store(database_url or config.database_url())
    engine = Engine(
        store,
        catalogue,
        known_event_types=known_types,
        link_code_ttl=timedelta(minutes=config.core.link_code_ttl_minutes),
        default_timezone=config.core.default_timezone,
        retraction_policy=config.core.on_retraction,
        voucher_horizon=timedelta(days=config.core.voucher_horizon_days),
    )
    return App(config=config, host=host, catalogue=catalogue, store=store, engine=engine, settings=settings)
