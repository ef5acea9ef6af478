"""A real PostgreSQL 16 for the tests, started by ``pgserver`` (a pip wheel: no system install).

One server per test session (about a second to start), one fresh database per test: a
template database is migrated once, and each test gets ``CREATE DATABASE … TEMPLATE`` of it
(tens of milliseconds), or an empty one for migration tests. When PostgreSQL cannot start the
fixtures raise: the tests that need it fail, never skip.

Fixtures (registered for every test by ``tests/conftest.py``):

- ``postgres_server``: the session's :class:`PostgresServer`;
- ``postgres_url``: a fresh, migrated database's ``postgresql://`` URL;
- ``empty_postgres_url``: a fresh database with no tables at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

TEMPLATE = "bot_migrated"


class PostgresServer:
    """A running PostgreSQL: hands out fresh databases by URL."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (unused)
            warnings.simplefilter("ignore")
            import pgserver

            self.server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
        self.admin_url = self.server.get_uri()
        self._names = itertools.count(1)
        self._template_ready = False
        # A test server: no crash safety of the host needed, and CREATE DATABASE (FILE_COPY)
        # then takes a tenth of a second instead of seconds.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            self._admin(f"ALTER SYSTEM SET {setting} = off")
        self._admin("SELECT pg_reload_conf()")

    def url(self, database: str) -> str:
        """The server's URL with another database name."""
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + database))

    def socket_path(self) -> Path:
        """The server's Unix socket (it listens on no TCP port): what a test proxy forwards to."""
        directory = Path(parse_qs(urlsplit(self.admin_url).query)["host"][0])
        return next(p for p in directory.glob(".s.PGSQL.*") if not p.name.endswith(".lock"))

    def restart_immediate(self) -> None:
        """``pg_ctl -m immediate restart``: every backend killed without a checkpoint (a crash of
        the database server), then crash recovery; the same socket and settings afterwards."""
        import pgserver

        pgserver.pg_ctl(
            ["-w", "-m", "immediate", "restart"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=60,
        )

    def terminate(self, application_name: str) -> int:
        """``pg_terminate_backend`` of every session with this ``application_name``: how many."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (application_name,),
            ).fetchone()
        return int(row[0]) if row else 0

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement.encode())

    def create_database(self, *, migrated: bool = True) -> str:
        """A new database (named uniquely in this session); migrated or empty."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        if migrated:
            self._ensure_template()
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}" STRATEGY FILE_COPY')
        else:
            self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _ensure_template(self) -> None:
        if self._template_ready:
            return
        self._admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{TEMPLATE}"')
        # In a thread: the fixture may be requested from inside a running event loop.
        url = self.url(TEMPLATE)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(_migrate(url))).result()
        self._template_ready = True


async def _migrate(url: str) -> None:
    from bot.storage import db

    conn = await db.open_database("", url)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's tmp_path: as root, pgserver runs PostgreSQL as its own system user,
    # which cannot enter pytest's 0700 folders. A short path, too: the server's Unix socket
    # lives in its data directory (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="t2v-pg-"))
    root.chmod(0o755)
    try:
        server = PostgresServer(root / "data")
        yield server
        server.server.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def empty_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database(migrated=False)
    yield url
    postgres_server.drop_database(url)
