"""Migrations on both engines: dialect overrides, the same schema, and two processes at once."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from bot.storage import db
from bot.storage.engine import Database
from tests.storage.conftest import open_engine

REPO = Path(__file__).resolve().parents[2]


def test_a_dialect_override_replaces_the_portable_file(tmp_path: Path) -> None:
    (tmp_path / "0001_init.sql").write_text("CREATE TABLE a (x INTEGER);")
    (tmp_path / "0001_init.postgres.sql").write_text("CREATE TABLE a (x BIGINT);")
    (tmp_path / "0002_more.sql").write_text("ALTER TABLE a ADD COLUMN y TEXT;")
    (tmp_path / "0003_only.sqlite.sql").write_text("SELECT 1;")
    (tmp_path / "0003_only.postgres.sql").write_text("SELECT 2;")
    (tmp_path / "notes.txt").write_text("ignored")
    sqlite = db.discover(tmp_path, "sqlite")
    postgres = db.discover(tmp_path, "postgresql")
    assert [(m.version, m.name, m.path.name) for m in sqlite] == [
        (1, "init", "0001_init.sql"),
        (2, "more", "0002_more.sql"),
        (3, "only", "0003_only.sqlite.sql"),
    ]
    assert [(m.version, m.name, m.path.name) for m in postgres] == [
        (1, "init", "0001_init.postgres.sql"),
        (2, "more", "0002_more.sql"),
        (3, "only", "0003_only.postgres.sql"),
    ]
    (tmp_path / "0002_other.sql").write_text("SELECT 1;")
    with pytest.raises(db.MigrationError, match="share number 2"):
        db.discover(tmp_path, "postgresql")


async def columns(conn: Database, engine: str) -> dict[str, dict[str, str]]:
    """Every table's columns and their declared types."""
    if engine == "sqlite":
        tables = [
            row[0]
            for row in await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND substr(name, 1, 7) != 'sqlite_'"
            )
        ]
        result = {}
        for table in tables:
            rows = await conn.execute_fetchall(f"PRAGMA table_info({table})")
            result[table] = {row["name"]: row["type"].lower() for row in rows}
        return result
    rows = await conn.execute_fetchall(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    )
    result = {}
    for table, column, kind in rows:
        result.setdefault(table, {})[column] = kind
    return result


async def indexes(conn: Database, engine: str) -> set[str]:
    if engine == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
    return {row[0] for row in await conn.execute_fetchall(sql)}


async def test_both_engines_get_the_same_tables_columns_and_indexes(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    schema = {}
    for engine in ("sqlite", "postgres"):
        conn = await open_engine(engine, tmp_path, request)
        try:
            schema[engine] = (await columns(conn, engine), await indexes(conn, engine))
            assert not await db.pending(conn)
        finally:
            await conn.close()
    (lite_cols, lite_idx), (pg_cols, pg_idx) = schema["sqlite"], schema["postgres"]
    assert {t: set(c) for t, c in lite_cols.items()} == {t: set(c) for t, c in pg_cols.items()}
    # Named indexes match; the ones PostgreSQL makes for PRIMARY KEY / UNIQUE constraints
    # (``*_pkey``, ``*_key``) are SQLite's unnamed ``sqlite_autoindex_*`` (no SQL, not listed).
    assert lite_idx == {i for i in pg_idx if not i.endswith(("_pkey", "_key"))}
    for table, cols in pg_cols.items():
        for column, kind in cols.items():
            assert kind != "real", f"{table}.{column} is float4"
            if lite_cols[table][column] == "real":  # every SQLite time/float: a double here
                assert kind == "double precision", f"{table}.{column}: {kind}"
    assert pg_cols["jobs"]["user_id"] == pg_cols["jobs"]["chat_id"] == "bigint"
    assert pg_cols["users"]["user_id"] == pg_cols["jobs"]["id"] == "bigint"


MIGRATE = """
import asyncio, json, sys
from bot.storage import db

async def main(url):
    conn = await db.open_database("", url)
    try:
        applied = await db.migrate(conn)
    finally:
        await conn.close()
    print(json.dumps([m.version for m in applied]))

asyncio.run(main(sys.argv[1]))
"""


async def test_two_processes_migrate_one_fresh_database_at_once(empty_postgres_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MIGRATE,
            empty_postgres_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 120)
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    first, second = (json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs)
    every = [m.version for m in db.discover(db.DEFAULT_MIGRATIONS_DIR, "postgresql")]
    assert sorted(first + second) == every  # each migration applied by exactly one of them
    conn = await db.open_database("", empty_postgres_url)
    try:
        rows = await conn.execute_fetchall(
            "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version"
        )
        assert [(row[0], row[1]) for row in rows] == [(v, 1) for v in every]
        assert not await db.pending(conn)
        assert await db.migrate(conn) == []  # a third start applies nothing
    finally:
        await conn.close()


async def test_pending_reads_a_fresh_postgres_database_without_creating_anything(
    empty_postgres_url: str,
) -> None:
    conn = await db.open_database("", empty_postgres_url)
    try:
        pending = await db.pending(conn)
        assert [m.version for m in pending] == [
            m.version for m in db.discover(db.DEFAULT_MIGRATIONS_DIR, "postgresql")
        ]
        rows = await conn.execute_fetchall("SELECT to_regclass('schema_migrations')")
        assert rows[0][0] is None
    finally:
        await conn.close()
