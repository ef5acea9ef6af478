"""Fixtures of the scale-out tests: the reliability suite's fork server (it starts the front end,
``python -m bot`` with ``ROLE=frontend``, and workers, ``python -m bot.worker``, as real
processes with the stage backend)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import FIGURES, ForkServer, make_sample_mp4


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures measured on the way (e.g. seconds from a worker's kill -9 to its job's re-claim),
    printed at the end; never asserted on."""
    if FIGURES:
        terminalreporter.section("scale figures")
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
