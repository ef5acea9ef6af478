"""The contract suite's fixtures: the same store tests on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import db
from bot.storage.engine import Database
from bot.storage.jobs import JobStore, job_store

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def open_engine(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """A migrated database of ``engine``: a fresh SQLite file, or a fresh PostgreSQL database."""
    if engine == "sqlite":
        conn = await db.open_database(tmp_path / "bot.sqlite3")
        await db.migrate(conn)
        return conn
    url = request.getfixturevalue("postgres_url")
    return await db.open_database("", url)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def conn(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Database]:
    connection = await open_engine(engine, tmp_path, request)
    yield connection
    await connection.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(conn: Database, clock: FakeClock) -> JobStore:
    return job_store(conn, clock)
