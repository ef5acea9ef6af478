"""The database's clock, as an SQL expression: every lease time is read from it.

Workers on several machines share one queue; their own clocks drift, and a lease compared
against a worker's ``time.time()`` would expire early on one machine and never on another. So
lease expiry, heartbeats and the reaper's "now" are all computed *inside* the statement that
uses them, from the one clock the database has. ``now_sql`` is the single place that knows each
engine's spelling, through the engine's dialect (``bot/storage/engine.py``).
"""

from __future__ import annotations

from bot.storage.engine import Database, dialect_of


def now_sql(conn: Database) -> str:
    """The SQL expression of "now" in UNIX seconds on ``conn``'s engine
    (``dialect_of(conn).now_sql``: SQLite's julianday, PostgreSQL's clock_timestamp)."""
    return dialect_of(conn).now_sql
