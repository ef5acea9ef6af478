"""job_images (migration 0008): a photo job's image is written with its job or not at all,
read back byte for byte, and forgotten with the job's other user data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.storage import db
from bot.storage.images import ImageStore, JobImage
from bot.storage.jobs import JobStore
from pipeline.options import GenerationOptions
from tests.fakes import images

OPTIONS = GenerationOptions(
    prompt="кот",
    steps=2,
    frames=9,
    fps=8,
    width=64,
    height=64,
    guidance=5.0,
    seed=1,
    negative_prompt="",
)


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(connection)
    try:
        yield connection
    finally:
        await connection.close()


async def test_photo_is_stored_and_read_back(conn: aiosqlite.Connection) -> None:
    jobs, store = JobStore(conn), ImageStore(conn)
    job = await jobs.create(1, 1, 5, "кот", OPTIONS, update_id=77)
    png = images.solid(64, 64, (10, 20, 30), "PNG")
    await store.put(JobImage(job.id, png, "image/png", 64, 64, 320, 180))
    await store.put(JobImage(job.id, b"other", "image/png", 1, 1))  # a replay: no change
    got = await store.get(job.id)
    assert got == JobImage(job.id, png, "image/png", 64, 64, 320, 180)
    assert await store.get(job.id + 1) is None
    text_job = await jobs.create(1, 1, 6, "собака", OPTIONS)
    assert await store.with_images([job.id, text_job.id]) == {job.id}


async def test_a_failed_transaction_leaves_neither_job_nor_photo(
    conn: aiosqlite.Connection,
) -> None:
    jobs, store = JobStore(conn), ImageStore(conn)
    with pytest.raises(RuntimeError):
        async with db.transaction(conn):
            job = await jobs.create(1, 1, 5, "кот", OPTIONS, update_id=78)
            await store.put(JobImage(job.id, b"png", "image/png", 64, 64))
            raise RuntimeError("killed between the writes")
    assert await jobs.by_update_id(78) is None
    assert await store.with_images([1]) == set()


async def test_retention_forgets_photos_of_finished_jobs_only(
    conn: aiosqlite.Connection,
) -> None:
    now = [1000.0]
    jobs, store = JobStore(conn, clock=lambda: now[0]), ImageStore(conn)
    old = await jobs.create(1, 1, 5, "старый", OPTIONS)
    waiting = await jobs.create(1, 1, 6, "ждёт", OPTIONS)
    for job in (old, waiting):
        await store.put(JobImage(job.id, b"png", "image/png", 64, 64))
    await jobs.cancel(old.id)
    now[0] = 5000.0
    assert await store.forget_before(2000.0) == 1
    assert await store.with_images([old.id, waiting.id]) == {waiting.id}
