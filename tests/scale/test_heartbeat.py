"""The generation loop's heartbeat in one process, on a real SQLite database and the fake
backend: progress reaches the row, a cancel written by another connection stops the render, and
a heartbeat that cannot reach the database (an error, or no answer at all) stops the render
with nothing written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bot.services.pause import PauseSwitch
from bot.storage import db
from bot.storage.jobs import Job, JobStore
from bot.storage.state import StateStore
from bot.worker.loop import GenerationLoop
from pipeline.options import GenerationOptions
from tests.fakes.backend import FakeBackend

LEASE = 0.6  # heartbeats every 0.2 s


class Recorder:
    """:class:`bot.worker.events.JobEvents` that remembers what it was told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def started(self, job: Job) -> None:
        self.seen.append(("started", job.id))

    def progress(self, job: Job, progress: Any) -> None:
        pass

    async def generated(self, job: Job) -> None:
        self.seen.append(("generated", job.id))

    async def failed(self, job: Job, reason: str) -> None:
        self.seen.append(("failed", job.id))

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        self.seen.append(("cancelled", job.id))

    def queue_moved(self) -> None:
        pass


@pytest.fixture
async def conns(tmp_path: Path) -> AsyncIterator[tuple[aiosqlite.Connection, aiosqlite.Connection]]:
    first = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(first)
    second = await db.connect(tmp_path / "bot.sqlite3")
    yield first, second
    await first.close()
    await second.close()


async def start(conn: aiosqlite.Connection, backend: FakeBackend, tmp_path: Path, steps: int):
    jobs, events = JobStore(conn), Recorder()
    options = GenerationOptions(
        prompt="cat", negative_prompt="", seed=1, guidance=5.0,
        steps=steps, frames=9, fps=8, width=64, height=64,
    )  # fmt: skip
    job = await jobs.create(1, 1, 10, "cat", options)
    loop = GenerationLoop(
        jobs=jobs, backend=backend, events=events, pause=PauseSwitch(StateStore(conn)),
        video_dir=tmp_path / "videos", upload_limit_bytes=10**9,
        worker_id="w1", lease_seconds=LEASE, idle_poll=0.1,
    )  # fmt: skip
    loop.start()
    return loop, jobs, events, job


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def test_heartbeats_carry_progress_and_a_cancel_from_elsewhere(
    conns: tuple[aiosqlite.Connection, aiosqlite.Connection], tmp_path: Path
) -> None:
    backend = FakeBackend(step_delay=0.05)
    loop, _, events, job = await start(conns[0], backend, tmp_path, steps=200)
    front = JobStore(conns[1])  # another process's connection
    try:

        async def progressed() -> bool:
            row = await front.get(job.id)
            return row.stage == "denoise" and (row.step or 0) >= 2 and row.worker_id == "w1"

        await until(progressed)
        assert await front.cancel(job.id) is not None
        await until(lambda: asyncio.sleep(0, backend.cancelled == 1))
        assert backend.steps_done < 200
        assert ("cancelled", job.id) in events.seen and ("generated", job.id) not in events.seen
        assert (await front.get(job.id)).status == "cancelled"
    finally:
        await loop.stop(grace=5)


async def test_a_heartbeat_that_cannot_reach_the_database_stops_the_render(
    conns: tuple[aiosqlite.Connection, aiosqlite.Connection],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = FakeBackend(step_delay=0.05)
    loop, jobs, events, job = await start(conns[0], backend, tmp_path, steps=200)
    try:
        await until(lambda: asyncio.sleep(0, backend.steps_done >= 2))

        async def unreachable(*args: Any, **kwargs: Any) -> str:
            raise aiosqlite.OperationalError("database is locked")

        monkeypatch.setattr(jobs, "heartbeat", unreachable)
        # Within the lease (plus a step) the render stops on its own.
        await until(lambda: asyncio.sleep(0, backend.cancelled == 1))
        assert backend.steps_done < 200
        row = await JobStore(conns[1]).get(job.id)
        assert (row.status, row.attempts, row.worker_id) == ("running", 1, "w1")  # nothing written
        assert events.seen == [("started", job.id)]  # no failure, no cancel told to anyone
    finally:
        await loop.stop(grace=5)


async def test_a_heartbeat_that_never_answers_stops_the_render(
    conns: tuple[aiosqlite.Connection, aiosqlite.Connection],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A network partition: the statement is sent and no answer, no error ever comes back. The
    render must still stop on its own within the lease, not wait for the database."""
    backend = FakeBackend(step_delay=0.05)
    loop, jobs, events, job = await start(conns[0], backend, tmp_path, steps=200)
    try:
        await until(lambda: asyncio.sleep(0, backend.steps_done >= 2))

        async def hangs(*args: Any, **kwargs: Any) -> str:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        monkeypatch.setattr(jobs, "heartbeat", hangs)
        await until(lambda: asyncio.sleep(0, backend.cancelled == 1))
        assert backend.steps_done < 200
        row = await JobStore(conns[1]).get(job.id)
        assert (row.status, row.attempts, row.worker_id) == ("running", 1, "w1")  # nothing written
        assert events.seen == [("started", job.id)]
    finally:
        await loop.stop(grace=5)
