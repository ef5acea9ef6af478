"""Many claimers on one PostgreSQL queue: every job is claimed exactly once.

Eight claimers, each with its own connection pool (as eight worker processes would have), race
for 500 queued jobs of 50 users. ``FOR UPDATE SKIP LOCKED`` lets them take different rows at
once; the guarded ``UPDATE … WHERE status = 'queued'`` makes a double claim impossible.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from bot.storage import db
from bot.storage.jobs import Job, JobStatus, job_store, options_to_json
from pipeline.options import GenerationOptions

JOBS = 500
CLAIMERS = 8
USERS = 50


async def fill(url: str) -> list[int]:
    conn = await db.open_database("", url)
    try:
        options = options_to_json(
            GenerationOptions(prompt="кот", negative_prompt="", steps=2, seed=1, frames=9,
                              fps=16, width=64, height=64, guidance=5.0)
        )  # fmt: skip
        rows = await conn.execute_fetchall(
            "INSERT INTO jobs (user_id, chat_id, status, prompt, options, created_at, number)"
            " SELECT n % ?, n % ?, ?, ?, ?, 1700000000.0 + n, n FROM generate_series(1, ?) AS n"
            " RETURNING id",
            (USERS, USERS, JobStatus.QUEUED, "кот", options, JOBS),
        )
        return sorted(row[0] for row in rows)
    finally:
        await conn.close()


async def claimer(url: str, start: asyncio.Event) -> list[Job]:
    conn = await db.open_database("", url, pool_size=1)
    store = job_store(conn)
    claimed: list[Job] = []
    try:
        await start.wait()
        while (job := await store.claim_next()) is not None:
            claimed.append(job)
    finally:
        await conn.close()
    return claimed


async def test_eight_claimers_claim_each_of_500_jobs_exactly_once(postgres_url: str) -> None:
    ids = await fill(postgres_url)
    assert len(ids) == JOBS
    start = asyncio.Event()
    tasks = [asyncio.create_task(claimer(postgres_url, start)) for _ in range(CLAIMERS)]
    await asyncio.sleep(0.5)  # every pool open before the race starts
    start.set()
    results = await asyncio.gather(*tasks)
    claimed = Counter(job.id for jobs in results for job in jobs)
    assert sorted(claimed) == ids
    assert set(claimed.values()) == {1}  # nobody claimed a job another one claimed
    assert sum(1 for jobs in results if jobs) > 1  # they did claim side by side
    assert all(job.status == JobStatus.RUNNING and job.attempts == 1 for r in results for job in r)
    conn = await db.open_database("", postgres_url)
    try:
        rows = await conn.execute_fetchall("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        assert {row[0]: row[1] for row in rows} == {JobStatus.RUNNING: JOBS}
    finally:
        await conn.close()
