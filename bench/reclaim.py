"""Seconds from a worker's kill -9 to its job's re-claim by another worker, against LEASE_SECONDS.

Two real ``python -m bot.worker`` processes (bench/scale_tools.py: forked after one import, a
model that sleeps instead of rendering): worker A claims a long job, worker B waits idle; A is
killed with SIGKILL at a random point of its heartbeat cycle, and the row is watched every 20 ms
until B has claimed the job (attempt 2). The re-claim time is B's ``started_at`` minus the kill
(one machine, one clock). It splits into three waits, each reported:

- the rest of A's lease: ``lease_until`` (renewed by A's last heartbeat, every
  min(2 s, LEASE_SECONDS/3)) minus the kill: between LEASE_SECONDS − one heartbeat and
  LEASE_SECONDS;
- the reaper: B's (and every live process's) reaper looks every LEASE_SECONDS/3, at most 5 s
  (0.2 s at least), and requeues the expired lease;
- the claim: B's idle poll looks at the queue every 1 s.

So re-claim ≈ LEASE_SECONDS − U(0, heartbeat) + U(0, reaper interval) + U(0, 1 s).

    python bench/reclaim.py --out bench/results/reclaim.json   # ~4 min
    python bench/reclaim.py --quick                             # CI smoke: LEASE_SECONDS=2, 2 runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import JsonReport, fmt, light_machine_info, log, percentile
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
from bot.worker.loop import heartbeat_interval
from bot.worker.reaper import reap_interval

LEASES = (2.0, 5.0, 10.0)
IDLE_POLL = 1.0  # bot/worker/__main__.py IDLE_POLL


def expected(lease: float) -> dict[str, float]:
    """The range the three waits allow (statement times left out)."""
    beat, reaper = heartbeat_interval(lease), reap_interval(lease)
    return {
        "heartbeat_s": beat,
        "reaper_s": reaper,
        "min_s": round(lease - beat, 3),
        "max_s": round(lease + reaper + IDLE_POLL, 3),
        "mean_s": round(lease - beat / 2 + reaper / 2 + IDLE_POLL / 2, 3),
    }


async def reset(folder: Path, url: str | None) -> None:
    conn = await open_fresh(folder, url)
    await conn.close()


async def wait_claimed(folder: Path, url: str | None, worker: str) -> None:
    """Queue one job once ``worker`` is registered; return when it renders that job."""
    conn = await db.open_database(folder / "bench.sqlite3", url)
    try:
        deadline = time.monotonic() + 60
        while await registered(conn, worker) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {worker} did not start")
            await asyncio.sleep(0.05)
        await enqueue(conn, 1)
        while True:
            rows = await jobs(conn)
            if rows and rows[0]["status"] == "running" and rows[0]["worker_id"] == worker:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {worker} did not claim: {[dict(r) for r in rows]}")
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def kill_and_watch(
    folder: Path, url: str | None, victim: int, other: str, lease: float
) -> dict[str, Any]:
    conn = await db.open_database(folder / "bench.sqlite3", url)
    try:
        deadline = time.monotonic() + 60
        while await registered(conn, other) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {other} did not start")
            await asyncio.sleep(0.05)
        # A random point of the victim's heartbeat cycle.
        await asyncio.sleep(random.uniform(0.2, 0.2 + heartbeat_interval(lease)))
        lease_until = float((await jobs(conn))[0]["lease_until"])
        killed = time.time()
        os.kill(victim, signal.SIGKILL)
        requeued_seen = None
        limit = time.monotonic() + 3 * lease + 15
        while time.monotonic() < limit:
            row = (await jobs(conn))[0]
            if requeued_seen is None and row["status"] == "queued":
                requeued_seen = time.time()
            if row["attempts"] == 2 and row["worker_id"] == other:
                claimed = float(row["started_at"])
                return {
                    "lease_s": lease,
                    "reclaim_s": round(claimed - killed, 3),
                    "lease_left_s": round(lease_until - killed, 3),
                    "requeued_after_s": None
                    if requeued_seen is None
                    else round(requeued_seen - killed, 3),
                }
            await asyncio.sleep(0.02)
        raise RuntimeError("the killed worker's job was not re-claimed")
    finally:
        await conn.close()


def one_run(engine: str, folder: Path, url: str | None, lease: float, run: int) -> dict[str, Any]:
    asyncio.run(reset(folder, url))
    name = f"bench-{engine}-l{lease:g}-r{run}-"
    settings = {"bench_render_seconds": 3600, "lease_seconds": lease}
    a = fork_worker(worker_env(folder, name + "a", url, **settings), folder / f"{name}a.log")
    pids = [a]
    try:
        asyncio.run(wait_claimed(folder, url, name + "a"))
        b = fork_worker(worker_env(folder, name + "b", url, **settings), folder / f"{name}b.log")
        pids.append(b)
        figures = asyncio.run(kill_and_watch(folder, url, a, name + "b", lease))
        return figures
    finally:
        stop_workers(pids, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="LEASE_SECONDS=2, 2 runs")
    parser.add_argument("--leases", type=float, nargs="+", default=list(LEASES))
    parser.add_argument("--runs", type=int, default=6, help="kills per lease")
    parser.add_argument("--engines", nargs="+", default=["postgres", "sqlite"])
    parser.add_argument("--out", type=Path, help="JSON report")
    args = parser.parse_args(argv)
    leases = (2.0,) if args.quick else tuple(args.leases)
    runs = 2 if args.quick else args.runs
    prepare_fork()
    report = JsonReport(args.out, bench="reclaim", machine=light_machine_info())
    root = Path(tempfile.mkdtemp(prefix="t2v-reclaim-"))
    server = None
    try:
        for engine in args.engines:
            folder = root / engine
            folder.mkdir()
            url = None
            if engine == "postgres":
                server, url = start_postgres(root)
            for lease in leases:
                results = [one_run(engine, folder, url, lease, run) for run in range(runs)]
                seconds = [r["reclaim_s"] for r in results]
                bounds = expected(lease)
                report[f"{engine}_{lease:g}"] = {
                    "engine": engine,
                    "lease_s": lease,
                    "runs": results,
                    "reclaim_p50_s": percentile(seconds, 50),
                    "reclaim_min_s": min(seconds),
                    "reclaim_max_s": max(seconds),
                    "expected": bounds,
                }
                log(
                    f"{engine:8} LEASE_SECONDS={lease:>4g}  re-claim p50={fmt(percentile(seconds, 50))} s"
                    f"  min={fmt(min(seconds))}  max={fmt(max(seconds))} s ({runs} kills)"
                    f"  expected {bounds['min_s']:g}–{bounds['max_s']:g} s, mean {bounds['mean_s']:g}"
                )
            if server is not None:
                server.cleanup()
                server = None
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
