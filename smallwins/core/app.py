"""Assembling one running smallwins: config, plugins, catalogue, store and engine."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from smallwins.core import outbox, views
from smallwins.core.components import ComponentConfig, enabled_components
from smallwins.core.config import AppConfig, ConfigError, load_app_config, load_catalogue
from smallwins.core.contract import MemberSnapshot, PluginContext, Presenter, PresenterSpec, SourceSpec
from smallwins.core.engine import Engine
from smallwins.core.events import Event
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
    components: dict[str, ComponentConfig]
    #: Presenter instances, made once: a presenter may hold a connection (a bot's HTTP session).
    _presenters: dict[str, Presenter] | None = field(default=None, init=False, repr=False)

    def context(self, name: str) -> PluginContext:
        """The context an enabled component (source or presenter) runs with."""
        component = self.components[name]
        return PluginContext(
            name=name,
            plugin=component.plugin,
            settings=component.settings,
            config_dir=self.config.base_dir.resolve(),
            app=self,
        )

    @property
    def settings(self) -> dict[str, BaseModel]:
        """Validated settings of the enabled components, by component name."""
        return {name: component.settings for name, component in self.components.items()}

    def presenters(self) -> dict[str, Presenter]:
        """Instances of the enabled presenters, configured from ``plugins.toml`` (made once)."""
        if self._presenters is None:
            self._presenters = {
                name: component.spec.create(self.context(name))
                for name, component in self.components.items()
                if isinstance(component.spec, PresenterSpec)
            }
        return self._presenters

    def sources(self) -> dict[str, SourceSpec]:
        """The enabled sources, by name."""
        found = {name: component.spec for name, component in self.components.items()}
        return {name: spec for name, spec in found.items() if isinstance(spec, SourceSpec)}

    def normalizer(self, source: str) -> Callable[[Mapping[str, Any]], list[Event]]:
        """How recorded payloads of an installed source become events: with the operator's
        settings when the source is enabled and can use them, else with its defaults."""
        spec, enabled = self.host.sources()[source], self.components.get(source)
        if spec.configured is not None and enabled is not None:
            return spec.configured(enabled.settings)
        return spec.normalize

    def snapshot(self, session: Session, member_id: int) -> MemberSnapshot:
        """A member as presenters and the CLI show them, in this community's time zone."""
        return views.member_snapshot(
            session,
            self.catalogue,
            member_id,
            default_timezone=self.config.core.default_timezone,
            now=self.engine.clock(),
        )

    def presenter_names(self) -> list[str]:
        """The enabled presenters, by name (without making them)."""
        return sorted(name for name, c in self.components.items() if isinstance(c.spec, PresenterSpec))

    async def deliver(self, only: set[str] | None = None) -> dict[str, int]:
        """Deliver pending outbox changes to the enabled presenters (or to those named in ``only``)."""
        presenters = {n: p for n, p in self.presenters().items() if only is None or n in only}
        return await outbox.deliver(
            self.store, self.catalogue, presenters, default_timezone=self.config.core.default_timezone
        )

    async def retry_parked(self, outbox_ids: set[int] | None = None) -> tuple[int, int]:
        """Apply parked changes again; (applied, still parked)."""
        return await outbox.retry_parked(
            self.store,
            self.catalogue,
            self.presenters(),
            outbox_ids=outbox_ids,
            default_timezone=self.config.core.default_timezone,
        )

    async def close_presenters(self) -> None:
        """Let presenters that hold a connection close it (those with an ``aclose`` method)."""
        for presenter in (self._presenters or {}).values():
            closer = getattr(presenter, "aclose", None)
            if closer is not None:
                await closer()
        self._presenters = None

    def close(self) -> None:
        self.store.close()


def _open_named_store(database_url: str | None, config: AppConfig, *, existing: bool = False) -> Store:
    """Open the store, or say which URL (and where it was set) could not be opened and why.

    ``existing``: a command that only reads or changes what is stored refuses a SQLite file that
    is not there (a mistyped path would otherwise create an empty store and show nothing).
    """
    url = database_url or config.database_url()
    where = "--db" if database_url else f"{config.path}: [smallwins.store] url"
    if config.core.store.url_env and not database_url and os.environ.get(config.core.store.url_env):
        where = f"${config.core.store.url_env} (named by {config.path}: [smallwins.store] url_env)"
    database = _sqlite_database(url)
    if database in ("", ":memory:"):
        raise ConfigError(
            f"{where}: an in-memory SQLite store ('{url}') is gone when the command ends and is not shared"
            " between the threads that ingest and deliver: give a file, e.g. sqlite:///smallwins.db"
        )
    if existing and database is not None and not Path(database).exists():
        raise ConfigError(
            f"{where}: there is no store at '{database}' (nothing was ingested there: check the path,"
            " or run `smallwins ingest` or ./scripts/demo first)"
        )
    try:
        return open_store(url)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        shown = make_url(url).render_as_string(hide_password=True) if not isinstance(exc, ArgumentError) else url
        raise ConfigError(f"{where}: cannot open the store at '{shown}': {_store_failure(exc)}") from exc


def _sqlite_database(url: str) -> str | None:
    """The database a SQLite URL names (empty or ``:memory:``: in memory); ``None`` for another
    database, or for text that is no URL (open_store says what is wrong with it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    return (parsed.database or "") if parsed.get_backend_name() == "sqlite" else None


def _store_failure(exc: Exception) -> str:
    """The reason a store could not be opened, in one line."""
    if isinstance(exc, ArgumentError):
        return "not a database URL (expected e.g. sqlite:///smallwins.db or postgresql://user@host/database)"
    if isinstance(exc, ImportError):
        return f"no driver for that kind of database ({exc}); smallwins runs on SQLite and PostgreSQL"
    original = getattr(exc, "orig", None) or exc
    return " ".join(str(original).split())


def build_app(
    config_path: Path, *, database_url: str | None = None, host: PluginHost | None = None, existing: bool = False
) -> App:
    """Load everything ``plugins.toml`` describes, fail early on any bad setting, open the store
    (``existing``: a SQLite store must already be there)."""
    config = load_app_config(config_path)
    host = host or PluginHost()
    components = enabled_components(config, host)
    catalogue = load_catalogue(config.catalogue_path(), host.rule_types())
    sources = host.sources()
    known_types = {t for spec in sources.values() for t in spec.event_types}
    known_sources = set(sources)
    for component in components.values():  # e.g. the web source's webhooks, each named by the operator
        if isinstance(component.spec, SourceSpec) and component.spec.also_emits is not None:
            known_sources.update(component.spec.also_emits(component.settings))
    store = _open_named_store(database_url, config, existing=existing)
    engine = Engine(
        store,
        catalogue,
        known_event_types=known_types,
        known_sources=known_sources,
        link_code_ttl=timedelta(minutes=config.core.link_code_ttl_minutes),
        default_timezone=config.core.default_timezone,
        retraction_policy=config.core.on_retraction,
        voucher_horizon=timedelta(days=config.core.voucher_horizon_days),
    )
    return App(config=config, host=host, catalogue=catalogue, store=store, engine=engine, components=components)
