"""bot/users.py: user rows, bans, sparse personal settings (real SQLite files)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.storage import db
from bot.storage.users import UserStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "bot.sqlite3"


@pytest.fixture
async def conn(db_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await db.connect(db_path)
    await db.migrate(connection)
    yield connection
    await connection.close()


@pytest.fixture
def users(conn: aiosqlite.Connection) -> UserStore:
    return UserStore(conn, clock=lambda: 1000.0)


async def test_touch_creates_then_updates_names(conn: aiosqlite.Connection) -> None:
    now = [1000.0]
    users = UserStore(conn, clock=lambda: now[0])
    created = await users.touch(7, "anna", "Анна")
    assert (created.user_id, created.username, created.first_name) == (7, "anna", "Анна")
    assert created.created_at == 1000.0 and not created.banned and created.settings == {}
    now[0] = 2000.0
    updated = await users.touch(7, None, "Анна К.")
    assert (updated.username, updated.first_name) == (None, "Анна К.")
    assert updated.created_at == 1000.0  # first seen, not last seen
    assert await users.get(7) == updated
    assert await users.get(8) is None
    assert await users.count_users() == 1


async def test_ban_unban_report_changes(users: UserStore) -> None:
    assert not await users.is_banned(42)
    assert await users.ban(42)  # never seen: banned anyway
    assert await users.is_banned(42)
    assert not await users.ban(42)
    assert await users.banned_ids() == [42]
    touched = await users.touch(42, "spammer", "S")  # coming back does not lift the ban
    assert touched.banned
    assert await users.unban(42)
    assert not await users.is_banned(42)
    assert not await users.unban(42)
    assert not await users.unban(999)
    assert await users.get(999) is None  # unban does not invent users
    assert await users.banned_ids() == []


async def test_ban_keeps_settings_and_names(users: UserStore) -> None:
    await users.touch(1, "u", "U")
    await users.update_settings(1, aspect="9:16")
    await users.ban(1)
    user = await users.get(1)
    assert user.banned and user.username == "u" and user.settings == {"aspect": "9:16"}


async def test_settings_store_only_what_changed(users: UserStore, db_path: Path) -> None:
    assert await users.get_settings(5) == {}  # unknown user
    assert await users.update_settings(5, aspect="9:16") == {"aspect": "9:16"}
    stored = await users.update_settings(5, quality="best", fixed_seed=1234, translate=False)
    assert stored == {"aspect": "9:16", "quality": "best", "fixed_seed": 1234, "translate": False}
    # None removes a key, so the operator's default applies to it again.
    assert await users.update_settings(5, fixed_seed=None, length="short") == {
        "aspect": "9:16",
        "quality": "best",
        "translate": False,
        "length": "short",
    }
    # Operator defaults come first, personal choices on top: a new default reaches this user
    # for every key they never set.
    operator_defaults = {"aspect": "16:9", "quality": "balanced", "length": "normal", "fps": 24}
    effective = {**operator_defaults, **await users.get_settings(5)}
    assert effective["fps"] == 24 and effective["aspect"] == "9:16"

    other = await db.connect(db_path)  # survives a restart
    try:
        assert await UserStore(other).get_settings(5) == await users.get_settings(5)
    finally:
        await other.close()


async def test_settings_values_keep_their_types_and_odd_keys(users: UserStore) -> None:
    values = {"flag": True, "ratio": 0.5, "items": [1, "два"], "nested": {"a": None}}
    assert await users.update_settings(3, **values, **{"key.with dots": "x"}) == {
        **values,
        "key.with dots": "x",
    }
    assert await users.update_settings(3) == await users.get_settings(3)  # no changes


async def test_reset_settings(users: UserStore) -> None:
    assert not await users.reset_settings(1)  # unknown user
    await users.update_settings(1, aspect="1:1", quality="fast")
    assert await users.reset_settings(1)
    assert await users.get_settings(1) == {}
    assert not await users.reset_settings(1)  # nothing left to forget
    await users.update_settings(1, aspect="1:1")
    await users.update_settings(1, aspect=None)  # removing the last key also empties it
    assert not await users.reset_settings(1)


async def test_concurrent_setting_changes_are_not_lost(users: UserStore, db_path: Path) -> None:
    await users.touch(9, None, None)
    second = await db.connect(db_path)
    try:
        other = UserStore(second)
        keys = [f"k{i}" for i in range(20)]
        await asyncio.gather(
            *(
                (users if i % 2 else other).update_settings(9, **{key: i})
                for i, key in enumerate(keys)
            )
        )
    finally:
        await second.close()
    assert await users.get_settings(9) == {key: i for i, key in enumerate(keys)}


async def test_corrupt_settings_are_treated_as_empty(
    users: UserStore, conn: aiosqlite.Connection
) -> None:
    await users.touch(4, None, None)
    await conn.execute("UPDATE users SET settings = 'not json' WHERE user_id = 4")
    assert await users.get_settings(4) == {}
    assert (await users.get(4)).settings == {}
    assert await users.update_settings(4, aspect="1:1") == {"aspect": "1:1"}
