"""job_previews (migration 0012): a worker's newest live preview for a front end in another
process — stored only for the attempt that renders, never replaced by an older step or attempt,
refused when too big, and gone when the render ends or its worker died."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.storage import db
from bot.storage.jobs import JobStore
from bot.storage.previews import MAX_BYTES, PreviewStore, StoredPreview
from pipeline.options import GenerationOptions
from tests.fakes.backend import preview_jpeg

OPTIONS = GenerationOptions(
    prompt="кот",
    steps=8,
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


async def test_only_the_rendering_attempt_stores_and_newer_steps_win(
    conn: aiosqlite.Connection,
) -> None:
    jobs, previews = JobStore(conn), PreviewStore(conn)
    job = await jobs.create(1, 1, 5, "кот", OPTIONS)
    assert not await previews.put(job.id, 1, 2, 64, 64, preview_jpeg(2))  # still queued
    claimed = await jobs.claim("w1", 30)
    assert claimed is not None and claimed.attempts == 1
    assert not await previews.put(job.id, 2, 2, 64, 64, preview_jpeg(2))  # not its attempt
    assert await previews.put(job.id, 1, 3, 64, 64, preview_jpeg(3))
    assert not await previews.put(job.id, 1, 2, 64, 64, preview_jpeg(2))  # older step
    assert await previews.put(job.id, 1, 5, 48, 64, preview_jpeg(5, (48, 64)))
    assert await previews.marks([job.id, job.id + 1]) == {job.id: (1, 5)}
    got = await previews.get(job.id)
    assert got == StoredPreview(job.id, 1, 5, 48, 64, preview_jpeg(5, (48, 64)))
    # Too large to be worth a write per heartbeat: refused, the stored one stays.
    assert not await previews.put(job.id, 1, 6, 640, 360, preview_jpeg(6))
    assert not await previews.put(job.id, 1, 6, 64, 64, b"x" * (MAX_BYTES + 1))
    assert await previews.marks([job.id]) == {job.id: (1, 5)}


async def test_rows_go_when_the_render_ends_or_its_worker_died(
    conn: aiosqlite.Connection,
) -> None:
    now = [1000.0]
    jobs, previews = JobStore(conn, clock=lambda: now[0]), PreviewStore(conn)
    first = await jobs.create(1, 1, 5, "кот", OPTIONS)
    second = await jobs.create(2, 2, 6, "собака", OPTIONS)
    assert await jobs.claim("w1", 30) is not None
    assert await jobs.claim("w2", 30) is not None
    assert await previews.put(first.id, 1, 2, 64, 64, preview_jpeg(2))
    assert await previews.put(second.id, 1, 2, 64, 64, preview_jpeg(2))
    await previews.delete(first.id, 1)  # its render ended
    assert await previews.marks([first.id, second.id]) == {second.id: (1, 2)}
    assert await previews.forget_stale() == 0  # the second still renders
    assert await jobs.release(second.id, 1)  # its worker stopped: back in the queue
    assert await previews.forget_stale() == 1
    assert await previews.marks([second.id]) == {}
