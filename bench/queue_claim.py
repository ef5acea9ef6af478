"""Claim latency of the fair queue: ``JobStore.claim_next`` with 0 to 100 000 queued jobs.

One claim is one statement (``UPDATE … WHERE id = (fair order … LIMIT 1) RETURNING *``; on
PostgreSQL the chosen row is locked with ``FOR UPDATE SKIP LOCKED``), timed from the caller's
side through the bot's own store and connection pool: p50 and p99 over many claims, per engine
and queue size. Target: p99 < 20 ms.

The queue is filled like a busy bot's: two queued jobs per user (the default
MAX_ACTIVE_JOBS_PER_USER), and as many finished jobs again in the history (the fair order reads
each waiting user's latest render). PostgreSQL is started with ``pgserver`` in a temporary
folder unless ``--database-url`` names one (its tables are dropped and migrated first: use a
scratch database). Also timed: ``queued_ids`` (the whole fair order, what positions and /queue
read).

    python bench/queue_claim.py --out bench/results/queue_claim.json   # a few minutes
    python bench/queue_claim.py --quick                                 # CI smoke, < 1 min
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import JsonReport, fmt, log, percentile
from bot.storage import db
from bot.storage.engine import Database, dialect_of
from bot.storage.jobs import JobStatus, JobStore, job_store, options_to_json
from pipeline.options import GenerationOptions

TARGET_P99_MS = 20.0
SIZES = (0, 1_000, 10_000, 100_000)
QUICK_SIZES = (0, 2_000)
PER_USER = 2


def start_postgres(root: Path) -> tuple[Any, str]:
    """A throwaway PostgreSQL 16 (pgserver) with default, durable settings."""
    root.chmod(0o755)  # as root, pgserver runs the server as its own system user
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(str(root / "data"), cleanup_mode="stop")
    return server, server.get_uri()


async def reset(conn: Database) -> None:
    """Drop every table (a scratch database) and migrate again."""
    if dialect_of(conn).name == "postgresql":
        await conn.execute("DROP SCHEMA public CASCADE")
        await conn.execute("CREATE SCHEMA public")
    await db.migrate(conn)


async def fill(conn: Database, queued: int) -> None:
    """``queued`` jobs, two per user, plus as many finished ones (each user rendered before)."""
    options = options_to_json(
        GenerationOptions(prompt="кот", negative_prompt="", steps=30, seed=1, frames=33, fps=16,
                          width=832, height=480, guidance=5.0)
    )  # fmt: skip
    users = max(1, queued // PER_USER)
    series = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " SELECT i % ?, i % ?, ?, 'кот', ?, 1700000000.0 + i, {started}, i FROM n"
    )
    columns = "user_id, chat_id, status, prompt, options, created_at, started_at, number"
    if queued:
        await conn.execute(
            f"INSERT INTO jobs ({columns}) " + series.format(started="1700000000.0 + i"),
            (queued, users, users, JobStatus.DELIVERED, options),
        )
        await conn.execute(
            f"INSERT INTO jobs ({columns}) " + series.format(started="NULL"),
            (queued, users, users, JobStatus.QUEUED, options),
        )
    await conn.execute("ANALYZE")


async def measure(store: JobStore, claims: int, budget: float = 30.0) -> dict[str, Any]:
    """``claims`` claims, fewer (at least 20) when they take longer than ``budget`` seconds."""
    seconds: list[float] = []
    began = time.perf_counter()
    while len(seconds) < claims and (len(seconds) < 20 or time.perf_counter() - began < budget):
        start = time.perf_counter()
        await store.claim_next()
        seconds.append(time.perf_counter() - start)
    order: list[float] = []
    for _ in range(3):
        start = time.perf_counter()
        await store.queued_ids()
        order.append(time.perf_counter() - start)
    ms = [s * 1000 for s in seconds]
    return {
        "claims_timed": len(ms),
        "claim_p50_ms": percentile(ms, 50),
        "claim_p99_ms": percentile(ms, 99),
        "claim_max_ms": max(ms),
        "queued_ids_p50_ms": percentile([s * 1000 for s in order], 50),
    }


async def run_engine(
    engine: str, conn: Database, sizes: tuple[int, ...], claims: int, report: JsonReport
) -> None:
    for size in sizes:
        await reset(conn)
        started = time.perf_counter()
        await fill(conn, size)
        filled = time.perf_counter() - started
        store = job_store(conn)
        await store.claim_next()  # warm: statement caches, pool
        figures = await measure(store, claims)
        report[f"{engine}_{size}"] = {"queued": size, **figures}
        verdict = "ok" if (figures["claim_p99_ms"] or 0) < TARGET_P99_MS else "OVER TARGET"
        log(
            f"{engine:10} queued={size:>7} ({figures['claims_timed']} claims)  claim p50={fmt(figures['claim_p50_ms'])} ms"
            f"  p99={fmt(figures['claim_p99_ms'])} ms ({verdict})"
            f"  max={fmt(figures['claim_max_ms'])} ms"
            f"  queued_ids p50={fmt(figures['queued_ids_p50_ms'])} ms  (fill {filled:.1f} s)"
        )


async def main_async(args: argparse.Namespace) -> int:
    sizes = QUICK_SIZES if args.quick else SIZES
    claims = 30 if args.quick else args.claims
    report = JsonReport(args.out, bench="queue_claim", target_p99_ms=TARGET_P99_MS)
    root = Path(tempfile.mkdtemp(prefix="t2v-claim-"))
    server = None
    try:
        if "sqlite" in args.engines:
            conn = await db.open_database(root / "bench.sqlite3")
            try:
                await run_engine("sqlite", conn, sizes, claims, report)
            finally:
                await conn.close()
        if "postgres" in args.engines:
            url = args.database_url
            if url is None:
                server, url = start_postgres(root)
            conn = await db.open_database("", url)
            try:
                await run_engine("postgres", conn, sizes, claims, report)
            finally:
                await conn.close()
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="0 and 2 000 rows, 30 claims")
    parser.add_argument("--claims", type=int, default=300, help="claims timed per size")
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--database-url", help="a scratch PostgreSQL database (dropped!)")
    parser.add_argument("--out", type=Path, help="JSON report")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
