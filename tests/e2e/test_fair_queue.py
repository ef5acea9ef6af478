"""End to end (issue 14): the fair queue, budgets and limits checked again when a job starts, with
the real bot over the fake Bot API.

* A user with three queued jobs never blocks a newcomer for more than one render: the renders
  alternate, and the places in the queue users were shown are the order the GPU followed.
* A job queued before the operator lowered ``MAX_STEPS`` and restarted fails when it is claimed,
  with a message naming the limit, and renders nothing.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.telegram.keyboards import RepeatCb
from bot.texts import admin as admin_texts
from bot.texts import status as status_texts
from tests.e2e import harness
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

ADMIN, ALICE, BOB = 5000, 1001, 1002
ENGINE: dict[str, Any] = {}
"""Settings of the database the module's bots use: SQLite, or DATABASE_URL on PostgreSQL."""


@pytest.fixture(params=["sqlite", "postgres"], autouse=True)
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs twice: the queue in the SQLite file, then in a fresh PostgreSQL."""
    if request.param == "postgres":
        ENGINE["database_url"] = request.getfixturevalue("postgres_url")
    try:
        yield request.param
    finally:
        ENGINE.clear()


def running_bot(tg: FakeTelegram, tmp_path: Path, backend: FakeBackend, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "admin_ids": [ADMIN],
        "status_min_interval": 0.1,
        "queue_refresh_interval": 0.1,
        "translator_model": "none",
        "max_active_jobs_per_user": 10,
        **ENGINE,
    }
    values.update(overrides)
    return harness.running_bot(tg, tmp_path, backend, **values)


def places(tg: FakeTelegram, chat_id: int) -> dict[int, int]:
    """The user's job number (``#n``) → the place in the queue its status message shows now."""
    found = {}
    for text in tg.texts_to(chat_id):
        match = re.search(r"Запрос #(\d+) принят\.\nМесто в очереди: (\d+)", text)
        if match:
            found[int(match.group(1))] = int(match.group(2))
    return found


async def test_a_user_with_three_queued_jobs_and_a_newcomer_alternate(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("кот 1", user_id=ALICE)
        await tg.wait_for(lambda: backend.started.is_set())  # Alice's first job renders
        first = (await app.jobs.user_jobs(ALICE, limit=10))[-1].number

        def waiting(chat_id: int) -> dict[int, int]:  # the first job's message goes on to render
            return {job: place for job, place in places(tg, chat_id).items() if job != first}

        for i in (2, 3, 4):  # one after the other: updates are handled concurrently
            tg.push_message(f"кот {i}", user_id=ALICE)
            await tg.wait_for(lambda i=i: len(waiting(ALICE)) == i - 1)
        await tg.wait_for(lambda: sorted(waiting(ALICE).values()) == [1, 2, 3])
        tg.push_message("пёс", user_id=BOB)  # the newcomer arrives last…
        await tg.wait_for(lambda: places(tg, BOB))
        assert list(places(tg, BOB).values()) == [1]  # …and is next
        # Alice's waiting jobs were moved down, in the same order the worker will follow.
        await tg.wait_for(lambda: sorted(waiting(ALICE).values()) == [2, 3, 4])
        shown = {(ALICE, n): place for n, place in waiting(ALICE).items()}
        shown.update({(BOB, n): place for n, place in places(tg, BOB).items()})
        predicted = [(job.user_id, job.number) for job in await app.jobs.queue_order()]
        assert sorted(shown, key=shown.get) == predicted
        gate.set()
        await tg.wait_for(lambda: len(tg.videos()) == 5, timeout=20)
    prompts = [options.prompt for options in backend.runs]
    assert prompts == ["кот 1", "пёс", "кот 2", "кот 3", "кот 4"]


async def test_a_job_the_lowered_limits_no_longer_allow_fails_when_claimed(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("/pause", user_id=ADMIN)
        await tg.wait_for(lambda: admin_texts.pause_done() in tg.texts_to(ADMIN))
        tg.push_message("кот --steps 100", user_id=ALICE)
        tg.push_message("пёс", user_id=BOB)
        await tg.wait_for(lambda: places(tg, ALICE) and places(tg, BOB))
    # The operator lowers MAX_STEPS to 50 and restarts with both jobs queued.
    async with running_bot(tg, tmp_path, backend, max_steps=50) as app:
        tg.push_message("/resume", user_id=ADMIN)
        await tg.wait_for(lambda: tg.videos(BOB), timeout=10)
        expected = status_texts.over_limit_failure("steps", 50)
        await tg.wait_for(lambda: expected in tg.texts_to(ALICE))
        job = (await app.jobs.user_jobs(ALICE, limit=1))[0]
    assert expected.startswith("😔 Запрос не запущен") and "--steps" in expected
    assert "теперь не больше 50" in expected
    assert job.status == "failed" and job.error == "over_limit:steps:50"
    assert job.started_at is None  # never rendered: not charged, not a turn
    assert [options.prompt for options in backend.runs] == ["пёс"]  # nothing rendered for it


async def test_the_repeat_button_after_lowered_limits_queues_nothing(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """The issue's reproduction: a video made with steps 200, 33 frames, 256×256; the operator
    lowers MAX_STEPS, MAX_FRAMES and MAX_PIXELS and restarts; its «🔁» button queued it again."""
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("кот --steps 200 --frames 33 --size 256x256", user_id=ALICE)
        video = (await tg.wait_for(lambda: tg.videos(ALICE)))[0]
    video_message_id = video.result["message_id"]
    async with running_bot(
        tg, tmp_path, backend, max_steps=50, max_frames=17, max_pixels=128 * 128
    ) as app:
        tg.push_message("кот --steps 200", user_id=ALICE)  # a fresh request is refused
        await tg.wait_for(lambda: "--steps" in tg.texts_to(ALICE)[-1])
        (old,) = await app.jobs.user_jobs(ALICE, limit=10)
        press = tg.push_callback(
            RepeatCb(job_id=old.id).pack(), user_id=ALICE, message_id=video_message_id
        )
        answer = await harness.answered(tg, press)
        await asyncio.sleep(0.5)
        jobs = await app.jobs.user_jobs(ALICE, limit=10)
    assert "--steps" in answer and "от 1 до 50" in answer
    assert [job.id for job in jobs] == [old.id]  # nothing queued
    assert len(backend.runs) == 1
