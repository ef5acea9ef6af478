"""End to end: the real bot (``bot.__main__.build_app``, long polling, the generation loop) against
the fake Bot API server on 127.0.0.1, with the fast fake backend. What a user would notice:
cancel really stops a render, nobody can act on someone else's job, limits hit at exactly their
numbers, settings survive a restart, the operator's commands work and leak nothing.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot.telegram.keyboards import RepeatCb, SettingsCb
from bot.texts import admin as admin_texts
from bot.texts import queue as queue_texts
from bot.texts import requests as request_texts
from bot.texts import settings as settings_texts
from tests.e2e import harness
from tests.e2e.harness import answered, new_texts, reply_to
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

ADMIN, ALICE, BOB = 5000, 1001, 1002


def running_bot(tg: FakeTelegram, tmp_path: Path, backend: FakeBackend, **overrides: Any) -> Any:
    """The real program with an admin and the status cadences users see."""
    values: dict[str, Any] = {
        "admin_ids": [ADMIN],
        "status_min_interval": 0.3,
        "queue_refresh_interval": 0.5,
        "translator_model": "none",
    }
    values.update(overrides)
    return harness.running_bot(tg, tmp_path, backend, **values)


async def test_cancel_of_a_running_job_stops_it_and_the_next_job_starts(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend(step_delay=0.05)
    async with running_bot(tg, tmp_path, backend) as app:
        long = tg.push_message("кот играет на пианино --steps 150", user_id=ALICE)  # ~7.5 s
        await tg.wait_for(lambda: backend.started.is_set())
        tg.push_message("собака бежит по пляжу", user_id=BOB)
        await tg.wait_for(lambda: len(tg.texts_to(BOB)) == 1)
        before = len(tg.texts_to(ALICE))
        cancel_at = time.monotonic()
        tg.push_message("/cancel", user_id=ALICE)
        await tg.wait_for(lambda: len(backend.runs) == 2, timeout=5)
        switch = time.monotonic() - cancel_at
        video = (await tg.wait_for(lambda: tg.videos(BOB), timeout=15))[0]
        assert video.params["reply_parameters"]["message_id"] >= 1
        assert backend.cancelled == 1
        assert switch < 2.0  # stopped within a denoising step, the GPU moved on at once
        await asyncio.sleep(0.5)
        assert tg.videos(ALICE) == []  # no video for the cancelled job, ever
        job = (await app.jobs.user_jobs(ALICE, limit=1))[0]
        assert job.status == "cancelled"
        said = await new_texts(tg, ALICE, before)
        assert queue_texts.cancelled_running(job.id) in said
        # The status message of the cancelled request no longer shows progress.
        status = next(m for m in tg.sent(ALICE) if m.reply_to == long["message_id"])
        await tg.wait_for(lambda: "отмен" in (status.text or ""))


async def test_cancel_of_a_queued_job(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend(gate=threading.Event())
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("первый", user_id=ALICE)
        await tg.wait_for(lambda: backend.started.is_set())
        tg.push_message("второй", user_id=ALICE)
        await tg.wait_for(lambda: len(tg.texts_to(ALICE)) == 2)
        second = (await app.jobs.user_jobs(ALICE, limit=1))[0]
        tg.push_message(f"/cancel {second.id}", user_id=ALICE)
        await tg.wait_for(lambda: queue_texts.cancelled_queued(second.id) in tg.texts_to(ALICE))
        backend.gate.set()
        await tg.wait_for(lambda: tg.videos(ALICE))
        await asyncio.sleep(0.5)
        assert len(tg.videos(ALICE)) == 1 and len(backend.runs) == 1


async def test_non_admin_commands_change_nothing_and_leak_nothing(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend(gate=threading.Event())
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("секретный запрос Боба", user_id=BOB)
        await tg.wait_for(lambda: backend.started.is_set())
        bobs = (await app.jobs.user_jobs(BOB, limit=1))[0]
        for text in ("/stats", f"/ban {BOB}", f"/cancel {bobs.id}", "/pause", "/queue"):
            tg.push_message(text, user_id=ALICE)
        await tg.wait_for(lambda: len(tg.texts_to(ALICE)) == 5)
        said = tg.texts_to(ALICE)  # updates are handled concurrently: compare as a multiset
        assert sorted(said) == sorted(
            [admin_texts.not_admin()] * 3
            + [queue_texts.cancel_not_found(bobs.id), queue_texts.queue_empty()]
        )
        assert all("секрет" not in s and str(BOB) not in s for s in said)
        assert tg.calls_of("sendPhoto") == []
        assert not await app.users.is_banned(BOB)
        assert (await app.jobs.get(bobs.id)).status == "running"
        assert not await app.context.pause.is_paused()
        backend.gate.set()
        await tg.wait_for(lambda: tg.videos(BOB))  # Bob's job went on as if nothing happened


async def test_forged_callback_for_someone_elses_job_is_refused(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("кот на луне", user_id=ALICE)
        video = (await tg.wait_for(lambda: tg.videos(ALICE)))[0]
        job = (await app.jobs.user_jobs(ALICE, limit=1))[0]
        await tg.wait_for(lambda: tg.calls_of("sendVideo", ALICE)[0].result)
        video_message_id = video.result["message_id"]
        forged = RepeatCb(job_id=job.id).pack()
        callback = tg.push_callback(forged, user_id=BOB, chat_id=BOB, message_id=video_message_id)
        assert await answered(tg, callback) == queue_texts.button_foreign()
        callback = tg.push_callback("rep:1;DROP TABLE jobs", user_id=BOB, message_id=1)
        assert await answered(tg, callback) == queue_texts.button_broken()
        await asyncio.sleep(0.3)
        assert await app.jobs.user_jobs(BOB, limit=10) == []
        assert len(await app.jobs.user_jobs(ALICE, limit=10)) == 1 and len(backend.runs) == 1
        # The owner's own button under the video works: same options, a new seed.
        callback = tg.push_callback(forged, user_id=ALICE, message_id=video_message_id)
        assert await answered(tg, callback) == queue_texts.repeat_queued(job.id)
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2)
        assert backend.runs[1].with_seed(backend.runs[0].seed) == backend.runs[0]
        assert backend.runs[1].seed != backend.runs[0].seed
        assert tg.videos(ALICE)[1].params["reply_parameters"]["message_id"] == video_message_id


async def outcome(tg: FakeTelegram, app: Any, user_id: int, request: dict) -> str:
    """``queued`` if the request became a job, else the bot's refusal."""
    reply = await reply_to(tg, user_id, request)
    jobs = await app.jobs.user_jobs(user_id, limit=100)
    if any(job.request_message_id == request["message_id"] for job in jobs):
        return "queued"
    return reply


async def test_limits_trigger_at_exactly_their_numbers(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend(gate=threading.Event())
    async with running_bot(
        tg, tmp_path, backend, max_active_jobs_per_user=2, daily_jobs_per_user=3
    ) as app:
        results = []
        for i in range(3):
            request = tg.push_message(f"кот номер {i}", user_id=ALICE)
            results.append(await outcome(tg, app, ALICE, request))
        assert results == ["queued", "queued", request_texts.limit_active(2)]
        backend.gate.set()  # both finish: the active limit frees, the daily one does not
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2)
        third = tg.push_message("кот номер 3", user_id=ALICE)
        assert await outcome(tg, app, ALICE, third) == "queued"
        refusal = await outcome(tg, app, ALICE, tg.push_message("кот номер 4", user_id=ALICE))
        assert refusal.startswith("Дневной лимит") and "3" in refusal and "00:00 UTC" in refusal
        assert len(await app.jobs.user_jobs(ALICE, limit=10)) == 3
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 3)


async def test_settings_persist_across_a_restart(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("/settings", user_id=ALICE)
        await tg.wait_for(lambda: tg.sent(ALICE))
        keyboard_message = tg.sent(ALICE)[-1]
        data = SettingsCb(action="set", name="length", value="short").pack()
        callback = tg.push_callback(data, user_id=ALICE, message_id=keyboard_message.message_id)
        assert await answered(tg, callback) == settings_texts.saved()
        data = SettingsCb(action="set", name="aspect", value="9x16").pack()
        callback = tg.push_callback(data, user_id=ALICE, message_id=keyboard_message.message_id)
        assert await answered(tg, callback) == settings_texts.saved()
    # A new process on the same database.
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("/settings", user_id=ALICE)
        await tg.wait_for(lambda: len([m for m in tg.sent(ALICE) if m.reply_markup]) == 2)
        markup = [m for m in tg.sent(ALICE) if m.reply_markup][-1].reply_markup
        rows = [[b["text"] for b in row] for row in markup["inline_keyboard"]]
        assert rows[0][1] == "✅ 9:16" and rows[1][0] == "✅ короткая"
        tg.push_message("кот", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE))
        options = backend.runs[-1]
        assert options.frames == 5 and options.height > options.width  # short, vertical
        # Explicit options still win over personal settings.
        tg.push_message("/gen кот --frames 9 --size 64x64", user_id=ALICE)
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2)
        assert (backend.runs[-1].frames, backend.runs[-1].width) == (9, 64)


async def test_a_paused_bot_stays_paused_after_a_restart(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("/pause", user_id=ADMIN)
        await tg.wait_for(lambda: admin_texts.pause_done() in tg.texts_to(ADMIN))
    async with running_bot(tg, tmp_path, backend):
        request = tg.push_message("кот", user_id=ALICE)
        assert request_texts.paused_note() in await reply_to(tg, ALICE, request)
        tg.push_message("/stats", user_id=ADMIN)
        await tg.wait_for(lambda: "пауза" in tg.texts_to(ADMIN)[-1])
        await asyncio.sleep(1.5)
        assert backend.runs == []  # still paused: the queued job waits
        tg.push_message("/resume", user_id=ADMIN)
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=10)
    assert len(backend.runs) == 1


async def test_admin_stats_ban_pause(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("кот", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE))
        tg.push_message("/stats", user_id=ADMIN)
        photo = (await tg.wait_for(lambda: tg.calls_of("sendPhoto", ADMIN, ok=True)))[0]
        upload = photo.file("photo")
        assert upload is not None and upload.data.startswith(b"\x89PNG")
        stats = tg.texts_to(ADMIN)[-1]
        assert "готово 1" in stats and "CPU (fake backend)" in stats and "Аптайм" in stats
        assert re.search(r"среднее \d+ с", stats)

        tg.push_message("/pause", user_id=ADMIN)
        await tg.wait_for(lambda: admin_texts.pause_done() in tg.texts_to(ADMIN))
        request = tg.push_message("пёс", user_id=BOB)
        assert request_texts.paused_note() in await reply_to(tg, BOB, request)
        await asyncio.sleep(1.5)
        assert len(backend.runs) == 1  # paused: the queued job waits
        tg.push_message("/resume", user_id=ADMIN)
        await tg.wait_for(lambda: tg.videos(BOB), timeout=10)

        tg.push_message("/pause", user_id=ADMIN)
        await tg.wait_for(lambda: tg.texts_to(ADMIN).count(admin_texts.pause_done()) == 2)
        assert await app.context.pause.is_paused()
        for i in range(2):
            tg.push_message(f"ёж {i}", user_id=BOB)
        await tg.wait_for(lambda: len(tg.texts_to(BOB)) >= 3)
        tg.push_message(f"/ban {BOB}", user_id=ADMIN)
        await tg.wait_for(lambda: admin_texts.ban_done(BOB, 2) in tg.texts_to(ADMIN))
        tg.push_message("/resume", user_id=ADMIN)
        before = len(tg.texts_to(BOB))
        for i in range(3):
            tg.push_message(f"ещё {i}", user_id=BOB)
        await tg.wait_for(lambda: len(tg.texts_to(BOB)) > before)
        await asyncio.sleep(0.5)
        assert tg.texts_to(BOB)[before:] == [
            request_texts.banned()
        ]  # one refusal for three messages
        assert len(backend.runs) == 2 and len(tg.videos(BOB)) == 1
