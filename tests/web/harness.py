"""A real smallwins web server for tests: uvicorn on 127.0.0.1 (a random port) in a thread,
over a real SQLite file or the PostgreSQL named by SMALLWINS_TEST_PG_URL."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import create_engine, select, text

from smallwins.adapters.web.app import Web
from smallwins.adapters.web.capture import WebServer, build_web
from smallwins.adapters.web.links import create_link, web_account_of
from smallwins.adapters.web.models import LinkClick, TrackedLink
from smallwins.core.app import App, build_app
from smallwins.core.events import Event
from smallwins.core.store import Identity

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "data" / "catalogue.toml"
ARTIFACTS = HERE.parent.parent / "artifacts"
HOOK_SECRET_ENV = "SW_TEST_SHOP_SECRET"
HOOK_SECRET = "shop-secret-for-tests"
ADMIN_TOKEN = "operator-token-for-tests"
#: Monday noon: a test's "now"; the click credit period is a day.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def database_url_for(kind: str, folder: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'web.db'}"
    url = os.environ.get("SMALLWINS_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("SMALLWINS_TEST_PG_URL is not set in CI: run the tests through ./scripts/test")
        pytest.skip("no PostgreSQL: run through ./scripts/test, which starts one")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
        conn.execute(text("DROP FUNCTION IF EXISTS smallwins_audit_append_only() CASCADE"))
    engine.dispose()
    return url


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def plugins_toml(port: int, origins: list[str]) -> str:
    quoted = ", ".join(f'"{o}"' for o in origins)
    return f"""
[smallwins]
catalogue = "{CATALOGUE}"
default_timezone = "UTC"

[plugins.web]
enabled = true
port = {port}
public_url = "http://127.0.0.1:{port}"
cors_origins = [{quoted}]
max_form_bytes = 2048
max_hook_bytes = 8192
replay_window_seconds = 300
widget_max_age = 30

[plugins.web.forms.survey]
fields = ["rating", "comment"]
required = ["rating"]
choices = {{ rating = ["1", "2", "3", "4", "5"] }}
max_length = 200

[plugins.web.forms.poll]
fields = ["choice"]
required = ["choice"]
choices = {{ choice = ["yes", "no"] }}
once = true

[plugins.web.hooks.shop]
secret_env = "{HOOK_SECRET_ENV}"
event_types = ["order.paid", "order.refunded"]
"""


@dataclass
class Served:
    """A running server and the smallwins behind it."""

    base: str
    app: App
    web: Web
    clock: Clock

    def token(self, member_id: int) -> str:
        return self.web.signer.token(web_account_of(self.app.store, member_id))

    def member(self, name: str, *, posts: int = 1, source: str = "discord") -> int:
        """A member who posted ``posts`` times (one per day, ending today); their id."""
        events = [
            Event(
                id=f"{name}-{i}",
                source=source,
                type="message.posted",
                subject=name,
                time=self.clock.now - timedelta(days=posts - 1 - i),
                data={"display_name": name.capitalize()},
            )
            for i in range(posts)
        ]
        outcomes = list(self.app.engine.ingest_many(events))
        assert outcomes and outcomes[0].member_id is not None
        with self.app.store.sessions() as session:
            member_id = session.scalar(
                select(Identity.member_id).where(Identity.platform == source, Identity.account == name)
            )
        assert member_id is not None
        return member_id

    def link(self, *, url: str = "https://club.example/kit.zip", event: str = "download.completed", **kw: Any) -> str:
        link = create_link(
            self.app.store,
            url=url,
            campaign=kw.pop("campaign", "spring"),
            event_type=event,
            credit_period=kw.pop("credit_period", "day"),
        )
        return link.code

    def clicks(self, code: str) -> list[LinkClick]:
        with self.app.store.sessions() as session:
            return list(session.scalars(select(LinkClick).where(LinkClick.link_code == code).order_by(LinkClick.id)))

    def awards(self, member_id: int) -> set[str]:
        with self.app.store.sessions() as session:
            return {a["id"] for a in self.app.snapshot(session, member_id).awards}

    def links(self) -> list[TrackedLink]:
        with self.app.store.sessions() as session:
            return list(session.scalars(select(TrackedLink)))


@contextmanager
def serving(folder: Path, database_url: str, *, origins: list[str] | None = None) -> Iterator[Served]:
    """Start the web app on a random loopback port; stop it and close the store afterwards."""
    saved = {name: os.environ.get(name) for name in (HOOK_SECRET_ENV, "SMALLWINS_WEB_ADMIN_TOKEN")}
    os.environ[HOOK_SECRET_ENV] = HOOK_SECRET
    os.environ["SMALLWINS_WEB_ADMIN_TOKEN"] = ADMIN_TOKEN
    sock = free_socket()
    port = sock.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "plugins.toml"
    config.write_text(plugins_toml(port, origins or ["https://club.example"]))
    app = build_app(config, database_url=database_url)
    clock = Clock()
    app.engine.clock = clock
    web = build_web(app.context("web"))
    server = WebServer(web, host="127.0.0.1", port=port)
    thread = threading.Thread(target=anyio.run, args=(server.serve, [sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.01)
    try:
        yield Served(base=f"http://127.0.0.1:{port}", app=app, web=web, clock=clock)
    finally:
        server.stop()
        thread.join(10)
        app.close()
        sock.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
