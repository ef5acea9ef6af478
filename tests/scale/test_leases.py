"""The lease rules of ``JobStore`` (bot/storage/jobs.py): claim, heartbeat, fence, reap, release,
take back. Two connections to one SQLite file in WAL mode stand for two worker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from bot.storage import db
from bot.storage.jobs import Beat, FailReason, Job, JobStatus, JobStore
from bot.storage.workers import RegisteredModel, WorkerStore, model_info_dict
from pipeline.options import GenerationOptions
from tests.fakes.backend import FakeBackend

EXPIRED = -1.0
"""A lease that ended a second before it was taken: the reaper may take the job at once."""


@pytest.fixture
async def conns(tmp_path: Path) -> AsyncIterator[tuple[aiosqlite.Connection, aiosqlite.Connection]]:
    path = tmp_path / "bot.sqlite3"
    first = await db.connect(path)
    await db.migrate(first)
    second = await db.connect(path)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def a(conns: tuple[aiosqlite.Connection, aiosqlite.Connection]) -> JobStore:
    return JobStore(conns[0])


@pytest.fixture
def b(conns: tuple[aiosqlite.Connection, aiosqlite.Connection]) -> JobStore:
    return JobStore(conns[1])


async def queued(store: JobStore, user_id: int = 1, prompt: str = "кот") -> Job:
    options = GenerationOptions(
        prompt=prompt, negative_prompt="", seed=1, guidance=5.0,
        steps=4, frames=9, fps=8, width=64, height=64,
    )  # fmt: skip
    return await store.create(user_id, user_id, 10, prompt, options)


async def db_now(store: JobStore) -> float:
    return await WorkerStore(store.conn).now()


async def test_claim_takes_a_lease_from_the_database_clock(a: JobStore) -> None:
    job = await queued(a)
    before = await db_now(a)
    claimed = await a.claim("gpu0", 30)
    assert claimed is not None and claimed.id == job.id
    assert (claimed.status, claimed.worker_id, claimed.attempts) == ("running", "gpu0", 1)
    assert before + 29 <= claimed.lease_until <= await db_now(a) + 30


async def test_two_workers_never_claim_the_same_job(a: JobStore, b: JobStore) -> None:
    for user in range(1, 5):
        await queued(a, user)
    claimed = [await store.claim(name, 30) for store, name in [(a, "w1"), (b, "w2")] * 3]
    ids = [job.id for job in claimed if job is not None]
    assert sorted(ids) == [1, 2, 3, 4] and claimed[4] is None and claimed[5] is None


async def test_heartbeat_renews_and_stores_progress(a: JobStore) -> None:
    await queued(a)
    job = await a.claim("w1", 5)
    beat = await a.heartbeat(
        job.id, job.attempts, "w1", 60, stage="denoise", step=3, steps=8, progress=0.375
    )
    assert beat == Beat.OK
    now = await a.get(job.id)
    assert now.lease_until > job.lease_until + 50
    assert (now.stage, now.step, now.steps, now.progress) == ("denoise", 3, 8, 0.375)


async def test_heartbeat_says_cancelled_once_the_row_is(a: JobStore, b: JobStore) -> None:
    await queued(a)
    job = await a.claim("w1", 30)
    assert await b.cancel(job.id) is not None  # the front end's /cancel, another process
    assert await a.heartbeat(job.id, job.attempts, "w1", 30) == Beat.CANCELLED
    assert (await a.get(job.id)).status == JobStatus.CANCELLED


async def test_a_stale_attempt_is_fenced_out(a: JobStore, b: JobStore) -> None:
    """w1's lease expires, the reaper requeues, w2 claims: every write of w1 changes nothing."""
    await queued(a)
    stale = await a.claim("w1", EXPIRED)
    reaped = await b.reap(max_attempts=3)
    assert [job.id for job in reaped.requeued] == [stale.id] and not reaped.failed
    live = await b.claim("w2", 30)
    assert live.id == stale.id and live.attempts == stale.attempts + 1
    before = await b.get(live.id)

    assert await a.heartbeat(stale.id, stale.attempts, "w1", 30, step=9) == Beat.LOST
    assert not await a.set_prompt_en(stale.id, "stale words", attempt=stale.attempts)
    assert not await a.set_progress(stale.id, 0.9, attempt=stale.attempts)
    assert not await a.mark_generated(stale.id, "/v/stale.mp4", {}, 1.0, attempt=stale.attempts)
    assert not await a.mark_failed(stale.id, FailReason.GENERATION, attempt=stale.attempts)
    assert not await a.refuse_claimed(stale.id, "over_limit:steps", attempt=stale.attempts)
    assert not await a.release(stale.id, stale.attempts)
    assert await b.get(live.id) == before

    assert await b.heartbeat(live.id, live.attempts, "w2", 30, step=1) == Beat.OK
    assert await b.mark_generated(live.id, "/v/live.mp4", {"path": "/v/live.mp4"}, 2.0,
                                  attempt=live.attempts)  # fmt: skip
    done = await b.get(live.id)
    assert (done.status, done.video_path, done.attempts) == ("generated", "/v/live.mp4", 2)
    # A heartbeat after the job left "running" stops the worker too.
    assert await b.heartbeat(live.id, live.attempts, "w2", 30) == Beat.LOST


async def test_reap_leaves_live_leases_and_is_idempotent(a: JobStore, b: JobStore) -> None:
    await queued(a, 1)
    await queued(a, 2)
    dead = await a.claim("dead", EXPIRED)
    alive = await b.claim("alive", 30)
    first, second = await a.reap(3), await b.reap(3)
    assert [job.id for job in first.requeued] == [dead.id]
    assert not second.requeued and not second.failed
    requeued = await a.get(dead.id)
    assert (requeued.status, requeued.worker_id, requeued.lease_until) == ("queued", None, None)
    assert requeued.started_at is None and requeued.attempts == 1  # counted, not reset
    assert (await a.get(alive.id)).status == JobStatus.RUNNING


async def test_reap_fails_after_max_attempts(a: JobStore) -> None:
    job = await queued(a)
    for attempt in range(1, 3):
        claimed = await a.claim(f"w{attempt}", EXPIRED)
        assert claimed.attempts == attempt
        assert [j.id for j in (await a.reap(max_attempts=2)).requeued] == (
            [job.id] if attempt < 2 else []
        )
    failed = await a.get(job.id)
    assert (failed.status, failed.error, failed.attempts) == ("failed", FailReason.INTERRUPTED, 2)


async def test_jobs_without_a_lease_are_left_to_start_up_recovery(a: JobStore) -> None:
    await queued(a)
    job = await a.claim_next()
    assert job.lease_until is None
    assert not (await a.reap(3)).requeued
    assert [j.id for j in (await a.recover(3)).requeued] == [job.id]


async def test_release_gives_the_job_back_at_once(a: JobStore, b: JobStore) -> None:
    await queued(a)
    job = await a.claim("w1", 30)
    assert await a.release(job.id, job.attempts)
    again = await b.claim("w2", 30)
    assert again.id == job.id and again.attempts == 2 and again.worker_id == "w2"


async def test_a_restarted_worker_takes_back_only_its_own_job(a: JobStore, b: JobStore) -> None:
    await queued(a, 1)
    await queued(a, 2)
    mine = await a.claim("gpu0", 30)
    other = await b.claim("gpu1", 30)
    taken = await a.take_back("gpu0", 3)
    assert [j.id for j in taken.requeued] == [mine.id]
    assert (await a.get(other.id)).status == JobStatus.RUNNING
    # The embedded bot's start-up recovery leaves other workers' leased jobs alone too.
    recovery = await a.recover(3, worker_id="host:bot")
    assert not recovery.requeued and (await a.get(other.id)).status == JobStatus.RUNNING


async def test_registered_model_carries_what_a_front_end_validates_with(a: JobStore) -> None:
    backend = FakeBackend()
    workers = WorkerStore(a.conn)
    await workers.register("gpu0", model_info_dict(backend), backend.device_info())
    row = await workers.latest()
    model = RegisteredModel.from_dict(row.model_info)
    assert (model.defaults, model.limits, model.tiers) == (
        backend.defaults,
        backend.limits,
        backend.tiers,
    )
    assert row.worker_id == "gpu0" and row.stopped_at is None
    await workers.stopped("gpu0")
    assert (await workers.latest()).stopped_at is not None


async def test_registered_model_carries_the_image_model_of_photo_requests(a: JobStore) -> None:
    """A front end validates photo requests with the workers' I2V_MODEL bounds, and tells users
    photos are not animated when the workers load no image model."""
    from tests.fakes.backend import FAKE_IMAGE_MODEL

    workers = WorkerStore(a.conn)
    await workers.register("gpu0", model_info_dict(FakeBackend()), "cpu")
    assert RegisteredModel.from_dict((await workers.latest()).model_info).image_model is None
    backend = FakeBackend(image_model=FAKE_IMAGE_MODEL)
    await workers.register("gpu1", model_info_dict(backend), "cpu")
    model = RegisteredModel.from_dict((await workers.latest()).model_info)
    assert model.image_model is not None
    assert (model.image_model.defaults, model.image_model.limits) == (
        FAKE_IMAGE_MODEL.defaults,
        FAKE_IMAGE_MODEL.limits,
    )
