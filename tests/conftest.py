"""Shared fixtures: real databases (a SQLite file and the PostgreSQL the test command started)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from smallwins.core.config import load_catalogue
from smallwins.core.engine import Engine
from smallwins.core.events import Event
from smallwins.core.logs import configure_logging
from smallwins.core.plugins import PluginHost
from smallwins.core.rules import Catalogue
from smallwins.core.store import Store, open_store

configure_logging("WARNING")
REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def postgres_url() -> str:
    url = os.environ.get("SMALLWINS_TEST_PG_URL")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("SMALLWINS_TEST_PG_URL is not set in CI: run the tests through ./scripts/test")
    pytest.skip("no PostgreSQL: run through ./scripts/test, which starts one")


def reset_postgres(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
        conn.execute(text("DROP FUNCTION IF EXISTS smallwins_audit_append_only() CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind smallwins supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'smallwins.db'}"
    url = postgres_url()
    reset_postgres(url)
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def host() -> PluginHost:
    return PluginHost()


@pytest.fixture(scope="session")
def catalogue(host: PluginHost) -> Catalogue:
    return load_catalogue(REPO / "tests" / "data" / "catalogue.toml", host.rule_types())


class Clock:
    """A settable clock so tests decide what 'now' is."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(store: Store, catalogue: Catalogue, clock: Clock) -> Engine:
    return Engine(store, catalogue, clock=clock)


_ids = itertools.count(1)


@pytest.fixture
def make_event() -> Callable[..., Event]:
    """Build a valid event; each call gets a new id unless one is given."""

    def build(
        type: str = "message.posted",
        subject: str = "u1",
        source: str = "discord",
        *,
        at: datetime | None = None,
        id: str | None = None,
        **data: Any,
    ) -> Event:
        return Event(
            id=id or f"e{next(_ids)}",
            source=source,
            type=type,
            subject=subject,
            time=at or T0,
            proof=None,
            data=data,
        )

    return build
