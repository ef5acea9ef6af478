"""One contract for every store, run on both engines (``engine`` = sqlite | postgres).

What a user or operator relies on, whatever DATABASE_URL says: a job moves only along the
transition table (``bot.storage.jobs.TRANSITIONS``), the fair queue shows and claims the same
order, a replayed update never queues a second job, budgets count the same, and users, the
update inbox and the operator's switches behave alike.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiogram.types import Update

from bot.storage import db
from bot.storage.engine import Database, PostgresDatabase, dialect_of
from bot.storage.inbox import UpdateInbox
from bot.storage.jobs import (
    TRANSITIONS,
    FailReason,
    Job,
    JobStatus,
    JobStore,
    PostgresJobStore,
    job_store,
)
from bot.storage.state import StateStore
from bot.storage.users import UserStore
from pipeline.options import GenerationOptions
from tests.storage.conftest import FakeClock, open_engine

HOUR = 3600.0


def options(prompt: str = "кот", seed: int = 1) -> GenerationOptions:
    return GenerationOptions(
        prompt=prompt, negative_prompt="размыто", steps=2, seed=seed, frames=9, fps=16,
        width=64, height=64, guidance=5.0,
    )  # fmt: skip


async def new_job(store: JobStore, user_id: int = 1, **kwargs: object) -> Job:
    prompt = str(kwargs.pop("prompt", "кот"))
    return await store.create(
        user_id, chat_id=user_id, request_message_id=10, prompt=prompt, options=options(prompt),
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


async def force_status(conn: Database, job_id: int, status: str) -> None:
    async with conn.execute("UPDATE jobs SET status = ? WHERE id = ?", (status, job_id)) as cur:
        assert cur.rowcount == 1


async def status_of(store: JobStore, job_id: int) -> str:
    job = await store.get(job_id)
    assert job is not None
    return job.status


# ---------------------------------------------------------------- engine


async def test_store_for_the_engine_and_its_clock(conn: Database, engine: str) -> None:
    store = job_store(conn)
    assert isinstance(store, PostgresJobStore) == (engine == "postgres")
    assert isinstance(conn, PostgresDatabase) == (engine == "postgres")
    rows = await conn.execute_fetchall(f"SELECT {dialect_of(conn).now_sql} AS now")
    assert abs(rows[0]["now"] - time.time()) < 5
    assert abs(rows[0][0] - time.time()) < 5


async def test_rows_by_name_and_index_and_rowcount(conn: Database) -> None:
    rows = await conn.execute_fetchall("SELECT 7 AS answer, 'x' AS letter")
    assert rows[0]["answer"] == rows[0][0] == 7
    answer, letter = rows[0]
    assert answer == 7
    assert letter == "x"
    await StateStore(conn).set("a", "1")
    cursor = await conn.execute("UPDATE app_state SET value = ? WHERE key = ?", ("2", "a"))
    assert cursor.rowcount == 1
    async with conn.execute("UPDATE app_state SET value = ? WHERE key = ?", ("2", "b")) as cur:
        assert cur.rowcount == 0


async def test_transaction_commits_together_or_not_at_all(
    conn: Database, engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    state = StateStore(conn)
    with pytest.raises(RuntimeError):
        async with db.transaction(conn):
            await state.set("paused", "1")
            await state.set("other", "x")
            raise RuntimeError("boom")
    assert await state.get("paused") is None and await state.get("other") is None
    async with db.transaction(conn):
        await state.set("paused", "1")
        await state.set("other", "x")
    assert await state.get("paused") == "1" and await state.get("other") == "x"


async def test_postgres_transaction_is_invisible_to_others_until_commit(
    postgres_url: str,
) -> None:
    first = await db.open_database("", postgres_url)
    second = await db.open_database("", postgres_url)
    try:
        async with db.transaction(first):
            await StateStore(first).set("paused", "1")
            assert await StateStore(first).get("paused") == "1"  # routed to the block's connection
            assert await StateStore(second).get("paused") is None
        assert await StateStore(second).get("paused") == "1"
    finally:
        await first.close()
        await second.close()


# ---------------------------------------------------------------- the transition table

OPERATIONS = sorted(TRANSITIONS)


async def apply(store: JobStore, operation: str, job: Job) -> bool:
    """Run one operation of the table on ``job``; True when the store says it happened."""
    if operation == "claim_next":
        claimed = await store.claim_next()
        return claimed is not None and claimed.id == job.id
    if operation == "refuse_claimed":
        return await store.refuse_claimed(job.id, FailReason.over_limit("steps", 10))
    if operation == "mark_generated":
        return await store.mark_generated(job.id, "/v/x.mp4", {"width": 64}, 1.5)
    if operation == "mark_delivered":
        return await store.mark_delivered(job.id, "file-id", 99)
    if operation == "mark_failed":
        return await store.mark_failed(job.id, FailReason.GENERATION)
    if operation == "mark_undeliverable":
        return await store.mark_undeliverable(job.id)
    if operation == "cancel":
        return await store.cancel(job.id) is not None
    if operation == "cancel_user_queued":
        return [j.id for j in await store.cancel_user_queued(job.user_id)] == [job.id]
    if operation == "requeue":
        recovery = await store.recover(max_attempts=99)
        return [j.id for j in recovery.requeued] == [job.id]
    raise AssertionError(operation)


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_every_state_against_the_transition_table(
    store: JobStore, conn: Database, operation: str
) -> None:
    sources, target = TRANSITIONS[operation]
    for status in JobStatus.ALL:
        job = await new_job(store, user_id=hash(status) % 1000 + 1)
        await force_status(conn, job.id, status)
        happened = await apply(store, operation, job)
        now = await status_of(store, job.id)
        if status in sources:
            assert happened, (operation, status)
            assert now == target, (operation, status)
        else:
            assert not happened, (operation, status)
            assert now == status, (operation, status)
        await force_status(conn, job.id, JobStatus.DELIVERED)  # out of the next round's way


async def test_the_table_covers_every_store_transition() -> None:
    reachable = {t.target for t in TRANSITIONS.values()}
    assert reachable | {JobStatus.QUEUED} == set(JobStatus.ALL)
    for sources, target in TRANSITIONS.values():
        assert target not in sources
        assert not set(sources) & set(JobStatus.FINAL)  # a final state never changes


async def test_claim_counts_attempts_and_recover_fails_after_max(store: JobStore) -> None:
    job = await new_job(store)
    for attempt in (1, 2):
        claimed = await store.claim_next()
        assert claimed is not None and claimed.attempts == attempt
        recovery = await store.recover(max_attempts=2)
        assert [j.id for j in recovery.requeued] == ([job.id] if attempt == 1 else [])
    final = await store.get(job.id)
    assert final is not None and final.status == JobStatus.FAILED
    assert final.error == FailReason.INTERRUPTED


# ---------------------------------------------------------------- the fair queue


async def fair_scenario(store: JobStore, clock: FakeClock) -> tuple[list[int], list[int]]:
    """Three users, one of whom already rendered: the shown order, then the claim order."""
    ids: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    for user, count in (("a", 3), ("b", 1), ("c", 2)):
        for _ in range(count):
            clock.advance(1)
            ids[user].append((await new_job(store, user_id=ord(user))).id)
    first = await store.claim_next()  # a's first job: a has rendered now
    assert first is not None
    assert await store.mark_generated(first.id, "/v/1.mp4", {}, 1.0)
    clock.advance(1)
    for _ in range(2):
        clock.advance(1)
        ids["b"].append((await new_job(store, user_id=ord("b"))).id)
    shown = [job.id for job in await store.queue_order()]
    assert shown == await store.queued_ids()
    claimed = []
    while (job := await store.claim_next()) is not None:
        clock.advance(1)
        claimed.append(job.id)
    return shown, claimed


async def test_claims_follow_the_shown_order(store: JobStore, clock: FakeClock) -> None:
    shown, claimed = await fair_scenario(store, clock)
    assert claimed == shown
    assert len(shown) == 7


async def test_queue_order_identical_on_both_engines(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    orders = []
    for engine in ("sqlite", "postgres"):
        conn = await open_engine(engine, tmp_path, request)
        try:
            clock = FakeClock()
            orders.append(await fair_scenario(job_store(conn, clock), clock))
        finally:
            await conn.close()
    sqlite_order, postgres_order = orders
    assert sqlite_order == postgres_order
    # Users' own numbers make the ids comparable: the same jobs were created in the same order.
    assert sqlite_order[0] == sqlite_order[1]


async def test_positions(store: JobStore) -> None:
    first = await new_job(store, user_id=1)
    second = await new_job(store, user_id=1)
    other = await new_job(store, user_id=2)
    assert await store.queue_position(first.id) == 1
    assert await store.queue_position(other.id) == 2
    assert await store.queue_position(second.id) == 3
    await store.claim_next()
    assert await store.queue_position(first.id) is None
    running = await store.all_active()
    assert [job.status for job in running] == ["running", "queued", "queued"]


# ---------------------------------------------------------------- create, numbers, counts


async def test_create_is_idempotent_by_update_id(store: JobStore, clock: FakeClock) -> None:
    job = await new_job(store, update_id=555)
    clock.advance(5)
    again = await new_job(store, update_id=555, prompt="другое")
    assert again == job
    assert await store.count_queued() == 1
    assert await store.by_update_id(555) == job
    other = await new_job(store, update_id=556)
    assert other.id != job.id and other.number == 2
    assert (await store.by_number(1, 2)) == other


async def test_create_round_trips_every_field(store: JobStore, clock: FakeClock) -> None:
    big_user, group = 7_000_000_001, -1_001_234_567_890  # Telegram ids beyond 32 bits
    job = await store.create(
        big_user, chat_id=group, request_message_id=2**31 + 5, prompt="Закат «волны»",
        options=options("Закат «волны»", seed=2**32 - 1), translate=False, source="repeat",
        update_id=2**40, locale="en", cost=2.75,
    )  # fmt: skip
    again = await store.get(job.id)
    assert again == job
    assert (job.user_id, job.chat_id, job.update_id) == (big_user, group, 2**40)
    assert job.options.seed == 2**32 - 1 and job.translate is False and job.cost == 2.75
    assert job.created_at == clock.now  # DOUBLE PRECISION keeps the seconds
    assert job.locale == "en" and job.number == 1


async def test_budgets_and_counts(store: JobStore, clock: FakeClock) -> None:
    start = clock.now
    a = await new_job(store, user_id=1, cost=1.5)
    await new_job(store, user_id=1, cost=2.0)
    cancelled = await new_job(store, user_id=1, cost=4.0)
    await store.cancel(cancelled.id)  # never rendered: not charged
    await new_job(store, user_id=2, cost=3.0)
    assert await store.active_count(1) == 2
    assert await store.count_since(1, start) == 3
    assert await store.cost_since(start, user_id=1) == pytest.approx(3.5)
    assert await store.cost_since(start, chat_id=2) == pytest.approx(3.0)
    assert await store.cost_since(start + 1, user_id=1) == 0.0
    claimed = await store.claim_next()
    assert claimed is not None and claimed.id == a.id
    await store.cancel(a.id)  # ran, then cancelled: still charged
    assert await store.cost_since(start, user_id=1) == pytest.approx(3.5)
    assert await store.count_queued() == 2
    counts = await store.state_counts()
    assert counts[(JobStatus.CANCELLED, None)] == 2 and counts[(JobStatus.QUEUED, None)] == 2


async def test_stats_hourly_and_recent_runs(store: JobStore, clock: FakeClock) -> None:
    clock.now = 1_700_000_000.0 - 1_700_000_000.0 % HOUR + HOUR - 1  # one second before an hour
    old = await new_job(store, user_id=1)
    await store.claim_next()
    await store.mark_generated(old.id, "/v/a.mp4", {}, 10.0)
    await store.mark_delivered(old.id, "f", 1)
    clock.advance(2)  # the next hour
    failed = await new_job(store, user_id=2)
    await store.claim_next()
    await store.mark_failed(failed.id, FailReason.GENERATION)
    await new_job(store, user_id=3)
    stats = await store.stats(clock.now - 1)
    assert stats["jobs_total"] == 3 and stats["jobs_since"] == 2
    assert stats["by_status_since"][JobStatus.DELIVERED] == 0
    assert stats["by_status_total"][JobStatus.DELIVERED] == 1
    assert stats["failure_rate_total"] == 0.5 and stats["failure_rate"] == 1.0
    assert stats["mean_gen_seconds_total"] == 10.0 and stats["mean_gen_seconds"] is None
    assert stats["queue_length"] == 1 and stats["running"] == 0
    hours = await store.hourly(clock.now - 2 * HOUR)
    assert [bucket.jobs for bucket in hours] == [0, 1, 2]  # floor, not rounding, of the hour
    assert hours[1].mean_gen_seconds == 10.0
    assert await store.recent_durations() == [10.0]
    runs = await store.recent_runs()
    assert runs[0].seconds == 10.0 and runs[0].options.frames == 9


async def test_files_and_prompt_retention(store: JobStore, clock: FakeClock) -> None:
    job = await new_job(store, prompt="секрет")
    await store.claim_next()
    meta = {"width": 64, "path": "/v/a.mp4", "thumbnail": "/v/a.jpg"}
    await store.mark_generated(job.id, "/v/a.mp4", meta, 1.0)
    paths, keep = await store.file_references()
    assert paths == {"/v/a.mp4", "/v/a.jpg"} and keep == {job.id}
    assert await store.expired_files(clock.now + 10) == []  # generated: kept whatever its age
    await store.mark_delivered(job.id, "file", 5)
    clock.advance(100)
    assert [j.id for j in await store.expired_files(clock.now)] == [job.id]
    assert await store.mark_files_deleted(job.id)
    gone = await store.get(job.id)
    assert gone is not None and gone.video_path is None and gone.file_id == "file"
    assert gone.video_meta is not None
    assert gone.video_meta["width"] == 64 and gone.video_meta["thumbnail"] is None
    assert gone.video_meta["files_deleted_at"] == clock.now
    assert await store.expired_files(clock.now + 10) == []
    assert await store.forget_prompts(clock.now + 1) == 1
    blank = await store.get(job.id)
    assert blank is not None and blank.prompt == "" and blank.options.negative_prompt == ""
    assert blank.options.steps == 2
    assert await store.forget_prompts(clock.now + 1) == 0


# ---------------------------------------------------------------- users, inbox, state


async def test_users(conn: Database, clock: FakeClock) -> None:
    users = UserStore(conn, clock)
    user = await users.touch(7_000_000_001, "anna", "Анна")
    assert (user.user_id, user.username, user.first_name, user.banned) == (
        7_000_000_001, "anna", "Анна", False,
    )  # fmt: skip
    assert (await users.touch(7_000_000_001, "anna2", None)).username == "anna2"
    assert await users.ban(42) and not await users.ban(42)
    assert await users.is_banned(42) and not await users.is_banned(7_000_000_001)
    assert await users.banned_ids() == [42]
    assert await users.unban(42) and not await users.unban(42)
    settings = await users.update_settings(1, steps=20, **{"a.b": "x"}, quality="fast")
    assert settings == {"steps": 20, "a.b": "x", "quality": "fast"}
    assert await users.update_settings(1, steps=None, size=[64, 64]) == {
        "a.b": "x", "quality": "fast", "size": [64, 64],
    }  # fmt: skip
    assert await users.get_settings(1) == {"a.b": "x", "quality": "fast", "size": [64, 64]}
    await conn.execute("UPDATE users SET settings = 'not json' WHERE user_id = 1")
    assert await users.update_settings(1, fps=8) == {"fps": 8}  # a corrupt value starts afresh
    assert await users.reset_settings(1) and not await users.reset_settings(1)
    clock.advance(100)
    await users.touch(5, "recent", None)
    assert await users.forget_names(clock.now - 1) == 1
    forgotten = await users.get(7_000_000_001)
    assert forgotten is not None and forgotten.username is None and forgotten.first_name is None
    assert await users.count_users() == 4


async def test_update_inbox(conn: Database, clock: FakeClock) -> None:
    inbox = UpdateInbox(conn, clock)
    batch = [Update(update_id=i) for i in (10, 11)]
    assert await inbox.store(batch) == {10, 11}
    assert await inbox.store([Update(update_id=11), Update(update_id=12)]) == {12}
    assert [uid for uid, _ in await inbox.pending()] == [10, 11, 12]
    await inbox.mark_done(11)
    assert [uid for uid, _ in await inbox.pending()] == [10, 12]
    clock.advance(2 * 24 * 3600)
    assert await inbox.prune() == 1
    assert await inbox.prune() == 0


async def test_app_state(conn: Database) -> None:
    state = StateStore(conn)
    assert await state.get("paused") is None
    assert await state.set("paused", "1")
    assert not await state.set("paused", "1")
    assert await state.set("paused", "0")
    assert await state.get("paused") == "0"


async def test_concurrent_requests_of_one_user_get_distinct_numbers(store: JobStore) -> None:
    """Updates are handled concurrently (and by several front ends on PostgreSQL): a user's
    jobs are still numbered #1, #2, … without a repeat."""
    jobs = await asyncio.gather(*(new_job(store, user_id=9) for _ in range(12)))
    assert sorted(job.number for job in jobs) == list(range(1, 13))


def test_both_implementations_offer_every_protocol_method() -> None:
    """The Protocol and the stores cannot drift apart: same names, same parameters."""
    import inspect

    from bot.storage.protocol import JobStoreProtocol

    methods = [
        name for name, value in vars(JobStoreProtocol).items() if inspect.iscoroutinefunction(value)
    ]
    assert len(methods) > 30
    for implementation in (JobStore, PostgresJobStore):
        for name in methods:
            ours = inspect.signature(getattr(implementation, name))
            declared = inspect.signature(getattr(JobStoreProtocol, name))
            assert list(ours.parameters) == list(declared.parameters), (implementation, name)


async def test_connections_the_server_dropped_are_replaced(
    postgres_url: str, postgres_server: object
) -> None:
    """After PostgreSQL ends every session (a restart, a failover), the next store call works."""
    import psycopg

    conn = await db.open_database("", postgres_url, pool_size=3)
    try:
        state = StateStore(conn)
        await asyncio.gather(*(state.set(f"k{i}", "1") for i in range(3)))  # fill the pool
        name = urlsplit(postgres_url).path.lstrip("/")
        admin = postgres_server.admin_url  # type: ignore[attr-defined]
        with psycopg.connect(admin, autocommit=True) as other:
            ended = other.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid != pg_backend_pid()",
                (name,),
            ).fetchone()
        assert ended is not None and ended[0] >= 1
        assert await state.set("paused", "1")
        assert await state.get("paused") == "1"
    finally:
        await conn.close()


async def test_a_task_started_inside_a_transaction_is_not_part_of_it(postgres_url: str) -> None:
    """Only the task that opened the block writes in its transaction: a task it starts (a
    status reporter, say) commits on its own and never reuses the block's connection."""
    conn = await db.open_database("", postgres_url)
    try:
        state = StateStore(conn)
        with pytest.raises(RuntimeError):
            async with db.transaction(conn):
                await state.set("inside", "1")
                await asyncio.create_task(state.set("spawned", "1"))
                raise RuntimeError("roll back")
        assert await state.get("inside") is None
        assert await state.get("spawned") == "1"
    finally:
        await conn.close()
