"""The fair queue of bot/storage/jobs.py (issue 14, item 2) and the costs the budgets sum (item 1).

``JobStore.claim_next`` takes the oldest job of the user who has waited longest without a render
(round-robin by user, ties by age), and ``JobStore.queue_order`` — what positions, ETAs and
/queue are computed from — lists the queued jobs in exactly the order the claims will take them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.storage import db
from bot.storage.jobs import FailReason, Job, JobStatus, JobStore
from pipeline.options import GenerationOptions

T0 = 1_700_000_000.0
A, B, C = 1, 2, 3
GROUP = -100


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        self.now += 1.0  # every read is a new instant, as time.time() is for sequential claims
        return self.now


def options(prompt: str = "кот") -> GenerationOptions:
    return GenerationOptions(
        prompt=prompt, negative_prompt="", steps=4, seed=1, frames=9, fps=8, width=64, height=64,
        guidance=5.0,
    )  # fmt: skip


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    connection = await db.connect(tmp_path / "bot.sqlite3")
    await db.migrate(connection)
    yield connection
    await connection.close()


@pytest.fixture
def store(conn: aiosqlite.Connection) -> JobStore:
    return JobStore(conn, clock=Clock())


async def add(
    store: JobStore, user_id: int, prompt: str = "", chat_id: int | None = None, cost: float = 1.0
) -> Job:
    return await store.create(
        user_id, user_id if chat_id is None else chat_id, 1, prompt or f"u{user_id}",
        options(prompt or f"u{user_id}"), cost=cost,
    )  # fmt: skip


async def drain(store: JobStore) -> list[int]:
    claimed = []
    while (job := await store.claim_next()) is not None:
        claimed.append(job.id)
    return claimed


# ---------------------------------------------------------------- round-robin


async def test_a_user_with_three_jobs_and_a_newcomer_alternate(store: JobStore) -> None:
    a1, a2, a3 = [await add(store, A, f"a{i}") for i in (1, 2, 3)]
    b1 = await add(store, B, "b1")
    predicted = await store.queue_order()
    assert [j.id for j in predicted] == [a1.id, b1.id, a2.id, a3.id]
    assert [await store.queue_position(j.id) for j in (a1, b1, a2, a3)] == [1, 2, 3, 4]
    assert await drain(store) == [a1.id, b1.id, a2.id, a3.id]


async def test_a_newcomer_waits_at_most_one_render(store: JobStore) -> None:
    a1, a2, a3 = [await add(store, A, f"a{i}") for i in (1, 2, 3)]
    running = await store.claim_next()
    assert running.id == a1.id
    a4 = await add(store, A, "a4")
    b1 = await add(store, B, "b1")  # arrives while A's first job renders
    assert await store.queue_position(b1.id) == 1  # next, ahead of A's older jobs
    assert [j.id for j in await store.all_active()] == [a1.id, b1.id, a2.id, a3.id, a4.id]
    c1 = await add(store, C, "c1")
    assert [j.id for j in await store.queue_order()] == [b1.id, c1.id, a2.id, a3.id, a4.id]
    assert await drain(store) == [b1.id, c1.id, a2.id, a3.id, a4.id]


async def test_a_flood_of_accounts_delays_a_newcomer_one_render_per_account(
    store: JobStore,
) -> None:
    """The issue's flood: 50 accounts with 2 jobs each (MAX_ACTIVE_JOBS_PER_USER) fill the queue.
    First come, first served put a newcomer at place 101; round-robin at place 51 — behind
    each account's first job, ahead of every second one — and once the flood's accounts have
    had a render each, at place 1."""
    flood = [await add(store, 1000 + i) for i in range(50) for _ in range(2)]
    newcomer = await add(store, C)
    assert await store.queue_position(newcomer.id) == 51
    for _ in range(10):  # ten of the flood's first jobs render
        await store.claim_next()
    assert await store.queue_position(newcomer.id) == 41
    for _ in range(40):
        await store.claim_next()
    assert await store.queue_position(newcomer.id) == 1
    assert len(flood) == 100


async def test_three_users_take_turns_and_each_keeps_their_own_order(store: JobStore) -> None:
    jobs = {user: [await add(store, user, f"{user}-{i}") for i in range(3)] for user in (A, B, C)}
    order = await drain(store)
    assert order == [jobs[u][i].id for i in range(3) for u in (A, B, C)]


async def test_who_waited_longest_without_a_render_goes_first(store: JobStore) -> None:
    # A rendered long ago, B recently, C never: C, then A, then B, whatever the job ages.
    await add(store, A)
    await store.claim_next()
    await add(store, B)
    await store.claim_next()
    b = await add(store, B, "b-new")
    a = await add(store, A, "a-new")
    c = await add(store, C, "c-new")
    assert [j.id for j in await store.queue_order()] == [c.id, a.id, b.id]
    assert await drain(store) == [c.id, a.id, b.id]


async def test_cancelled_and_refused_jobs_leave_the_order(store: JobStore) -> None:
    a1, a2 = await add(store, A, "a1"), await add(store, A, "a2")
    b1 = await add(store, B, "b1")
    await store.cancel(a1.id)
    assert [j.id for j in await store.queue_order()] == [a2.id, b1.id]
    claimed = await store.claim_next()
    assert claimed.id == a2.id
    # Refused at claim time (limits lowered): not a render, so A keeps their place.
    assert await store.refuse_claimed(a2.id, FailReason.over_limit("steps", 50))
    refused = await store.get(a2.id)
    assert refused.status == JobStatus.FAILED and refused.started_at is None
    assert refused.error == "over_limit:steps:50"
    a3 = await add(store, A, "a3")
    # A never rendered (the refused claim does not count), B never did either: by first job.
    assert [j.id for j in await store.queue_order()] == [b1.id, a3.id]
    assert not await store.refuse_claimed(a2.id, "x")  # only a running job can be refused


async def test_a_job_requeued_at_start_waits_as_one_never_started(store: JobStore) -> None:
    a1 = await add(store, A, "a1")
    b1 = await add(store, B, "b1")
    assert (await store.claim_next()).id == a1.id
    recovery = await store.recover()  # the bot was killed while a1 rendered
    assert [j.id for j in recovery.requeued] == [a1.id]
    assert recovery.requeued[0].started_at is None and recovery.requeued[0].attempts == 1
    # A lost their render to the crash: a1 is still first, as before the claim.
    assert [j.id for j in await store.queue_order()] == [a1.id, b1.id]
    again = await store.claim_next()
    assert again.id == a1.id and again.attempts == 2


# ---------------------------------------------------------------- property


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[str, int]]:
    """A history of arrivals, claims and cancellations, then a check of the predicted order."""
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("add"), st.integers(1, 5)),
                st.tuples(st.just("claim"), st.just(0)),
                st.tuples(st.just("cancel"), st.integers(0, 30)),
                st.tuples(st.just("recover"), st.just(0)),
            ),
            max_size=40,
        )
    )
    return steps


async def run_scenario(tmp_path: Path, steps: list[tuple[str, int]]) -> None:
    conn = await db.connect(tmp_path / "property.sqlite3")
    try:
        await db.migrate(conn)
        await conn.execute("DELETE FROM jobs")
        store = JobStore(conn, clock=Clock())
        for action, value in steps:
            if action == "add":
                await add(store, value)
            elif action == "claim":
                predicted = await store.queue_order()
                claimed = await store.claim_next()
                # Every single claim takes the job shown at place 1.
                assert (claimed.id if claimed else None) == (predicted[0].id if predicted else None)
            elif action == "cancel":
                queued = await store.queue_order()
                if queued:
                    await store.cancel(queued[value % len(queued)].id)
            else:
                await store.recover()
        # With no new arrivals, the claims follow the predicted order to its end, and each
        # job's position was its index in it.
        predicted = [j.id for j in await store.queue_order()]
        assert [await store.queue_position(i) for i in predicted] == list(
            range(1, len(predicted) + 1)
        )
        assert await store.queued_ids() == predicted
        assert await drain(store) == predicted
    finally:
        await conn.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=scenarios())
def test_claims_follow_the_order_the_positions_predicted(tmp_path: Path, steps) -> None:
    asyncio.run(run_scenario(tmp_path, steps))


# ---------------------------------------------------------------- costs the budgets sum


async def test_cost_since_counts_every_job_that_started_or_may_still_start(
    store: JobStore,
) -> None:
    start = T0
    done = await add(store, A, "done", cost=2.5)
    await store.claim_next()
    await store.mark_generated(done.id, "/v.mp4", {}, 1.0)
    await store.mark_delivered(done.id, "f", 1)
    waiting = await add(store, A, "waiting", cost=1.25)
    assert await store.cost_since(start, user_id=A) == pytest.approx(3.75)
    await store.cancel(waiting.id)  # cancelled before it started: not charged
    assert await store.cost_since(start, user_id=A) == pytest.approx(2.5)

    stopped = await add(store, A, "stopped", cost=1.0)
    await store.claim_next()
    await store.cancel(stopped.id)  # cancelled while rendering: the GPU ran, it counts
    assert await store.cost_since(start, user_id=A) == pytest.approx(3.5)

    refused = await add(store, A, "refused", cost=3.0)
    await store.claim_next()
    await store.refuse_claimed(refused.id, FailReason.over_limit("frames", 33))
    assert await store.cost_since(start, user_id=A) == pytest.approx(3.5)  # never rendered

    broken = await add(store, A, "broken", cost=1.0)
    await store.claim_next()
    await store.mark_failed(broken.id, FailReason.OUT_OF_MEMORY)  # the GPU ran: it counts
    assert await store.cost_since(start, user_id=A) == pytest.approx(4.5)

    # Chats sum every member's jobs; a later window sees none of them.
    await add(store, A, "group-a", chat_id=GROUP, cost=1.5)
    await add(store, B, "group-b", chat_id=GROUP, cost=2.0)
    assert await store.cost_since(start, chat_id=GROUP) == pytest.approx(3.5)
    assert await store.cost_since(start, user_id=B) == pytest.approx(2.0)
    assert await store.cost_since(store.clock() + 10, user_id=A) == 0.0
    with pytest.raises(ValueError):
        await store.cost_since(start)


async def test_cost_is_stored_and_old_rows_cost_one(
    store: JobStore, conn: aiosqlite.Connection
) -> None:
    job = await add(store, A, cost=3.2)
    assert (await store.get(job.id)).cost == pytest.approx(3.2)
    await conn.execute(
        "INSERT INTO jobs (user_id, chat_id, status, prompt, options, created_at)"
        " VALUES (?, ?, 'queued', 'old', ?, ?)",
        (B, B, '{"prompt": "old", "negative_prompt": "", "steps": 4, "seed": 1, "frames": 9,'
         ' "fps": 8, "width": 64, "height": 64, "guidance": 5.0}', T0),
    )  # fmt: skip
    old = (await store.queue_order())[-1]
    assert old.prompt == "old" and old.cost == 1.0
