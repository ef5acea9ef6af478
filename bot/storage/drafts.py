"""Prompt drafts: a request waiting for its user's choice between the improved prompt and the
text as written (the "ask" mode of the prompt improver, ``bot/services/drafts.py``).

State machine, each step one guarded ``UPDATE … WHERE state = ?`` that reports whether it
happened::

    improving ──improved──▶ ready ──a button──▶ chosen
        └──────────improvement failed─────────────┘   (choice "plain", chosen by the request)

The token is random (``secrets``), names nothing about the user and is the only thing a button
carries. A draft is created once per Telegram update (``update_id`` is unique), so an update
replayed after a crash finds its draft; the press that chose is stored (``choice_update_id``), so
the same press replayed finds its choice and queues the same job again — which the request
service then finds by that update id — while any other press finds the draft already chosen.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite


class DraftState:
    IMPROVING = "improving"
    READY = "ready"
    CHOSEN = "chosen"


class Choice:
    IMPROVED = "improved"
    PLAIN = "plain"
    """The text as written (a button), or the plain translation after a failed improvement."""

    ALL: tuple[str, ...] = (IMPROVED, PLAIN)


TOKEN_BYTES = 12
"""16 URL-safe characters: 96 random bits, neither guessable nor enumerable."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class Draft:
    token: str
    update_id: int | None
    user_id: int
    chat_id: int
    request_message_id: int | None
    request: str
    """The request as written, options included (they are resolved when it is queued)."""
    locale: str | None
    state: str
    improved: str | None
    reason: str | None
    message_id: int | None
    choice: str | None
    choice_update_id: int | None
    created_at: float

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Draft:
        return cls(
            token=row["token"],
            update_id=row["update_id"],
            user_id=row["user_id"],
            chat_id=row["chat_id"],
            request_message_id=row["request_message_id"],
            request=row["request"],
            locale=row["locale"],
            state=row["state"],
            improved=row["improved"],
            reason=row["reason"],
            message_id=row["message_id"],
            choice=row["choice"],
            choice_update_id=row["choice_update_id"],
            created_at=row["created_at"],
        )


class DraftStore:
    """All reads and writes of ``prompt_drafts``. ``clock`` is injectable for tests."""

    def __init__(self, conn: aiosqlite.Connection, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock

    async def _one(self, sql: str, params: tuple[object, ...]) -> Draft | None:
        rows = await self.conn.execute_fetchall(sql, params)
        return Draft.from_row(rows[0]) if rows else None

    async def _changed(self, sql: str, params: tuple[object, ...]) -> bool:
        async with self.conn.execute(sql, params) as cursor:
            return cursor.rowcount > 0

    async def create(
        self,
        *,
        user_id: int,
        chat_id: int,
        request_message_id: int | None,
        request: str,
        locale: str | None,
        update_id: int | None,
    ) -> Draft:
        """A new ``improving`` draft, or the one update ``update_id`` created before."""
        draft = await self._one(
            "INSERT INTO prompt_drafts (token, update_id, user_id, chat_id, request_message_id,"
            " request, locale, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING *",
            (
                new_token(),
                update_id,
                user_id,
                chat_id,
                request_message_id,
                request,
                locale,
                DraftState.IMPROVING,
                self.clock(),
            ),
        )
        if draft is None:
            draft = await self.by_update(update_id)
        assert draft is not None
        return draft

    async def by_update(self, update_id: int | None) -> Draft | None:
        """The draft update ``update_id`` created, if any (a replayed update finds it)."""
        if update_id is None:
            return None
        return await self._one("SELECT * FROM prompt_drafts WHERE update_id = ?", (update_id,))

    async def improving(self, user_id: int, since_ts: float) -> bool:
        """Whether ``user_id`` has a draft being improved, made after ``since_ts``."""
        rows = await self.conn.execute_fetchall(
            "SELECT COUNT(*) AS n FROM prompt_drafts WHERE user_id = ? AND state = ?"
            " AND created_at >= ?",
            (user_id, DraftState.IMPROVING, since_ts),
        )
        return bool(rows[0]["n"])

    async def get(self, token: str) -> Draft | None:
        return await self._one("SELECT * FROM prompt_drafts WHERE token = ?", (token,))

    async def set_improved(self, token: str, text: str) -> bool:
        """improving → ready, holding the improved prompt."""
        return await self._changed(
            "UPDATE prompt_drafts SET state = ?, improved = ? WHERE token = ? AND state = ?",
            (DraftState.READY, text, token, DraftState.IMPROVING),
        )

    async def set_message(self, token: str, message_id: int) -> bool:
        """The message that shows the improved prompt and its buttons."""
        return await self._changed(
            "UPDATE prompt_drafts SET message_id = ? WHERE token = ?", (message_id, token)
        )

    async def choose(self, token: str, choice: str, update_id: int | None) -> bool:
        """ready → chosen by the press ``update_id``; False if it was not ``ready`` (chosen
        already, or still improving): exactly one press wins."""
        return await self._changed(
            "UPDATE prompt_drafts SET state = ?, choice = ?, choice_update_id = ?"
            " WHERE token = ? AND state = ?",
            (DraftState.CHOSEN, choice, update_id, token, DraftState.READY),
        )

    async def reopen(self, token: str, update_id: int | None) -> bool:
        """chosen → ready again: the press ``update_id`` queued nothing (a limit refused it)."""
        return await self._changed(
            "UPDATE prompt_drafts SET state = ?, choice = NULL, choice_update_id = NULL"
            " WHERE token = ? AND state = ? AND choice_update_id = ?",
            (DraftState.READY, token, DraftState.CHOSEN, update_id),
        )

    async def give_up(self, token: str, reason: str, update_id: int | None) -> bool:
        """improving → chosen ``plain``: the improvement failed (``reason``), the request is
        queued as written, by the request's own update."""
        return await self._changed(
            "UPDATE prompt_drafts SET state = ?, choice = ?, choice_update_id = ?, reason = ?"
            " WHERE token = ? AND state = ?",
            (DraftState.CHOSEN, Choice.PLAIN, update_id, reason, token, DraftState.IMPROVING),
        )

    async def prune(self, before_ts: float) -> int:
        """Forget drafts created before ``before_ts`` (their buttons then say so)."""
        async with self.conn.execute(
            "DELETE FROM prompt_drafts WHERE created_at < ?", (before_ts,)
        ) as cursor:
            return cursor.rowcount
