"""Fixtures of the scale-out tests: the reliability suite's fork server (it starts the front end,
``python -m bot`` with ``ROLE=frontend``, and workers, ``python -m bot.worker``, as real
processes with the stage backend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import ForkServer, make_sample_mp4


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
