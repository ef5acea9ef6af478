"""Durable operator state (``app_state``, migration 0003): small switches that must survive a
restart and be the same for every process reading the database, such as the /pause flag."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.storage.engine import Database


class StateStore:
    """Reads and writes of ``app_state``; ``clock`` is injectable for tests."""

    def __init__(self, conn: Database, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock

    async def get(self, key: str) -> str | None:
        rows = await self.conn.execute_fetchall("SELECT value FROM app_state WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    async def set(self, key: str, value: str) -> bool:
        """Store ``value``; False if it was already the stored value (nothing changed)."""
        async with self.conn.execute(
            "INSERT INTO app_state (key, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at WHERE app_state.value != excluded.value",
            (key, value, self.clock()),
        ) as cursor:
            return cursor.rowcount > 0
