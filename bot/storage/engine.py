"""The two database engines behind one small API: SQLite (aiosqlite, the default) and PostgreSQL
(psycopg 3 with a connection pool, ``DATABASE_URL=postgresql://…``).

Why one API rather than two sets of stores: every store (jobs, users, inbox, state) is one
implementation over portable SQL, so the queue's guarantees are written and tested once. The
stores use exactly three calls on their connection, which aiosqlite already offers and
:class:`PostgresDatabase` offers too:

- ``await conn.execute_fetchall(sql, params)`` → rows addressable by column name and by index;
- ``async with conn.execute(sql, params) as cur: cur.rowcount`` (or ``await conn.execute(…)``);
- ``async with bot.storage.db.transaction(conn): …`` — on PostgreSQL one pooled connection is
  held for the block and routed with a :class:`~contextvars.ContextVar`, so every store call made
  by the same task inside the block runs in that transaction, while other tasks keep using the
  pool (unlike SQLite's single shared connection).

SQL is written with ``?`` placeholders; :class:`PostgresDatabase` rewrites them to psycopg's
``%s`` once per statement text (cached). Where the dialects must differ (JSON functions, the
database clock, integer division of times, the claim's row locking) the store asks
:func:`dialect_of` for a :class:`Dialect` instead of keeping a second copy of itself.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Union

import aiosqlite

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(POSTGRES_SCHEMES)


# ---------------------------------------------------------------------------- dialects


def _sqlite_path(key: str) -> str:
    return "'$." + key + "'"


@dataclass(frozen=True)
class Dialect:
    """The few SQL fragments that differ between the engines. Every method returns SQL text
    (never user data: JSON keys are the code's own constants)."""

    name: str
    now_sql: str
    """The database clock as UNIX seconds (a DOUBLE): the one clock every process shares."""

    def json_text(self, column: str, key: str) -> str:
        """The text value of a top-level key of a JSON text column (NULL when absent)."""
        if self.name == SQLITE.name:
            return f"json_extract({column}, {_sqlite_path(key)})"
        return f"(CAST({column} AS jsonb) ->> '{key}')"

    def json_merge(self, expression: str, values: dict[str, str]) -> str:
        """``expression`` (JSON text) with the top-level ``values`` set (SQL expressions: a
        literal, NULL, or ``?`` for a number parameter); returns JSON text."""
        if self.name == SQLITE.name:
            pairs = ", ".join(f"{_sqlite_path(k)}, {v}" for k, v in values.items())
            return f"json_set({expression}, {pairs})"
        pairs = ", ".join(f"'{k}', {v}" for k, v in values.items())
        return f"CAST(CAST({expression} AS jsonb) || jsonb_build_object({pairs}) AS TEXT)"

    # The user settings document is edited with a key given as a parameter.
    def json_object_or_empty(self, column: str) -> str:
        """``column`` parsed as a JSON object, or an empty object when it holds anything else."""
        if self.name == SQLITE.name:
            return f"(CASE WHEN json_valid({column}) THEN {column} ELSE '{{}}' END)"
        return f"(CASE WHEN {column} IS JSON OBJECT THEN CAST({column} AS jsonb) ELSE '{{}}' END)"

    def json_remove_param(self, expression: str) -> str:
        """``expression`` without the key given by one ``?`` (:meth:`json_key`)."""
        if self.name == SQLITE.name:
            return f"json_remove({expression}, ?)"
        return f"(CAST({expression} AS jsonb) - CAST(? AS TEXT))"

    def json_set_param(self, expression: str) -> str:
        """``expression`` with the key of the first ``?`` (:meth:`json_key`) set to the JSON text
        of the second ``?``."""
        if self.name == SQLITE.name:
            return f"json_set({expression}, ?, json(?))"
        return (
            f"(CAST({expression} AS jsonb)"
            " || jsonb_build_object(CAST(? AS TEXT), CAST(? AS jsonb)))"
        )

    def json_key(self, key: str) -> str:
        """The parameter naming a top-level key for :meth:`json_set_param`/:meth:`json_remove_param`."""
        if self.name == SQLITE.name:
            return '$."' + key.replace('"', "") + '"'  # quoted: keys with dots stay one key
        return key

    def json_as_text(self, expression: str) -> str:
        """An edited JSON document back to the TEXT the column stores."""
        return expression if self.name == SQLITE.name else f"CAST({expression} AS TEXT)"

    def serialize_sql(self) -> str | None:
        """A statement (one ``?``: a 64-bit key, :func:`lock_key`) that makes the rest of the
        transaction wait for others holding the same key; None where transactions are
        serialised anyway (SQLite's ``BEGIN IMMEDIATE``)."""
        return None if self.name == SQLITE.name else "SELECT pg_advisory_xact_lock(?)"

    def floor_int(self, expression: str) -> str:
        """``floor(expression)`` as an integer (times are positive: SQLite's CAST truncates,
        PostgreSQL's CAST rounds)."""
        if self.name == SQLITE.name:
            return f"CAST({expression} AS INTEGER)"
        return f"CAST(FLOOR({expression}) AS BIGINT)"


def lock_key(*parts: object) -> int:
    """A signed 64-bit advisory-lock key naming what is locked (``"jobs.number", user_id``)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


SQLITE = Dialect("sqlite", now_sql="((julianday('now') - 2440587.5) * 86400.0)")
POSTGRES = Dialect(
    "postgresql", now_sql="CAST(extract(epoch from clock_timestamp()) AS DOUBLE PRECISION)"
)


def describe_url(url: str) -> str:
    """``user@host:port/dbname`` of a PostgreSQL URL, for messages: never the password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "postgresql://(unparsable URL)"
    host = str(info.get("host") or "localhost")
    port = f":{info['port']}" if info.get("port") else ""
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname') or ''}"


def dialect_of(conn: Database) -> Dialect:
    """The :class:`Dialect` of a connection: ``dialect_of(conn).now_sql`` is the database
    clock, ``dialect_of(conn).name`` is ``"sqlite"`` or ``"postgresql"``."""
    return POSTGRES if isinstance(conn, PostgresDatabase) else SQLITE


# ---------------------------------------------------------------------------- PostgreSQL


class Row(tuple):  # type: ignore[type-arg]
    """A result row: ``row[0]`` and ``row["column"]`` both work, like :class:`aiosqlite.Row`."""

    __slots__ = ()
    _index: dict[str, int]

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=256)
def _row_type(names: tuple[str, ...]) -> type[Row]:
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name, position)  # the first of duplicate names, as SQLite
    return type("Row", (Row,), {"__slots__": (), "_index": index})


def _row_factory(cursor: Any) -> Any:
    """psycopg row factory: :class:`Row` for every result."""
    description = cursor.description
    if description is None:
        return tuple
    return _row_type(tuple(column.name for column in description))


@functools.lru_cache(maxsize=1024)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders → ``%s`` (and a literal ``%`` → ``%%``), outside quoted strings and
    identifiers; cached per statement text."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote is not None:
            out.append("%%" if char == "%" else char)
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)


class Result:
    """What ``execute`` returns on PostgreSQL: the row count and the fetched rows."""

    def __init__(self, rowcount: int, rows: list[Any]):
        self.rowcount = rowcount
        self.rows = rows

    async def fetchall(self) -> list[Any]:
        return list(self.rows)

    async def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    async def close(self) -> None:
        return None


class _Execution:
    """Awaitable and async context manager, like aiosqlite's ``execute``."""

    def __init__(self, database: PostgresDatabase, sql: str, params: Sequence[Any]):
        self._coro = database.run(sql, params)

    def __await__(self) -> Any:
        return self._coro.__await__()

    async def __aenter__(self) -> Result:
        return await self._coro

    async def __aexit__(self, *exc: object) -> None:
        return None


class PostgresDatabase:
    """A psycopg :class:`~psycopg_pool.AsyncConnectionPool` behind aiosqlite's small API.

    Connections are in autocommit mode: a statement outside :func:`transaction` commits by
    itself, as on the SQLite connection.
    """

    def __init__(self, pool: Any, url: str):
        self.pool = pool
        self.url = url
        self._current: ContextVar[Any] = ContextVar(f"pg_tx_{id(self)}", default=None)

    @classmethod
    async def open(
        cls, url: str, *, min_size: int = 1, max_size: int = 10, read_only: bool = False
    ) -> PostgresDatabase:
        """Open a pool on ``url`` and wait until one connection works (a wrong URL fails here,
        at start, not at the first update). ``read_only``: every transaction is read-only
        (``python -m bot --check`` next to a running bot)."""
        from psycopg_pool import AsyncConnectionPool

        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": _row_factory}
        if read_only:
            kwargs["options"] = "-c default_transaction_read_only=on"
        pool = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs=kwargs,
            # A connection the server dropped (a restart, a failover) is replaced before it is
            # handed out, instead of failing the store call that gets it.
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="bot",
        )
        try:
            await pool.open(wait=True, timeout=30.0)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url)

    async def close(self) -> None:
        await self.pool.close()

    def _transaction_connection(self) -> Any:
        """The connection of the transaction the *current task* opened, if any. A task created
        inside a transaction block inherits the context variable but not the transaction: it
        uses the pool (the block's connection may be back in the pool by the time it runs)."""
        current = self._current.get()
        if current is None:
            return None
        conn, owner = current
        return conn if owner is asyncio.current_task() else None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        current = self._transaction_connection()
        if current is not None:
            yield current
        else:
            async with self.pool.connection() as conn:
                yield conn

    async def run(self, sql: str, params: Sequence[Any]) -> Result:
        """One statement on the current transaction's connection or a pooled one."""
        async with self._connection() as conn:
            cursor = await conn.execute(to_pyformat(sql), tuple(params))
            rows = await cursor.fetchall() if cursor.description is not None else []
            return Result(cursor.rowcount, rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Execution:
        return _Execution(self, sql, params)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return (await self.run(sql, params)).rows

    async def executemany(self, sql: str, seq_of_params: Iterable[Sequence[Any]]) -> None:
        params = [tuple(p) for p in seq_of_params]
        if not params:
            return
        async with self._connection() as conn, conn.cursor() as cursor:
            await cursor.executemany(to_pyformat(sql), params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresDatabase]:
        """One pooled connection for the block, in one transaction (a savepoint when nested);
        the calls this task makes on ``self`` inside the block use it."""
        current = self._transaction_connection()
        if current is not None:
            async with current.transaction():
                yield self
            return
        async with self.pool.connection() as conn, conn.transaction():
            token = self._current.set((conn, asyncio.current_task()))
            try:
                yield self
            finally:
                self._current.reset(token)


Database = Union[aiosqlite.Connection, PostgresDatabase]  # noqa: UP007 (a runtime alias)
"""What every store takes: the SQLite connection or the PostgreSQL pool."""
