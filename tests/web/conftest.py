"""Fixtures of the web adapter's tests: one real server per database kind per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import T0, Served, database_url_for, serving


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp(f"web-{request.param}")
    with serving(folder, database_url_for(request.param, folder)) as running:
        yield running


@pytest.fixture(autouse=True)
def _clock_at_start(request: pytest.FixtureRequest) -> None:
    if "served" in request.fixturenames:
        request.getfixturevalue("served").clock.now = T0
