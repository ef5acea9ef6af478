"""bot/db.py: connection settings, numbered migrations, explicit transactions (real SQLite files)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.storage import db

REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "bot" / "migrations"


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await db.connect(tmp_path / "bot.sqlite3")
    yield connection
    await connection.close()


async def _tables(conn: aiosqlite.Connection) -> set[str]:
    rows = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}


async def _recorded(conn: aiosqlite.Connection) -> list[tuple[int, str]]:
    rows = await conn.execute_fetchall("SELECT version, name FROM schema_migrations ORDER BY 1")
    return [(row[0], row[1]) for row in rows]


# ---------------------------------------------------------------- connect


async def test_connect_creates_parent_dir_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "bot.sqlite3"
    conn = await db.connect(path)
    try:
        assert path.exists()
        assert (await conn.execute_fetchall("PRAGMA journal_mode"))[0][0] == "wal"
        assert (await conn.execute_fetchall("PRAGMA busy_timeout"))[0][0] == 5000
        assert (await conn.execute_fetchall("PRAGMA foreign_keys"))[0][0] == 1
        row = (await conn.execute_fetchall("SELECT 7 AS answer"))[0]
        assert row["answer"] == 7  # Row factory: columns by name
        # Autocommit: a write is visible to another connection without an explicit commit.
        await conn.execute("CREATE TABLE t (x)")
        await conn.execute("INSERT INTO t VALUES (1)")
        assert not conn.in_transaction
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT x FROM t").fetchall() == [(1,)]
    finally:
        await conn.close()


# ---------------------------------------------------------------- migrate


async def test_repo_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    conn = await db.connect(path)
    applied = await db.migrate(conn)  # default: the package's bot/migrations/
    assert [m.version for m in applied] == [m.version for m in db.discover(REPO_MIGRATIONS)]
    assert applied[0].version == 1
    assert {"users", "jobs", "schema_migrations"} <= await _tables(conn)
    assert (1, "init") in await _recorded(conn)
    assert await db.migrate(conn) == []  # same process, again
    await conn.close()

    conn = await db.connect(path)  # "restart"
    try:
        assert await db.migrate(conn) == []
        assert len(await _recorded(conn)) == len(applied)
        columns = {row["name"] for row in await conn.execute_fetchall("PRAGMA table_info(jobs)")}
        assert {
            "id",
            "status",
            "options",
            "attempts",
            "status_message_id",
            "video_meta",
            "file_id",
            "gen_seconds",
            "source",
        } <= columns
        indexes = {row[1] for row in await conn.execute_fetchall("PRAGMA index_list(jobs)")}
        assert {"idx_jobs_status_id", "idx_jobs_user_created"} <= indexes
    finally:
        await conn.close()


def test_default_migrations_are_package_data() -> None:
    """The migrations ship inside the ``bot`` package (read with importlib.resources), so a
    wheel carries them; nothing is read from the repository root any more."""
    import importlib.resources

    shipped = [m.name for m in db.discover(importlib.resources.files("bot") / "migrations")]
    assert shipped and shipped == [m.name for m in db.discover(db.DEFAULT_MIGRATIONS_DIR)]
    assert not (Path(__file__).resolve().parents[2] / "migrations").exists()


async def test_pending_lists_unapplied_migrations_without_applying(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO_MIGRATIONS, migrations)
    conn = await db.connect(tmp_path / "bot.sqlite3")
    try:
        every = db.discover(migrations)
        assert [m.version for m in await db.pending(conn, migrations)] == [m.version for m in every]
        assert "schema_migrations" not in await _tables(conn)  # looking changed nothing
        await db.migrate(conn, migrations)
        assert await db.pending(conn, migrations) == []
        (migrations / "0099_more.sql").write_text("CREATE TABLE more (x);", encoding="utf-8")
        assert [(m.version, m.name) for m in await db.pending(conn, migrations)] == [(99, "more")]
        assert "more" not in await _tables(conn)
    finally:
        await conn.close()


async def test_new_migration_file_is_applied_on_next_start(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO_MIGRATIONS, migrations)
    path = tmp_path / "bot.sqlite3"
    conn = await db.connect(path)
    first = await db.migrate(conn, migrations)
    await conn.close()

    (migrations / "0099_add_note.sql").write_text(
        "ALTER TABLE jobs ADD COLUMN note TEXT;\n"
        "CREATE INDEX idx_jobs_note ON jobs (note); -- a trailing comment\n",
        encoding="utf-8",
    )
    conn = await db.connect(path)
    try:
        applied = await db.migrate(conn, migrations)
        assert [(m.version, m.name) for m in applied] == [(99, "add_note")]
        assert (99, "add_note") in await _recorded(conn)
        assert len(await _recorded(conn)) == len(first) + 1
        columns = {row["name"] for row in await conn.execute_fetchall("PRAGMA table_info(jobs)")}
        assert "note" in columns
        assert await db.migrate(conn, migrations) == []
    finally:
        await conn.close()


async def test_migrations_run_in_numeric_not_lexical_order(
    conn: aiosqlite.Connection, tmp_path: Path
) -> None:
    migrations = tmp_path / "m"
    migrations.mkdir()
    # Lexically "10_…" sorts before "2_…"; 10 needs the table 2 creates.
    (migrations / "2_create.sql").write_text("CREATE TABLE a (x INTEGER);")
    (migrations / "10_fill.sql").write_text("INSERT INTO a VALUES (10);")
    (migrations / "README.txt").write_text("not a migration")
    applied = await db.migrate(conn, migrations)
    assert [m.version for m in applied] == [2, 10]
    assert [tuple(r) for r in await conn.execute_fetchall("SELECT x FROM a")] == [(10,)]


async def test_already_recorded_number_is_skipped(
    conn: aiosqlite.Connection, tmp_path: Path
) -> None:
    migrations = tmp_path / "m"
    migrations.mkdir()
    (migrations / "0001_a.sql").write_text("CREATE TABLE a (x);")
    await db.migrate(conn, migrations)
    # The file changes (or is renamed) after it was applied: its number is what counts.
    (migrations / "0001_a.sql").unlink()
    (migrations / "0001_renamed.sql").write_text("CREATE TABLE a (x);")
    assert await db.migrate(conn, migrations) == []


async def test_failed_migration_rolls_back_completely(
    conn: aiosqlite.Connection, tmp_path: Path
) -> None:
    migrations = tmp_path / "m"
    migrations.mkdir()
    (migrations / "0001_ok.sql").write_text("CREATE TABLE ok (x);")
    (migrations / "0002_broken.sql").write_text(
        "CREATE TABLE half (x);\nINSERT INTO ok VALUES (1);\nTHIS IS NOT SQL;"
    )
    with pytest.raises(sqlite3.OperationalError):
        await db.migrate(conn, migrations)
    assert not conn.in_transaction
    assert "half" not in await _tables(conn)
    assert await conn.execute_fetchall("SELECT * FROM ok") == []
    assert await _recorded(conn) == [(1, "ok")]

    (migrations / "0002_broken.sql").write_text("CREATE TABLE half (x);")
    assert [m.version for m in await db.migrate(conn, migrations)] == [2]
    assert "half" in await _tables(conn)


async def test_duplicate_migration_numbers_are_refused(
    conn: aiosqlite.Connection, tmp_path: Path
) -> None:
    migrations = tmp_path / "m"
    migrations.mkdir()
    (migrations / "0003_a.sql").write_text("SELECT 1;")
    (migrations / "3_b.sql").write_text("SELECT 1;")
    with pytest.raises(db.MigrationError, match="share number 3"):
        await db.migrate(conn, migrations)


async def test_two_processes_migrating_at_once_apply_each_file_once(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    first, second = await db.connect(path), await db.connect(path)
    try:
        results = await asyncio.gather(db.migrate(first), db.migrate(second))
        versions = sorted(m.version for result in results for m in result)
        expected = [m.version for m in db.discover(REPO_MIGRATIONS)]
        assert versions == expected
        assert [v for v, _ in await _recorded(first)] == expected
    finally:
        await first.close()
        await second.close()


def test_split_statements_respects_strings_comments_and_triggers() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET x = 'c;d' WHERE rowid = new.rowid;
        SELECT 1;
    END;
    /* block; comment */
    INSERT INTO t VALUES ('e;f')
    """
    statements = db.split_statements(script)
    assert len(statements) == 3
    assert statements[0].endswith("DEFAULT 'a;b');")
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2].endswith("VALUES ('e;f')")


# ---------------------------------------------------------------- transaction


async def test_transaction_commits_or_rolls_back(conn: aiosqlite.Connection) -> None:
    await conn.execute("CREATE TABLE t (x)")
    async with db.transaction(conn):
        await conn.execute("INSERT INTO t VALUES (1)")
        assert conn.in_transaction
    with pytest.raises(RuntimeError):
        async with db.transaction(conn):
            await conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("boom")
    assert not conn.in_transaction
    assert [tuple(r) for r in await conn.execute_fetchall("SELECT x FROM t")] == [(1,)]


async def test_concurrent_transactions_on_one_connection_are_serialised(
    conn: aiosqlite.Connection,
) -> None:
    await conn.execute("CREATE TABLE counter (n INTEGER)")
    await conn.execute("INSERT INTO counter VALUES (0)")

    async def increment() -> None:
        async with db.transaction(conn):
            n = (await conn.execute_fetchall("SELECT n FROM counter"))[0][0]
            await asyncio.sleep(0)  # let the other coroutine try to interleave
            await conn.execute("UPDATE counter SET n = ?", (n + 1,))

    await asyncio.gather(*(increment() for _ in range(20)))
    assert (await conn.execute_fetchall("SELECT n FROM counter"))[0][0] == 20
