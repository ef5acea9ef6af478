"""Hypothesis drives create / claim / cancel / mark_* / recover against a plain Python model of
the queue, on both engines: after every step the stored statuses and the fair order (what users
are shown and what the next claim takes) equal the model's. The model's transitions are read
from the same table as the store's (``TRANSITIONS``); its fair order is written out here from
the definition in ``QUEUE_ORDER_SQL``'s docstring, independently of the SQL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from bot.storage import db
from bot.storage.jobs import TRANSITIONS, FailReason, JobStatus, job_store
from pipeline.options import GenerationOptions
from tests.storage.conftest import FakeClock

MAX_ATTEMPTS = 2
TABLES = ("jobs", "users", "app_state", "update_inbox")


@dataclass
class ModelJob:
    id: int
    user_id: int
    status: str = JobStatus.QUEUED
    started_at: float | None = None
    attempts: int = 0


def fair_order(jobs: dict[int, ModelJob]) -> list[int]:
    """Round-robin by user; within a round never-rendered users first, then by their latest
    render's start, ties by their oldest queued job."""
    queued = sorted((j for j in jobs.values() if j.status == JobStatus.QUEUED), key=lambda j: j.id)
    turn: dict[int, int] = {}
    first: dict[int, int] = {}
    keys = []
    for job in queued:
        turn[job.user_id] = turn.get(job.user_id, 0) + 1
        first.setdefault(job.user_id, job.id)
        starts = [j.started_at for j in jobs.values() if j.user_id == job.user_id and j.started_at]
        last = max(starts) if starts else None
        keys.append(
            ((turn[job.user_id], last is not None, last or 0.0, first[job.user_id]), job.id)
        )
    return [job_id for _, job_id in sorted(keys)]


def make_machine(open_conn: Any) -> type[RuleBasedStateMachine]:
    class QueueMachine(RuleBasedStateMachine):
        jobs_bundle = Bundle("jobs")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.clock = FakeClock()
            self.conn = self.run(open_conn())
            self.store = job_store(self.conn, self.clock)
            self.model: dict[int, ModelJob] = {}

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        def teardown(self) -> None:
            self.run(self.conn.close())
            self.loop.close()

        @initialize()
        def empty(self) -> None:
            for table in TABLES:
                self.run(self.conn.execute(f"DELETE FROM {table}"))

        def tick(self) -> None:
            self.clock.advance(1.0)

        @rule(target=jobs_bundle, user=st.integers(1, 3))
        def create(self, user: int) -> int:
            self.tick()
            options = GenerationOptions(prompt="кот", negative_prompt="", steps=2, seed=1,
                                        frames=9, fps=16, width=64, height=64, guidance=5.0)  # fmt: skip
            job = self.run(self.store.create(user, user, 1, "кот", options))
            self.model[job.id] = ModelJob(job.id, user)
            return job.id

        @rule()
        def claim(self) -> None:
            self.tick()
            expected = fair_order(self.model)
            job = self.run(self.store.claim_next())
            if not expected:
                assert job is None
                return
            assert job is not None and job.id == expected[0]
            model = self.model[job.id]
            model.status, model.started_at = JobStatus.RUNNING, self.clock.now
            model.attempts += 1
            assert job.attempts == model.attempts

        def guarded(self, operation: str, job_id: int, call: Any) -> None:
            self.tick()
            model = self.model[job_id]
            sources, target = TRANSITIONS[operation]
            happened = self.run(call)
            assert bool(happened) == (model.status in sources), (operation, model.status)
            if happened:
                model.status = target
                if operation == "refuse_claimed":
                    model.started_at = None

        @rule(job_id=jobs_bundle)
        def cancel(self, job_id: int) -> None:
            self.guarded("cancel", job_id, self.store.cancel(job_id))

        @rule(job_id=jobs_bundle)
        def release(self, job_id: int) -> None:
            """A worker stopping gracefully gives its job back (the reaper's and take-back's
            requeue write the same columns): queued again, never started, attempt counted."""
            self.tick()
            model = self.model[job_id]
            released = self.run(self.store.release(job_id, model.attempts))
            assert released == (model.status == JobStatus.RUNNING)
            if released:
                model.status, model.started_at = JobStatus.QUEUED, None

        @rule(job_id=jobs_bundle)
        def refuse_claimed(self, job_id: int) -> None:
            reason = FailReason.over_limit("steps", 1)
            self.guarded("refuse_claimed", job_id, self.store.refuse_claimed(job_id, reason))

        @rule(job_id=jobs_bundle)
        def mark_generated(self, job_id: int) -> None:
            call = self.store.mark_generated(job_id, "/v/a.mp4", {}, 1.0)
            self.guarded("mark_generated", job_id, call)

        @rule(job_id=jobs_bundle)
        def mark_delivered(self, job_id: int) -> None:
            call = self.store.mark_delivered(job_id, "f", 1)
            self.guarded("mark_delivered", job_id, call)

        @rule(job_id=jobs_bundle)
        def mark_failed(self, job_id: int) -> None:
            call = self.store.mark_failed(job_id, FailReason.GENERATION)
            self.guarded("mark_failed", job_id, call)

        @rule(job_id=jobs_bundle)
        def mark_undeliverable(self, job_id: int) -> None:
            self.guarded("mark_undeliverable", job_id, self.store.mark_undeliverable(job_id))

        @rule(user=st.integers(1, 3))
        def cancel_user_queued(self, user: int) -> None:
            self.tick()
            cancelled = self.run(self.store.cancel_user_queued(user))
            expected = sorted(
                j.id for j in self.model.values() if j.user_id == user and j.status == "queued"
            )
            assert [job.id for job in cancelled] == expected
            for job_id in expected:
                self.model[job_id].status = JobStatus.CANCELLED

        @rule()
        def recover(self) -> None:
            """A restart: running jobs go back to the queue, or fail after MAX_ATTEMPTS."""
            self.tick()
            recovery = self.run(self.store.recover(MAX_ATTEMPTS))
            running = [j for j in self.model.values() if j.status == JobStatus.RUNNING]
            failed = sorted(j.id for j in running if j.attempts >= MAX_ATTEMPTS)
            requeued = sorted(j.id for j in running if j.attempts < MAX_ATTEMPTS)
            assert [j.id for j in recovery.failed] == failed
            assert [j.id for j in recovery.requeued] == requeued
            for job_id in failed:
                self.model[job_id].status = JobStatus.FAILED
            for job_id in requeued:
                self.model[job_id].status = JobStatus.QUEUED
                self.model[job_id].started_at = None

        @invariant()
        def matches_the_model(self) -> None:
            if not hasattr(self, "store"):
                return
            rows = self.run(self.conn.execute_fetchall("SELECT id, status FROM jobs"))
            assert {row[0]: row[1] for row in rows} == {j.id: j.status for j in self.model.values()}
            assert self.run(self.store.queued_ids()) == fair_order(self.model)

    return QueueMachine


SETTINGS = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_store_follows_the_model(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "sqlite":
        path = tmp_path / "bot.sqlite3"

        async def open_conn() -> Any:
            conn = await db.open_database(path)
            await db.migrate(conn)
            return conn

    else:
        url = request.getfixturevalue("postgres_url")

        async def open_conn() -> Any:
            return await db.open_database("", url, pool_size=2)

    run_state_machine_as_test(make_machine(open_conn), settings=SETTINGS)
