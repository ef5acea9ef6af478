"""SQLite connection setup and numbered migrations.

One aiosqlite connection is shared by the whole bot. It runs in autocommit mode
(``isolation_level=None``): every single statement is its own atomic transaction, and the few
multi-statement operations say so explicitly with :func:`transaction` (``BEGIN IMMEDIATE``), so
Python's implicit ``BEGIN`` never holds a write lock behind our back.

Migrations are ``bot/migrations/NNNN_name.sql`` files, package data read with
:mod:`importlib.resources` (so an installed wheel carries them, not only a source checkout),
applied in numeric order, each in one transaction together with its row in
``schema_migrations``; a crash mid-migration leaves the database at the previous version. Files
must not contain ``BEGIN``/``COMMIT`` themselves.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DEFAULT_MIGRATIONS_DIR: Traversable = importlib.resources.files("bot") / "migrations"
"""The migrations shipped with the package (``bot/migrations/``, package data in the wheel)."""
BUSY_TIMEOUT_MS = 5000

_MIGRATION_RE = re.compile(r"^(\d+)_([\w.-]+)\.sql$")
_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


class MigrationError(RuntimeError):
    """The migrations folder is inconsistent (e.g. two files share a number)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Traversable
    """A file of the package (a :class:`~pathlib.Path` in a checkout or an unpacked wheel)."""


async def connect(path: str | Path) -> aiosqlite.Connection:
    """Open the bot database: WAL (readers never block the writer), a busy timeout so a second
    process waits instead of failing, foreign keys on, rows addressable by column name."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


def _lock_for(conn: aiosqlite.Connection) -> asyncio.Lock:
    lock = _locks.get(conn)
    if lock is None:
        lock = _locks[conn] = asyncio.Lock()
    return lock


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error).

    IMMEDIATE takes the write lock up front, so a read-then-write sequence cannot fail halfway
    with SQLITE_BUSY. Coroutines sharing ``conn`` are serialised by a per-connection lock (SQLite
    has no nested transactions). Note that a plain statement issued by another coroutine on the
    same connection meanwhile becomes part of this transaction.
    """
    async with _lock_for(conn):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                await conn.rollback()
            raise
        else:
            await conn.commit()


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (uses SQLite's own tokenizer, so semicolons
    inside strings, comments and trigger bodies are handled)."""
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            statement = script[start : index + 1].strip()
            if statement.strip(";").strip():
                statements.append(statement)
            start = index + 1
    rest = script[start:].strip()
    if rest and sqlite3.complete_statement(rest + "\n;"):
        # A last statement without its semicolon, or a trailing comment (a no-op to execute).
        statements.append(rest)
    elif rest:
        raise MigrationError(f"incomplete SQL statement at the end: {rest[:60]!r}")
    return statements


def discover(migrations_dir: str | Path | Traversable) -> list[Migration]:
    """Every ``NNNN_name.sql`` in the folder, by number; other files are ignored."""
    folder = Path(migrations_dir) if isinstance(migrations_dir, str) else migrations_dir
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir(), key=lambda item: item.name):
        match = _MIGRATION_RE.match(path.name)
        if not match or not path.is_file():
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"migrations {found[version].path.name} and {path.name} share number {version}"
            )
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


async def applied_versions(conn: aiosqlite.Connection) -> set[int]:
    rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
    return {row[0] for row in rows}


async def pending(
    conn: aiosqlite.Connection, migrations_dir: str | Path | Traversable | None = None
) -> list[Migration]:
    """The migrations not yet applied to ``conn``'s database, without applying or creating
    anything (``python -m bot --check``)."""
    migrations = discover(migrations_dir or DEFAULT_MIGRATIONS_DIR)
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )
    done = await applied_versions(conn) if rows else set()
    return [m for m in migrations if m.version not in done]


async def migrate(
    conn: aiosqlite.Connection, migrations_dir: str | Path | Traversable | None = None
) -> list[Migration]:
    """Apply every migration not yet recorded, in numeric order; return those applied now.

    Safe to call at every start and from two processes at once: the "already applied?" check is
    repeated inside each migration's write transaction.
    """
    migrations = discover(migrations_dir or DEFAULT_MIGRATIONS_DIR)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done = await applied_versions(conn)
    applied: list[Migration] = []
    for migration in migrations:
        if migration.version in done:
            continue
        statements = split_statements(migration.path.read_text(encoding="utf-8"))
        async with transaction(conn):
            rows = await conn.execute_fetchall(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
            )
            if rows:  # another process applied it since we looked
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        applied.append(migration)
    return applied
