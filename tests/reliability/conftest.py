"""Fixtures of the reliability suite. Every test under tests/reliability gets the ``reliability``
marker (``pytest -m reliability`` runs just these; ``-m "not reliability"`` skips them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import FIGURES, ForkServer, make_sample_mp4


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/reliability/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {json.dumps(value, ensure_ascii=False)}")


@pytest.fixture(scope="session")
def fork_server(sample_mp4: Path) -> Iterator[ForkServer]:
    server = ForkServer(sample_mp4)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_mp4(tmp_path_factory.mktemp("sample") / "sample.mp4")


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The bot's database, for tests that run on both engines: the SQLite file the harness
    points ``DATABASE_PATH`` at, or a fresh PostgreSQL URL (give it with ``engine_env``)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "bot.sqlite3"
