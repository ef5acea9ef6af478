"""Share links (``share_links``, migration 0010): an unguessable token per shared job.

The token is ``secrets.token_urlsafe(16)``: 128 random bits written as 22 characters of
``A-Z a-z 0-9 _ -`` — exactly the alphabet Telegram allows in a ``?start=`` parameter (at most 64
characters). It is not derived from the job, the user or a counter, so it reveals nothing and
cannot be enumerated; a job keeps one token, so pressing «🔗» twice gives the same link.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

import aiosqlite

TOKEN_BYTES = 16
"""128 bits of randomness per token (the brief asks for at least 96)."""
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22}")
"""The shape of every token this store makes; anything else is refused before a lookup."""
CREATE_TRIES = 5


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(text: str | None) -> bool:
    return bool(text) and TOKEN_RE.fullmatch(text or "") is not None


class ShareStore:
    """Reads and writes of ``share_links``; ``clock`` is injectable for tests."""

    def __init__(self, conn: aiosqlite.Connection, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock

    async def token_for(self, job_id: int) -> str:
        """The job's token, made on first use (a token collision, never seen in practice, draws
        another)."""
        for _ in range(CREATE_TRIES):
            existing = await self._token_of(job_id)
            if existing is not None:
                return existing
            async with self.conn.execute(
                "INSERT INTO share_links (token, job_id, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (new_token(), job_id, self.clock()),
            ):
                pass
        existing = await self._token_of(job_id)
        if existing is None:
            raise RuntimeError(f"no share token could be stored for job {job_id}")
        return existing

    async def job_id(self, token: str) -> int | None:
        """The job a token opens; None for a malformed or unknown token."""
        if not is_token(token):
            return None
        rows = await self.conn.execute_fetchall(
            "SELECT job_id FROM share_links WHERE token = ?", (token,)
        )
        return int(rows[0]["job_id"]) if rows else None

    async def _token_of(self, job_id: int) -> str | None:
        rows = await self.conn.execute_fetchall(
            "SELECT token FROM share_links WHERE job_id = ?", (job_id,)
        )
        return str(rows[0]["token"]) if rows else None
