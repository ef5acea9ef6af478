"""Database setup (SQLite by default, PostgreSQL with ``DATABASE_URL``) and numbered migrations.

The engines and the API the stores use are described in :mod:`bot.storage.engine`. On SQLite one
aiosqlite connection is shared by the whole bot. It runs in autocommit mode
(``isolation_level=None``): every single statement is its own atomic transaction, and the few
multi-statement operations say so explicitly with :func:`transaction` (``BEGIN IMMEDIATE``), so
Python's implicit ``BEGIN`` never holds a write lock behind our back.

Migrations are ``bot/migrations/NNNN_name.sql`` files, package data read with
:mod:`importlib.resources` (so an installed wheel carries them, not only a source checkout),
applied in numeric order, each in one transaction together with its row in
``schema_migrations``; a crash mid-migration leaves the database at the previous version. Files
must not contain ``BEGIN``/``COMMIT`` themselves.

A migration is portable SQL that runs on both engines, unless the folder also holds a dialect
override with the same number: ``NNNN_name.postgres.sql`` (or ``NNNN_name.sqlite.sql``) replaces
``NNNN_name.sql`` on that engine (0001–0006 predate PostgreSQL: AUTOINCREMENT and REAL there
become BIGSERIAL/BIGINT and DOUBLE PRECISION). Whichever process starts first applies them: under
``BEGIN IMMEDIATE`` on SQLite, under ``pg_advisory_xact_lock`` on PostgreSQL, and every process
checks ``schema_migrations`` again once it holds the lock.
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

from bot.storage.engine import POSTGRES, SQLITE, Database, PostgresDatabase, is_postgres_url

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DEFAULT_MIGRATIONS_DIR: Traversable = importlib.resources.files("bot") / "migrations"
"""The migrations shipped with the package (``bot/migrations/``, package data in the wheel)."""
BUSY_TIMEOUT_MS = 5000

_MIGRATION_RE = re.compile(r"^(\d+)_([\w.-]+?)(?:\.(sqlite|postgres))?\.sql$")
MIGRATION_LOCK = 0x7432_7662  # pg_advisory_xact_lock key of the migrations ("t2vb")
_DIALECT_SUFFIX = {SQLITE.name: "sqlite", POSTGRES.name: "postgres"}
_locks: weakref.WeakKeyDictionary[aiosqlite.Connection, asyncio.Lock] = weakref.WeakKeyDictionary()


class MigrationError(RuntimeError):
    """The migrations folder is inconsistent (e.g. two files share a number)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Traversable
    """A file of the package (a :class:`~pathlib.Path` in a checkout or an unpacked wheel)."""


async def open_database(
    path: str | Path, url: str | None = None, *, pool_size: int = 10
) -> Database:
    """The configured database: a PostgreSQL pool when ``url`` (``DATABASE_URL``) is set, else
    the SQLite file at ``path`` (``DATABASE_PATH``). Close it with ``await db.close()``."""
    if url:
        if not is_postgres_url(url):
            raise ValueError("DATABASE_URL must start with postgresql://")
        return await PostgresDatabase.open(url, max_size=pool_size)
    return await connect(path)


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
async def transaction(conn: Database) -> AsyncIterator[Database]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error).

    On PostgreSQL: one pooled connection in one transaction for the block, used by every call
    the current task makes on ``conn`` inside it (:meth:`PostgresDatabase.transaction`).

    IMMEDIATE takes the write lock up front, so a read-then-write sequence cannot fail halfway
    with SQLITE_BUSY. Coroutines sharing ``conn`` are serialised by a per-connection lock (SQLite
    has no nested transactions). Note that a plain statement issued by another coroutine on the
    same connection meanwhile becomes part of this transaction.
    """
    if isinstance(conn, PostgresDatabase):
        async with conn.transaction():
            yield conn
        return
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


def discover(
    migrations_dir: str | Path | Traversable, dialect: str = SQLITE.name
) -> list[Migration]:
    """Every ``NNNN_name.sql`` in the folder, by number, with ``dialect``'s overrides
    (``NNNN_name.postgres.sql``, ``NNNN_name.sqlite.sql``) in place of the portable file; other
    files are ignored. ``name`` is the portable file's (what ``schema_migrations`` records)."""
    folder = Path(migrations_dir) if isinstance(migrations_dir, str) else migrations_dir
    wanted = _DIALECT_SUFFIX[dialect]
    portable: dict[int, Migration] = {}
    overrides: dict[int, Migration] = {}
    seen: dict[tuple[int, str | None], str] = {}
    for path in sorted(folder.iterdir(), key=lambda item: item.name):
        match = _MIGRATION_RE.match(path.name)
        if not match or not path.is_file():
            continue
        version, suffix = int(match.group(1)), match.group(3)
        if (version, suffix) in seen:
            raise MigrationError(
                f"migrations {seen[version, suffix]} and {path.name} share number {version}"
            )
        seen[version, suffix] = path.name
        migration = Migration(version, match.group(2), path)
        if suffix is None:
            portable[version] = migration
        elif suffix == wanted:
            overrides[version] = migration
    for version, migration in overrides.items():
        if version in portable:  # keep the portable file's name for schema_migrations
            overrides[version] = Migration(version, portable[version].name, migration.path)
    found = {**portable, **overrides}
    return [found[v] for v in sorted(found)]


async def applied_versions(conn: Database) -> set[int]:
    rows = await conn.execute_fetchall("SELECT version FROM schema_migrations")
    return {row[0] for row in rows}


async def _has_migrations_table(conn: Database) -> bool:
    if isinstance(conn, PostgresDatabase):
        rows = await conn.execute_fetchall("SELECT to_regclass('schema_migrations') IS NOT NULL")
        return bool(rows[0][0])
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )
    return bool(rows)


async def pending(
    conn: Database, migrations_dir: str | Path | Traversable | None = None
) -> list[Migration]:
    """The migrations not yet applied to ``conn``'s database, without applying or creating
    anything (``python -m bot --check``)."""
    dialect = POSTGRES.name if isinstance(conn, PostgresDatabase) else SQLITE.name
    migrations = discover(migrations_dir or DEFAULT_MIGRATIONS_DIR, dialect)
    done = await applied_versions(conn) if await _has_migrations_table(conn) else set()
    return [m for m in migrations if m.version not in done]


async def migrate(
    conn: Database, migrations_dir: str | Path | Traversable | None = None
) -> list[Migration]:
    """Apply every migration not yet recorded, in numeric order; return those applied now.

    Safe to call at every start and from two processes at once: the "already applied?" check is
    repeated inside each migration's write transaction, which holds the engine's lock.
    """
    if isinstance(conn, PostgresDatabase):
        return await _migrate_postgres(conn, migrations_dir)
    migrations = discover(migrations_dir or DEFAULT_MIGRATIONS_DIR, SQLITE.name)
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


async def _migrate_postgres(
    conn: PostgresDatabase, migrations_dir: str | Path | Traversable | None
) -> list[Migration]:
    """Each migration in one transaction holding ``pg_advisory_xact_lock`` (DDL is
    transactional on PostgreSQL): a second process waits for the lock, then finds the
    migration recorded and skips it. Even ``CREATE TABLE IF NOT EXISTS`` runs under the lock
    (two of them racing can fail on PostgreSQL's catalogue)."""
    migrations = discover(migrations_dir or DEFAULT_MIGRATIONS_DIR, POSTGRES.name)
    applied: list[Migration] = []
    for migration in migrations:
        statements = split_statements(migration.path.read_text(encoding="utf-8"))
        async with conn.pool.connection() as raw, raw.transaction():
            await raw.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await raw.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            cursor = await raw.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
            )
            if await cursor.fetchone():
                continue
            for statement in statements:
                await raw.execute(statement.encode())  # bytes: no placeholder parsing
            await raw.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.name, time.time()),
            )
        applied.append(migration)
    return applied
