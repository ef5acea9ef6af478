"""Jobs per hour with N = 1, 2, 4, 8, 16 workers sharing one queue, against the ideal N × 3600/s.

Each worker is a real ``python -m bot.worker`` process (forked from this one after one import;
bench/scale_tools.py says why processes and not loops in one process) whose model sleeps
``--render`` seconds per job (2 s: ideal 1800 jobs/h per worker), so 16 of them fit on a 2-core
machine and the figure is the queue's overhead, not the CPU's: the claim (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), heartbeats every min(2 s, LEASE_SECONDS/3), the fenced writes
(prompt_en, mark_generated), presence and the reaper in every worker, idle polls every 1 s.

Per N: the workers start and register, then ``--per-worker × N`` jobs are queued in one
statement (one job per user); the time runs from that commit to the last ``mark_generated``
(both on the database clock), so it includes the idle poll that notices the new jobs. Also
reported: first claim to last mark (the steady rate), the database commits per job (every
statement of the workers — claims, idle polls, heartbeats, presence, reaper — and the insert;
this script's own reads subtracted) and the job-row writes per job (the insert included), and
the most PostgreSQL connections seen (every worker opens its own pool; this script's one
included).
PostgreSQL 16 from ``pgserver`` (started here) and one SQLite file in WAL mode. Target: ≥ 0.9 of
ideal at N = 16.

    python bench/scale_throughput.py --out bench/results/scale_throughput.json   # ~8 min
    python bench/scale_throughput.py --quick                                      # CI smoke
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import JsonReport, fmt, light_machine_info, log
from bench.scale_tools import (
    enqueue,
    fork_worker,
    jobs,
    open_fresh,
    prepare_fork,
    registered,
    start_postgres,
    stop_workers,
    worker_env,
)
from bot.storage import db

TARGET = 0.9
COUNTS = (1, 2, 4, 8, 16)
QUICK_COUNTS = (1, 2)


async def pg_counters(conn: Any) -> dict[str, int]:
    """Commits in this database and row writes to ``jobs`` so far (PostgreSQL's statistics)."""
    rows = await conn.execute_fetchall(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())"
        " AS commits, n_tup_upd + n_tup_ins AS writes FROM pg_stat_user_tables"
        " WHERE relname = 'jobs'",
        (),
    )
    return {"commits": int(rows[0]["commits"]), "writes": int(rows[0]["writes"])}


async def pg_connections(conn: Any) -> int:
    rows = await conn.execute_fetchall(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND datname = current_database()",
        (),
    )
    return int(rows[0]["n"])


async def reset(folder: Path, url: str | None) -> None:
    conn = await open_fresh(folder, url)
    await conn.close()


async def measure(
    folder: Path, url: str | None, n: int, prefix: str, count: int, render: float
) -> dict[str, Any]:
    """With ``n`` workers registered: queue ``count`` jobs, wait until all are generated."""
    conn = await db.open_database(folder / "bench.sqlite3", url)
    try:
        deadline = time.monotonic() + 120
        while await registered(conn, prefix) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {await registered(conn, prefix)} of {n} workers started")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # every worker is in its idle poll now
        before = await pg_counters(conn) if url else None
        queued_at = await enqueue(conn, count)
        connections, own = 0, 1  # own: this loop's statements (the SELECT of the clock)
        limit = time.monotonic() + 60 + 3 * count * render / n
        while True:
            rows = await jobs(conn)
            own += 1
            if url:
                connections = max(connections, await pg_connections(conn))
                own += 1
            if all(r["status"] == "generated" for r in rows):
                break
            bad = [r for r in rows if r["status"] not in ("queued", "running", "generated")]
            if bad or time.monotonic() > limit:
                raise RuntimeError(f"jobs did not all render: {[dict(r) for r in bad][:5]}")
            await asyncio.sleep(0.25)
        finished = max(float(r["generated_at"]) for r in rows)
        first = min(float(r["started_at"]) for r in rows)
        attempts = sum(int(r["attempts"]) for r in rows)
        per_worker: dict[str, int] = {}
        for r in rows:
            per_worker[r["worker_id"]] = per_worker.get(r["worker_id"], 0) + 1
        ideal = n * 3600.0 / render
        figures: dict[str, Any] = {
            "workers": n,
            "jobs": count,
            "render_s": render,
            "makespan_s": round(finished - queued_at, 3),
            "jobs_per_hour": round(count / (finished - queued_at) * 3600.0, 1),
            "steady_jobs_per_hour": round(count / (finished - first) * 3600.0, 1),
            "ideal_per_hour": ideal,
            "claims_beyond_one": attempts - count,
            "jobs_per_worker_min_max": [min(per_worker.values()), max(per_worker.values())],
        }
        figures["of_ideal"] = round(figures["jobs_per_hour"] / ideal, 3)
        figures["steady_of_ideal"] = round(figures["steady_jobs_per_hour"] / ideal, 3)
        if url and before is not None:
            await asyncio.sleep(1.5)  # backends flush their statistics about once a second
            after = await pg_counters(conn)
            commits = after["commits"] - before["commits"] - own - 1
            figures["commits_per_job"] = round(commits / count, 1)
            figures["job_row_writes_per_job"] = round(
                (after["writes"] - before["writes"]) / count, 2
            )
            figures["max_connections_seen"] = connections
        return figures
    finally:
        await conn.close()


def run_count(
    engine: str, folder: Path, url: str | None, n: int, per_worker: int, render: float, lease: float
) -> dict[str, Any]:
    asyncio.run(reset(folder, url))
    prefix = f"bench-{engine}-n{n}-"
    pids = [
        fork_worker(
            worker_env(folder, f"{prefix}{i}", url, bench_render_seconds=render,
                       lease_seconds=lease),
            folder / f"{prefix}{i}.log",
        )
        for i in range(n)
    ]  # fmt: skip
    try:
        return asyncio.run(measure(folder, url, n, prefix, per_worker * n, render))
    finally:
        stop_workers(pids, signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 2; 3 jobs per worker")
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    parser.add_argument("--per-worker", type=int, default=15, help="jobs per worker per N")
    parser.add_argument("--render", type=float, default=2.0, help="seconds per fake render")
    parser.add_argument("--lease", type=float, default=30.0, help="LEASE_SECONDS")
    parser.add_argument("--engines", nargs="+", default=["postgres", "sqlite"])
    parser.add_argument("--out", type=Path, help="JSON report")
    args = parser.parse_args(argv)
    counts = QUICK_COUNTS if args.quick else tuple(args.counts)
    per_worker = 3 if args.quick else args.per_worker
    prepare_fork()
    report = JsonReport(
        args.out, bench="scale_throughput", target_of_ideal=TARGET, machine=light_machine_info()
    )
    root = Path(tempfile.mkdtemp(prefix="t2v-scale-"))
    server = None
    failed = False
    try:
        for engine in args.engines:
            folder = root / engine
            folder.mkdir()
            (folder / "videos").mkdir()
            url = None
            if engine == "postgres":
                server, url = start_postgres(root)
            for n in counts:
                figures = run_count(engine, folder, url, n, per_worker, args.render, args.lease)
                report[f"{engine}_{n}"] = {"engine": engine, **figures}
                verdict = "ok" if figures["of_ideal"] >= TARGET else "under target"
                if n != max(COUNTS):  # the target is for N = 16; short runs pay the idle poll
                    verdict = "target is for N=16"
                extra = ""
                if "commits_per_job" in figures:
                    extra = (
                        f"  commits/job={figures['commits_per_job']}"
                        f"  job-row writes/job={figures['job_row_writes_per_job']}"
                        f"  connections={figures['max_connections_seen']}"
                    )
                log(
                    f"{engine:8} N={n:>2} jobs={figures['jobs']:>4}"
                    f"  {figures['jobs_per_hour']:>8.0f}/h of ideal {figures['ideal_per_hour']:>6.0f}"
                    f" = {fmt(figures['of_ideal'], '.3f')} ({verdict})"
                    f"  steady {fmt(figures['steady_of_ideal'], '.3f')}"
                    f"  makespan {figures['makespan_s']:.1f} s{extra}"
                )
                failed = failed or figures["claims_beyond_one"] != 0
            if server is not None:
                server.cleanup()
                server = None
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    if failed:
        log("a job was claimed more than once without a kill: see the JSON")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
