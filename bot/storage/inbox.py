"""The update inbox (migration 0002): every update fetched from Telegram is stored here before
the offset that confirms it is sent, and marked done when its handling ended. See
``bot/telegram/updates.py`` for why."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from aiogram.types import Update

from bot.storage.db import transaction
from bot.storage.engine import Database

PRUNE_AFTER = 24 * 3600.0
"""Seconds a handled update is kept (Telegram re-sends an unconfirmed update for 24 h)."""


class UpdateInbox:
    """Reads and writes of ``update_inbox`` (migration 0002). ``clock`` is injectable."""

    def __init__(self, conn: Database, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock

    async def store(self, updates: Sequence[Update]) -> set[int]:
        """Write a fetched batch in one transaction (committed when this returns); return the ids
        that were new. Ids already present were stored by an earlier fetch (Telegram sent them
        again because the offset confirming them was never sent): not new."""
        if not updates:
            return set()
        ids = [update.update_id for update in updates]
        now = self.clock()
        async with transaction(self.conn):
            known = {
                row[0]
                for row in await self.conn.execute_fetchall(
                    f"SELECT update_id FROM update_inbox WHERE update_id IN"
                    f" ({', '.join('?' for _ in ids)})",
                    ids,
                )
            }
            fresh = [update for update in updates if update.update_id not in known]
            await self.conn.executemany(
                "INSERT INTO update_inbox (update_id, payload, received_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [
                    (
                        update.update_id,
                        update.model_dump_json(exclude_unset=True, by_alias=True),
                        now,
                    )
                    for update in fresh
                ],
            )
        return {update.update_id for update in fresh}

    async def mark_done(self, update_id: int) -> None:
        await self.conn.execute(
            "UPDATE update_inbox SET done = 1 WHERE update_id = ?", (update_id,)
        )

    async def pending(self) -> list[tuple[int, str]]:
        """``(update_id, payload)`` of every unfinished update, oldest first."""
        rows = await self.conn.execute_fetchall(
            "SELECT update_id, payload FROM update_inbox WHERE done = 0 ORDER BY update_id"
        )
        return [(row[0], row[1]) for row in rows]

    async def prune(self, older_than: float = PRUNE_AFTER) -> int:
        """Delete handled updates received more than ``older_than`` seconds ago; return how many."""
        async with self.conn.execute(
            "DELETE FROM update_inbox WHERE done = 1 AND received_at < ?",
            (self.clock() - older_than,),
        ) as cursor:
            return cursor.rowcount
