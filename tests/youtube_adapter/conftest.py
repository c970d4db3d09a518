"""Fixtures of the YouTube tests: a local Data API server per test, a settable clock whose sleeps
pass instantly, and a smallwins configured by plugins.toml to poll that server (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from fakeyoutube import API_KEY, FakeYouTube

from smallwins.core.app import App, build_app
from tests.toml_helpers import toml_value

HERE = Path(__file__).resolve().parent
CATALOGUE = HERE / "data" / "catalogue.toml"
KEY_ENV = "SMALLWINS_TEST_YOUTUBE_KEY"
CHANNEL = "UCcreatorchannel0000000a"
OTHER_CHANNEL = "UCsecondchannel000000000"


class Stop(Exception):
    """Ends a poller's endless loop from its sleep."""


class FakeTime:
    """``now`` for the poller and a sleep that moves it instead of waiting (0 real seconds)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.stop_after: int | None = None
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        await anyio.sleep(0)
        if self.stop_after is not None and len(self.sleeps) >= self.stop_after:
            raise Stop




def plugins_toml(settings: dict[str, Any]) -> str:
    lines = [
        "[smallwins]",
        f"catalogue = {toml_value(str(CATALOGUE))}",
        'default_timezone = "UTC"',
        "",
        "[plugins.youtube]",
        "enabled = true",
        *(f"{key} = {toml_value(value)}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def youtube() -> Iterator[FakeYouTube]:
    world = FakeYouTube()
    world.url = world.start()  # type: ignore[attr-defined]
    yield world
    world.stop()


@pytest.fixture
def fake_time() -> FakeTime:
    # Well in the past, so events dated by it are never "in the future" after the clock moves a day.
    start = (datetime.now(UTC) - timedelta(days=20)).replace(hour=18, minute=0, second=0, microsecond=0)
    return FakeTime(start)


@pytest.fixture
def youtube_settings(youtube: FakeYouTube) -> dict[str, Any]:
    return {
        "channels": [CHANNEL],
        "api_key_env": KEY_ENV,
        "api_endpoint": youtube.url,  # type: ignore[attr-defined]
        "page_size": 2,
        "catch_up_videos": 2,
        "max_videos": 5,
        "like_threshold": 3,
        "backoff_seconds": 0.01,
        "backoff_max_seconds": 0.05,
    }


@pytest.fixture
def make_app(
    tmp_path: Path, database_url: str, youtube_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., App]]:
    """Build a smallwins whose ``youtube`` source polls this test's server."""
    monkeypatch.setenv(KEY_ENV, API_KEY)
    opened: list[App] = []

    def build(**settings: Any) -> App:
        config = tmp_path / "plugins.toml"
        config.write_text(plugins_toml(youtube_settings | settings))
        app = build_app(config, database_url=database_url)
        opened.append(app)
        return app

    yield build
    for app in opened:
        app.close()
