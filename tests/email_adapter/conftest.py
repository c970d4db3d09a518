"""Fixtures of the email tests: one real Dovecot per test module, a fresh mailbox per test, and a
smallwins configured by plugins.toml to watch it (over SQLite or PostgreSQL)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mailserver import PASSWORD, PASSWORD_ENV, Dovecot, remove, start_dovecot

from smallwins.core.app import App, build_app
from tests.toml_helpers import toml_value

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "data" / "catalogue.toml"
_users = itertools.count(1)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot()
    yield server
    remove(server)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> str:
    """A new, empty mailbox of its own for this test."""
    return dovecot.add_user(f"reader{next(_users)}")




def plugins_toml(source: dict[str, Any], newsletter: dict[str, Any] | None = None) -> str:
    lines = [
        "[smallwins]",
        f"catalogue = {toml_value(str(CATALOGUE))}",
        'default_timezone = "UTC"',
        "",
        "[plugins.email]",
        "enabled = true",
        'reply_address = "news@club.example"',
        'issue_domains = ["club.example"]',
        "",
        "[plugins.email.email]",
        *(f"{key} = {toml_value(value)}" for key, value in source.items()),
        "",
        "[plugins.email.newsletter]",
        *(f"{key} = {toml_value(value)}" for key, value in (newsletter or {"enabled": False}).items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_app(tmp_path: Path, database_url: str, dovecot: Dovecot, mailbox: str) -> Iterator[Callable[..., App]]:
    """Build a smallwins whose ``email`` source watches this test's mailbox (STARTTLS by default)."""
    os.environ[PASSWORD_ENV] = PASSWORD
    opened: list[App] = []

    def build(newsletter: dict[str, Any] | None = None, **source: Any) -> App:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "security": "starttls",
            "ca_file": str(dovecot.ca_file),
            "username": mailbox,
            "password_env": PASSWORD_ENV,
            "poll_seconds": 0.2,
        } | source
        config = tmp_path / "plugins.toml"
        config.write_text(plugins_toml(settings, newsletter))
        app = build_app(config, database_url=database_url)
        opened.append(app)
        return app

    yield build
    for app in opened:
        app.close()
