"""The database's clock, as an SQL expression: every lease time is read from it.

Workers on several machines share one queue; their own clocks drift, and a lease compared
against a worker's ``time.time()`` would expire early on one machine and never on another. So
lease expiry, heartbeats and the reaper's "now" are all computed *inside* the statement that
uses them, from the one clock the database has. ``now_sql`` is the single place that knows each
engine's spelling (the PostgreSQL branch: ``EXTRACT(EPOCH FROM clock_timestamp())``).
"""

from __future__ import annotations

from typing import Any

SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
"""UNIX seconds (millisecond precision) from SQLite; stable within one statement."""


def now_sql(conn: Any) -> str:
    """The SQL expression of "now" in UNIX seconds on ``conn``'s engine (SQLite here)."""
    return SQLITE_NOW
