"""Counters of the content policy (``policy_counts``, migration 0010), per UTC day and kind.

A refused request creates no job, so it is counted here; the counts survive restarts and are
shared by every process that reads the database. /stats shows today's figure and the total.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

import aiosqlite


class PolicyKind:
    PROMPT = "prompt"
    """A request (prompt, negative prompt or caption) matched ``BLOCKED_WORDS_FILE``."""
    RENDER = "render"
    """The prompt sent to the model (the translation) matched, in the worker."""
    VIDEO = "video"
    """``NSFW_MODEL`` flagged a finished video: withheld."""

    ALL: tuple[str, ...] = (PROMPT, RENDER, VIDEO)


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


class PolicyCounts:
    """Reads and writes of ``policy_counts``; ``clock`` is injectable for tests."""

    def __init__(self, conn: aiosqlite.Connection, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock

    async def add(self, kind: str) -> None:
        async with self.conn.execute(
            "INSERT INTO policy_counts (day, kind, hits) VALUES (?, ?, 1)"
            " ON CONFLICT (day, kind) DO UPDATE SET hits = policy_counts.hits + 1",
            (utc_day(self.clock()), kind),
        ):
            pass

    async def counts(self) -> dict[str, tuple[int, int]]:
        """``{kind: (today, total)}`` for every kind, zeros included."""
        today = utc_day(self.clock())
        rows = await self.conn.execute_fetchall("SELECT day, kind, hits FROM policy_counts", ())
        found = {kind: [0, 0] for kind in PolicyKind.ALL}
        for row in rows:
            figures = found.setdefault(row["kind"], [0, 0])
            figures[1] += int(row["hits"])
            if row["day"] == today:
                figures[0] += int(row["hits"])
        return {kind: (today_n, total) for kind, (today_n, total) in found.items()}
