"""bot/jobs.py and bot/eta.py: the job state machine, the atomic claim, recovery, queue views, stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiosqlite
import pytest

from bot.eta import estimate_seconds, eta_for_position, remaining_seconds
from bot.storage import db
from bot.storage.jobs import FailReason, Job, JobStatus, JobStore, percentile
from pipeline.options import GenerationOptions

HOUR = 3600.0
T0 = 1_700_000_000.0  # a fixed "now" on an hour boundary minus some seconds


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_options(prompt: str = "кот играет на пианино", seed: int = 42) -> GenerationOptions:
    return GenerationOptions(
        prompt=prompt,
        negative_prompt="размыто",
        steps=30,
        seed=seed,
        frames=33,
        fps=16,
        width=832,
        height=480,
        guidance=5.0,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bot.sqlite3"


@pytest.fixture
async def conn(db_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await db.connect(db_path)
    await db.migrate(connection)
    yield connection
    await connection.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(conn: aiosqlite.Connection, clock: FakeClock) -> JobStore:
    return JobStore(conn, clock=clock)


async def new_job(store: JobStore, user_id: int = 1, prompt: str = "кот", **kwargs) -> Job:
    return await store.create(
        user_id, chat_id=user_id, request_message_id=10, prompt=prompt, options=make_options(prompt),
        **kwargs,
    )  # fmt: skip


async def generated_job(store: JobStore, seconds: float = 12.0, user_id: int = 1) -> Job:
    job = await new_job(store, user_id)
    claimed = await store.claim_next()
    assert claimed is not None and claimed.id == job.id
    assert await store.mark_generated(job.id, f"/v/{job.id}.mp4", {"width": 832}, seconds)
    return job


async def status_of(store: JobStore, job_id: int) -> str:
    job = await store.get(job_id)
    assert job is not None
    return job.status


# ---------------------------------------------------------------- create / read


async def test_create_persists_a_queued_job_with_options(
    store: JobStore, clock: FakeClock, db_path: Path
) -> None:
    options = make_options("Закат над морем «волны»", seed=2**32 - 1)
    job = await store.create(
        5, chat_id=-100, request_message_id=77, prompt="Закат над морем «волны»",
        options=options, translate=False, source="repeat",
    )  # fmt: skip
    assert job.status == JobStatus.QUEUED
    assert (job.user_id, job.chat_id, job.request_message_id) == (5, -100, 77)
    assert job.options == options
    assert job.translate is False and job.source == "repeat"
    assert job.attempts == 0 and job.created_at == clock.now
    assert job.status_message_id is None and job.video_meta is None and job.progress == 0

    # Committed: a fresh connection (another process, or after a crash) sees the same job.
    other = await db.connect(db_path)
    try:
        again = await JobStore(other).get(job.id)
    finally:
        await other.close()
    assert again == job


async def test_get_unknown_and_stored_options_with_unknown_keys(
    store: JobStore, conn: aiosqlite.Connection
) -> None:
    assert await store.get(12345) is None
    job = await new_job(store)
    await conn.execute(
        "UPDATE jobs SET options = json_set(options, '$.from_the_future', 1) WHERE id = ?",
        (job.id,),
    )
    loaded = await store.get(job.id)
    assert loaded is not None and loaded.options == job.options


async def test_quality_is_stored_and_old_rows_load_with_the_default_tier(
    store: JobStore, conn: aiosqlite.Connection
) -> None:
    fast = await store.create(1, 1, 1, "кот", replace(make_options(), quality="fast"))
    assert (await store.get(fast.id)).options.quality == "fast"
    assert (await store.get(fast.id)).options.with_seed(7).quality == "fast"  # a repeat keeps it
    old = await new_job(store)
    await conn.execute(  # a row written before the tier existed
        "UPDATE jobs SET options = json_remove(options, '$.quality') WHERE id = ?", (old.id,)
    )
    async with conn.execute("SELECT options FROM jobs WHERE id = ?", (old.id,)) as cursor:
        assert "quality" not in (await cursor.fetchone())[0]
    loaded = await store.get(old.id)
    assert loaded is not None and loaded.options.quality == "balanced"
    assert loaded.options == old.options


async def test_setters(store: JobStore) -> None:
    job = await new_job(store)
    assert await store.set_status_message(job.id, 555)
    assert await store.set_prompt_en(job.id, "a cat")
    assert not await store.set_status_message(999, 1)
    loaded = await store.get(job.id)
    assert loaded is not None
    assert loaded.status_message_id == 555 and loaded.prompt_en == "a cat"
    assert loaded.status_media is None  # a text status message
    # A status photo (PREVIEW=on): its kind is kept, so edits after a restart fit the message.
    assert await store.set_status_message(job.id, 556, "photo")
    again = await store.get(job.id)
    assert again is not None and (again.status_message_id, again.status_media) == (556, "photo")


async def test_progress_is_stored_only_while_running_and_clamped(store: JobStore) -> None:
    job = await new_job(store)
    assert not await store.set_progress(job.id, 0.5)  # still queued
    await store.claim_next()
    assert await store.set_progress(job.id, 0.25)
    assert (await store.get(job.id)).progress == 0.25
    assert await store.set_progress(job.id, 7)
    assert (await store.get(job.id)).progress == 1.0
    await store.cancel(job.id)
    assert not await store.set_progress(job.id, 0.1)


# ---------------------------------------------------------------- claim


async def test_claim_takes_oldest_first_and_counts_attempts(
    store: JobStore, clock: FakeClock
) -> None:
    assert await store.claim_next() is None
    first, second = await new_job(store), await new_job(store)
    clock.advance(5)
    claimed = await store.claim_next()
    assert claimed is not None and claimed.id == first.id
    assert claimed.status == JobStatus.RUNNING
    assert claimed.attempts == 1 and claimed.started_at == clock.now
    assert claimed.options == first.options
    assert (await store.claim_next()).id == second.id
    assert await store.claim_next() is None


async def test_claim_is_atomic_across_connections(db_path: Path, store: JobStore) -> None:
    created = [(await new_job(store, user_id=i % 7)).id for i in range(60)]
    connections = [await db.connect(db_path) for _ in range(4)]
    try:
        stores = [JobStore(c) for c in connections]
        claimed: list[int] = []

        async def drain(worker: JobStore) -> None:
            while (job := await worker.claim_next()) is not None:
                claimed.append(job.id)
                await asyncio.sleep(0)

        await asyncio.gather(*(drain(s) for s in stores for _ in range(2)))
    finally:
        for c in connections:
            await c.close()
    assert sorted(claimed) == created  # every job claimed, none twice
    assert len(claimed) == len(set(claimed))
    assert await store.count_queued() == 0
    assert all(j.attempts == 1 for j in await store.all_active())


# ---------------------------------------------------------------- transitions


async def test_happy_path_records_results(store: JobStore, clock: FakeClock) -> None:
    job = await new_job(store)
    await store.claim_next()
    clock.advance(40)
    meta = {"width": 832, "height": 480, "duration": 2.06, "size_bytes": 123456}
    assert await store.mark_generated(job.id, "/data/videos/1.mp4", meta, 38.5)
    generated = await store.get(job.id)
    assert generated.status == JobStatus.GENERATED
    assert generated.video_meta == meta and generated.gen_seconds == 38.5
    assert generated.video_path == "/data/videos/1.mp4" and generated.generated_at == clock.now
    assert generated.progress == 1.0
    clock.advance(3)
    assert await store.mark_delivered(job.id, "BAACAgIAAxk", 901)
    delivered = await store.get(job.id)
    assert delivered.status == JobStatus.DELIVERED and delivered.is_final
    assert (delivered.file_id, delivered.result_message_id) == ("BAACAgIAAxk", 901)
    assert delivered.finished_at == clock.now


async def test_delivered_job_is_never_delivered_again(store: JobStore) -> None:
    job = await generated_job(store)
    assert await store.mark_delivered(job.id, "file-1", 1)
    assert not await store.mark_delivered(job.id, "file-2", 2)
    assert not await store.mark_failed(job.id, "late error")
    assert not await store.mark_undeliverable(job.id, "late 403")
    assert await store.cancel(job.id) is None
    final = await store.get(job.id)
    assert (final.status, final.file_id, final.result_message_id) == ("delivered", "file-1", 1)


async def test_cancelled_running_job_cannot_become_generated(store: JobStore) -> None:
    job = await new_job(store)
    await store.claim_next()
    was = await store.cancel(job.id)
    assert was is not None and was.status == JobStatus.RUNNING  # "as it was": stop the worker
    assert not await store.mark_generated(job.id, "/v.mp4", {}, 1.0)
    assert not await store.mark_delivered(job.id, "f", 1)
    assert not await store.mark_failed(job.id, "oom")
    final = await store.get(job.id)
    assert final.status == JobStatus.CANCELLED and final.video_path is None
    assert final.finished_at is not None


async def test_cancel_only_from_queued_or_running(store: JobStore) -> None:
    queued = await new_job(store)
    was = await store.cancel(queued.id)
    assert was is not None and was.status == JobStatus.QUEUED
    assert await status_of(store, queued.id) == JobStatus.CANCELLED
    assert await store.cancel(queued.id) is None  # already cancelled
    assert await store.cancel(4242) is None  # unknown
    generated = await generated_job(store)
    assert await store.cancel(generated.id) is None
    assert await status_of(store, generated.id) == JobStatus.GENERATED


@pytest.mark.parametrize(
    ("setup", "method", "allowed"),
    [
        ("queued", "mark_generated", False),
        ("running", "mark_generated", True),
        ("generated", "mark_generated", False),
        ("queued", "mark_delivered", False),
        ("running", "mark_delivered", False),
        ("generated", "mark_delivered", True),
        ("queued", "mark_failed", False),
        ("running", "mark_failed", True),
        ("generated", "mark_failed", True),
        ("cancelled", "mark_failed", False),
        ("failed", "mark_failed", False),
        ("queued", "mark_undeliverable", False),
        ("running", "mark_undeliverable", False),
        ("generated", "mark_undeliverable", True),
        ("undeliverable", "mark_delivered", False),
        ("failed", "mark_generated", False),
    ],
)
async def test_transition_table(store: JobStore, setup: str, method: str, allowed: bool) -> None:
    job = await new_job(store)
    if setup != "queued":
        await store.claim_next()
    if setup in ("generated", "undeliverable"):
        await store.mark_generated(job.id, "/v.mp4", {}, 1.0)
    if setup == "undeliverable":
        await store.mark_undeliverable(job.id, "blocked")
    if setup == "cancelled":
        await store.cancel(job.id)
    if setup == "failed":
        await store.mark_failed(job.id, "boom")
    assert await status_of(store, job.id) == setup

    args = {
        "mark_generated": ("/v2.mp4", {"w": 1}, 2.0),
        "mark_delivered": ("file", 9),
        "mark_failed": ("CUDA out of memory",),
        "mark_undeliverable": ("Forbidden: bot was blocked by the user",),
    }[method]
    changed = await getattr(store, method)(job.id, *args)
    assert changed is allowed
    target = {
        "mark_generated": "generated",
        "mark_delivered": "delivered",
        "mark_failed": "failed",
        "mark_undeliverable": "undeliverable",
    }[method]
    after = await store.get(job.id)
    assert after.status == (target if allowed else setup)
    if allowed and method in ("mark_failed", "mark_undeliverable"):
        assert after.error == args[0]


# ---------------------------------------------------------------- recovery


async def test_recover_requeues_fails_and_lists_undelivered(
    store: JobStore, conn: aiosqlite.Connection
) -> None:
    interrupted = await new_job(store)
    await store.claim_next()  # running, attempts 1
    generated = await generated_job(store)
    delivered = await generated_job(store)
    await store.mark_delivered(delivered.id, "f", 1)
    waiting = await new_job(store)
    exhausted = await new_job(store)
    # A job already interrupted twice and running its third attempt.
    await conn.execute(
        "UPDATE jobs SET status = 'running', attempts = 3 WHERE id = ?", (exhausted.id,)
    )

    recovery = await store.recover(max_attempts=3)
    assert [j.id for j in recovery.requeued] == [interrupted.id]
    assert recovery.requeued[0].status == JobStatus.QUEUED
    assert recovery.requeued[0].attempts == 1  # kept: counts toward the limit
    assert [j.id for j in recovery.failed] == [exhausted.id]
    assert recovery.failed[0].status == JobStatus.FAILED
    assert recovery.failed[0].error == FailReason.INTERRUPTED  # the user reads its text
    assert [j.id for j in recovery.undelivered] == [generated.id]
    assert recovery.undelivered[0].video_path == f"/v/{generated.id}.mp4"
    assert await status_of(store, generated.id) == JobStatus.GENERATED
    assert (await store.get(delivered.id)).status == JobStatus.DELIVERED
    assert await status_of(store, waiting.id) == JobStatus.QUEUED

    # The requeued job keeps its place at the head of the queue.
    assert await store.queued_ids() == [interrupted.id, waiting.id]
    again = await store.claim_next()
    assert again.id == interrupted.id and again.attempts == 2

    # Recovery is idempotent apart from the job now running again.
    second = await store.recover()
    assert [j.id for j in second.requeued] == [interrupted.id] and second.failed == []
    assert [j.id for j in second.undelivered] == [generated.id]


async def test_three_interrupted_attempts_end_in_failure(store: JobStore) -> None:
    job = await new_job(store)
    for attempt in (1, 2):
        claimed = await store.claim_next()
        assert claimed.id == job.id and claimed.attempts == attempt
        recovery = await store.recover()  # the bot was killed mid-generation
        assert [j.id for j in recovery.requeued] == [job.id]
    assert (await store.claim_next()).attempts == 3
    recovery = await store.recover()
    assert recovery.requeued == [] and [j.id for j in recovery.failed] == [job.id]
    failed = await store.get(job.id)
    assert failed.status == JobStatus.FAILED and failed.error and failed.finished_at
    assert await store.claim_next() is None


# ---------------------------------------------------------------- queue views


async def test_queue_positions_follow_cancel_and_claim(store: JobStore) -> None:
    a, b, c, d = [await new_job(store) for _ in range(4)]
    assert [await store.queue_position(j.id) for j in (a, b, c, d)] == [1, 2, 3, 4]
    await store.cancel(b.id)
    assert [await store.queue_position(j.id) for j in (a, b, c, d)] == [1, None, 2, 3]
    await store.claim_next()
    assert [await store.queue_position(j.id) for j in (a, c, d)] == [None, 1, 2]
    assert await store.queue_position(999) is None
    assert await store.queued_ids() == [c.id, d.id]
    assert await store.count_queued() == 2


async def test_user_views_and_limits(store: JobStore, clock: FakeClock) -> None:
    old = await new_job(store, user_id=1, prompt="старый")
    clock.advance(HOUR)
    running = await new_job(store, user_id=1, prompt="идёт")
    other = await new_job(store, user_id=2, prompt="чужой")
    queued = await new_job(store, user_id=1, prompt="ждёт")
    await store.cancel(old.id)
    await store.claim_next()  # claims `running` (old is cancelled)

    assert [j.id for j in await store.user_jobs(1)] == [queued.id, running.id, old.id]
    assert [j.id for j in await store.user_jobs(1, limit=2)] == [queued.id, running.id]
    assert [j.id for j in await store.user_jobs(1, statuses=["cancelled"])] == [old.id]
    assert await store.user_jobs(1, statuses=[]) == []
    assert (await store.latest_active(1)).id == queued.id
    assert (await store.latest_active(2)).id == other.id
    assert await store.latest_active(3) is None
    assert [j.id for j in await store.all_active()] == [running.id, other.id, queued.id]
    assert await store.active_count(1) == 2 and await store.active_count(2) == 1
    assert await store.count_since(1, T0) == 3  # cancelled ones count toward the daily limit
    assert await store.count_since(1, T0 + 1) == 2
    assert await store.count_since(3, 0) == 0


async def test_cancel_user_queued_spares_running_and_other_users(store: JobStore) -> None:
    running = await new_job(store, user_id=1)
    await store.claim_next()
    mine = [await new_job(store, user_id=1) for _ in range(3)]
    theirs = await new_job(store, user_id=2)
    cancelled = await store.cancel_user_queued(1)
    assert [j.id for j in cancelled] == [j.id for j in mine]
    assert all(j.status == JobStatus.CANCELLED for j in cancelled)
    assert await status_of(store, running.id) == JobStatus.RUNNING
    assert await status_of(store, theirs.id) == JobStatus.QUEUED
    assert await store.cancel_user_queued(1) == []


async def test_recent_durations_newest_first(store: JobStore, clock: FakeClock) -> None:
    for seconds in (10.0, 20.0, 30.0):
        clock.advance(60)
        await generated_job(store, seconds)
    await new_job(store)  # never generated: no duration
    assert await store.recent_durations() == [30.0, 20.0, 10.0]
    assert await store.recent_durations(limit=2) == [30.0, 20.0]


async def test_recent_runs_carry_each_jobs_options(store: JobStore, clock: FakeClock) -> None:
    """The ETA learns each tier's cost from them: the seconds with the options they ran."""
    for quality, seconds in (("best", 60.0), ("fast", 6.0)):
        clock.advance(60)
        job = await store.create(
            1, 1, 10, "кот", replace(make_options("кот"), quality=quality, steps=50)
        )
        assert (await store.claim_next()).id == job.id
        assert await store.mark_generated(job.id, f"/v/{job.id}.mp4", {}, seconds)
    await new_job(store)  # never generated: not a run
    runs = await store.recent_runs()
    assert [(r.seconds, r.options.quality, r.options.prompt) for r in runs] == [
        (6.0, "fast", "кот"),
        (60.0, "best", "кот"),
    ]
    assert [r.seconds for r in await store.recent_runs(limit=1)] == [6.0]


# ---------------------------------------------------------------- stats


async def test_stats_counts_times_and_failure_rate(store: JobStore, clock: FakeClock) -> None:
    # Yesterday: one delivered (100 s), one failed.
    old = await generated_job(store, 100.0)
    await store.mark_delivered(old.id, "f", 1)
    await new_job(store)
    await store.claim_next()
    await store.mark_failed((await store.all_active())[0].id, "oom")
    clock.advance(24 * HOUR)
    since = clock.now - HOUR
    # Today: 20 delivered with 1..20 s, one undeliverable, one cancelled, one running, two queued.
    for seconds in range(1, 21):
        job = await generated_job(store, float(seconds))
        await store.mark_delivered(job.id, "f", 1)
    blocked = await generated_job(store, 50.0)
    await store.mark_undeliverable(blocked.id, "403")
    cancelled = await new_job(store)
    await store.cancel(cancelled.id)
    await new_job(store)
    await store.claim_next()
    await new_job(store)
    await new_job(store)

    stats = await store.stats(since)
    assert stats["by_status_since"] == {
        "queued": 2,
        "running": 1,
        "generated": 0,
        "delivered": 20,
        "cancelled": 1,
        "failed": 0,
        "undeliverable": 1,
    }
    assert stats["by_status_total"]["delivered"] == 21
    assert stats["by_status_total"]["failed"] == 1
    assert stats["jobs_since"] == 25 and stats["jobs_total"] == 27
    assert stats["mean_gen_seconds"] == pytest.approx((210 + 50) / 21)
    assert stats["p95_gen_seconds"] == 20.0  # nearest rank 20 of 21 sorted values
    assert stats["mean_gen_seconds_total"] == pytest.approx((210 + 50 + 100) / 22)
    assert stats["p95_gen_seconds_total"] == 50.0
    assert stats["failure_rate"] == 0.0
    assert stats["failure_rate_total"] == pytest.approx(1 / 23)
    assert stats["queue_length"] == 2 and stats["running"] == 1


async def test_stats_of_an_empty_database(store: JobStore) -> None:
    stats = await store.stats(0)
    assert stats["jobs_total"] == 0 and stats["queue_length"] == 0
    assert stats["mean_gen_seconds"] is None and stats["p95_gen_seconds"] is None
    assert stats["failure_rate"] is None


async def test_hourly_buckets_cover_every_hour(store: JobStore, clock: FakeClock) -> None:
    start = (T0 // HOUR) * HOUR
    clock.now = start + 10
    await generated_job(store, 10.0)
    await generated_job(store, 30.0)
    await store.cancel((await new_job(store)).id)  # counted, but has no duration
    clock.now = start + 2 * HOUR + 5
    await generated_job(store, 4.0)
    clock.now = start + 3 * HOUR + 1
    buckets = await store.hourly(start - HOUR)
    assert [b.hour_ts for b in buckets] == [start + k * HOUR for k in range(-1, 4)]
    assert [b.jobs for b in buckets] == [0, 3, 0, 1, 0]
    assert buckets[1].mean_gen_seconds == pytest.approx(20.0)
    assert buckets[3].mean_gen_seconds == 4.0
    assert buckets[0].mean_gen_seconds is None
    hour_ts, jobs, mean = buckets[1]  # plain tuples for the chart code
    assert (hour_ts, jobs, mean) == (start, 3, pytest.approx(20.0))
    week = await store.hourly(clock.now - 7 * 24 * HOUR)
    assert len(week) == 7 * 24 + 1 and sum(b.jobs for b in week) == 4


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile(range(1, 101), 95) == 95
    assert percentile([3, 1, 2], 50) == 2


# ---------------------------------------------------------------- ETA


def test_estimate_is_the_median_of_measured_durations() -> None:
    assert estimate_seconds([], default=90) == 90.0
    assert estimate_seconds([10, 12, 300], default=90) == 12.0  # one outlier does not dominate
    assert estimate_seconds([10, 20], default=90) == 15.0
    assert estimate_seconds([0, -1], default=90) == 90.0


def test_eta_for_position_and_remaining_time() -> None:
    assert eta_for_position(1, per_job=30) == 30
    assert eta_for_position(3, per_job=30, running_remaining=10) == 100
    assert remaining_seconds(0.5, elapsed=20, per_job=100) == pytest.approx(20)
    assert remaining_seconds(0.0, elapsed=20, per_job=100) == 80
    assert remaining_seconds(0.01, elapsed=200, per_job=100) == 0
    assert remaining_seconds(1.0, elapsed=20, per_job=100) == 0
