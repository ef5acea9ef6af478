"""The front ends' leader lock: which one process may long-poll a token and run the background
duties (delivery of what workers rendered, status refreshes, the janitor).

Why a lock that dies with its holder: Telegram answers 409 Conflict to a second ``getUpdates``
of one token, and two front ends delivering the same generated job would send the video twice.
A lease written to a table would need a heartbeat and a timeout before a standby may take over;
these locks are released by the operating system or the database server the moment the holder's
process (or its connection) ends, so a kill -9 hands over within the standby's next try.

- PostgreSQL (``DATABASE_URL``): a session-level ``pg_try_advisory_lock(key)`` on a dedicated
  connection of its own, kept open for the process's life (never a pooled one: a pool hands
  connections around and recycles them, and the lock belongs to the session that took it).
  :meth:`PostgresLeaderLock.check` asks the connection now and then; when it is gone the lock is
  gone too (the server ended the session) and this process must stop acting as the leader.
- SQLite (one host): ``fcntl.flock`` on a file next to the database
  (``DATABASE_PATH`` + ``.leader``); the kernel drops it when the process dies.

The key is derived from the bot's id (the token's numeric part), so two bots sharing one
database do not exclude each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from bot.storage.engine import lock_key

log = logging.getLogger(__name__)

TIMEOUT = 3.0
"""Seconds a connect or a check of the lock's connection may take before it counts as gone."""
KEEPALIVES = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
)


class LeaderLock(Protocol):
    """A lock held by at most one process at a time, released when that process dies."""

    description: str

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits for it."""

    async def check(self) -> bool:
        """Whether the lock is still held (False once its connection is gone)."""

    async def release(self) -> None:
        """Give the lock up (a graceful stop; a dying process releases it anyway)."""


def bot_id(token: str) -> str:
    """The numeric part of a bot token (``123456:ABC…`` → ``123456``): names the lock, never
    reveals the secret."""
    return token.split(":", 1)[0]


class FileLeaderLock:
    """``flock`` on ``path`` (SQLite: all front ends run on the database's host)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"the file lock {path}"
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for an operator's look
        self._fd = fd
        return True

    async def check(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class PostgresLeaderLock:
    """A session-level advisory lock on a connection of its own (not from the pool)."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.key = lock_key("telegram.leader", name)
        self.description = f"the PostgreSQL advisory lock {self.key}"
        self._conn: Any = None
        self._held = False

    async def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._held = False
            # keepalives: a holder whose machine vanished is noticed by the server in seconds,
            # so its session (and the lock) ends instead of waiting for TCP's hours.
            conn = await asyncio.wait_for(
                psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=2,
                    keepalives_count=3,
                ),
                TIMEOUT,
            )
            # The server's side too: if this machine vanishes (a partition, a power cut), the
            # server ends the session (and frees the lock) within about 11 s instead of the
            # operating system's two hours. User-settable; a server that refuses keeps its own.
            for setting in KEEPALIVES:
                with contextlib.suppress(Exception):
                    await conn.execute(setting)
            self._conn = conn
        return self._conn

    async def try_acquire(self) -> bool:
        if self._held:
            return True
        conn = await self._connection()
        cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
        row = await cursor.fetchone()
        self._held = bool(row and row[0])
        return self._held

    async def check(self) -> bool:
        if not self._held or self._conn is None or self._conn.closed:
            self._held = False
            return False
        try:
            await asyncio.wait_for(self._conn.execute("SELECT 1"), TIMEOUT)
        except Exception as error:  # a timeout too: a partitioned session may be gone already
            log.error("leader lock: its database connection is gone: %r", error)
            self._held = False
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), TIMEOUT)
            return False
        return True

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        self._held = False
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                await conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            with contextlib.suppress(Exception):
                await conn.close()


def leader_lock(database_url: str | None, database_path: Path, token: str) -> LeaderLock:
    """The lock for this deployment: PostgreSQL's with ``DATABASE_URL``, else the file lock."""
    if database_url:
        return PostgresLeaderLock(database_url, bot_id(token))
    return FileLeaderLock(Path(f"{database_path}.leader"))
