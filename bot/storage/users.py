"""Users: who they are, whether they are banned, and their personal defaults.

Settings are stored sparsely: only the keys a person actually changed. Whatever they never
touched falls through to the operator's current defaults, so changing ``DEFAULT_*`` reaches
everyone who did not choose otherwise. Each write is one statement using the database's JSON
functions (SQLite's or PostgreSQL's: ``Dialect`` in bot/storage/engine.py), so two concurrent
button presses cannot lose each other's change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.storage.engine import Database, Row, dialect_of


@dataclass(frozen=True)
class User:
    user_id: int
    username: str | None
    first_name: str | None
    created_at: float
    banned: bool
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            user_id=row["user_id"],
            username=row["username"],
            first_name=row["first_name"],
            created_at=row["created_at"],
            banned=bool(row["banned"]),
            settings=_load(row["settings"]),
        )


def _load(text: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class UserStore:
    """All reads and writes of ``users``. ``clock`` is injectable for tests."""

    def __init__(self, conn: Database, clock: Callable[[], float] = time.time):
        self.conn = conn
        self.clock = clock
        self.dialect = dialect_of(conn)

    async def touch(self, user_id: int, username: str | None, first_name: str | None) -> User:
        """Create the user or refresh their names (called on every update); returns the row."""
        rows = await self.conn.execute_fetchall(
            "INSERT INTO users (user_id, username, first_name, created_at, last_seen_at)"
            " VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET username = excluded.username,"
            " first_name = excluded.first_name, last_seen_at = excluded.last_seen_at RETURNING *",
            (user_id, username, first_name, self.clock(), self.clock()),
        )
        return User.from_row(next(iter(rows)))

    async def get(self, user_id: int) -> User | None:
        rows = await self.conn.execute_fetchall("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return User.from_row(rows[0]) if rows else None

    async def is_banned(self, user_id: int) -> bool:
        rows = await self.conn.execute_fetchall(
            "SELECT banned FROM users WHERE user_id = ?", (user_id,)
        )
        return bool(rows and rows[0][0])

    async def ban(self, user_id: int) -> bool:
        """Ban a user, even one the bot has never seen; False if already banned."""
        async with self.conn.execute(
            "INSERT INTO users (user_id, created_at, banned) VALUES (?, ?, 1)"
            " ON CONFLICT (user_id) DO UPDATE SET banned = 1 WHERE users.banned = 0",
            (user_id, self.clock()),
        ) as cursor:
            return cursor.rowcount > 0

    async def unban(self, user_id: int) -> bool:
        """False if the user was not banned."""
        async with self.conn.execute(
            "UPDATE users SET banned = 0 WHERE user_id = ? AND banned = 1", (user_id,)
        ) as cursor:
            return cursor.rowcount > 0

    async def banned_ids(self) -> list[int]:
        rows = await self.conn.execute_fetchall(
            "SELECT user_id FROM users WHERE banned = 1 ORDER BY user_id"
        )
        return [row[0] for row in rows]

    async def get_settings(self, user_id: int) -> dict[str, Any]:
        """Only what the user changed; empty for an unknown user."""
        rows = await self.conn.execute_fetchall(
            "SELECT settings FROM users WHERE user_id = ?", (user_id,)
        )
        return _load(rows[0][0]) if rows else {}

    async def update_settings(self, user_id: int, **changes: Any) -> dict[str, Any]:
        """Set the given keys (``None`` removes a key: back to the operator's default); returns
        the stored settings after the change. Values must be JSON-serialisable."""
        # A corrupt value (written by hand) is treated as empty rather than failing every write.
        dialect = self.dialect
        expression = dialect.json_object_or_empty("settings")
        params: list[Any] = []
        for key, value in changes.items():
            if value is None:
                expression = dialect.json_remove_param(expression)
                params.append(dialect.json_key(key))
            else:
                expression = dialect.json_set_param(expression)
                params.extend([dialect.json_key(key), json.dumps(value, ensure_ascii=False)])
        expression = dialect.json_as_text(expression)
        await self.conn.execute(
            "INSERT INTO users (user_id, created_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
            (user_id, self.clock()),
        )
        rows = await self.conn.execute_fetchall(
            f"UPDATE users SET settings = {expression} WHERE user_id = ? RETURNING settings",
            (*params, user_id),
        )
        return _load(rows[0][0])

    async def reset_settings(self, user_id: int) -> bool:
        """Forget every personal default; False if there was nothing to forget."""
        async with self.conn.execute(
            "UPDATE users SET settings = '{}' WHERE user_id = ? AND settings != '{}'", (user_id,)
        ) as cursor:
            return cursor.rowcount > 0

    async def forget_names(self, before_ts: float) -> int:
        """``DATA_RETENTION_DAYS``: drop the names of users not seen since ``before_ts`` (their
        id, ban and settings stay: they are what the bot needs). Returns how many."""
        cursor = await self.conn.execute(
            "UPDATE users SET username = NULL, first_name = NULL WHERE last_seen_at < ?"
            " AND (username IS NOT NULL OR first_name IS NOT NULL)",
            (before_ts,),
        )
        return cursor.rowcount

    async def count_users(self) -> int:
        rows = await self.conn.execute_fetchall("SELECT COUNT(*) FROM users")
        return rows[0][0]
