"""Buttons under a video («🔁 Ещё вариант», «⚙️ Настройки») and in /history, through the real
middlewares and routers: rights are checked against the database, old buttons survive a restart,
and forged or malformed data change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import SendMessage

from bot.telegram.keyboards import RepeatCb, SettingsCb, result_keyboard
from bot.texts import queue as queue_texts
from bot.texts import settings as settings_texts
from tests.handlers.harness import FeatureEnv, open_feature_env

ADMIN, ALICE, BOB = 1, 10, 20


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[FeatureEnv]:
    env = await open_feature_env(tmp_path / "bot.sqlite3", admin_ids=[ADMIN])
    yield env
    await env.close()


def video_buttons(job_id: int) -> list[str]:
    """The callback data really put under a delivered video: repeat and settings (the share
    button is tested in tests/handlers/test_share.py)."""
    data = [b.callback_data for row in result_keyboard(job_id).inline_keyboard for b in row]
    return [d for d in data if not d.startswith("shl:")]


async def test_more_like_this_queues_same_options_with_a_new_seed(env: FeatureEnv) -> None:
    done = await env.add_job(ALICE, "кот на луне", status="delivered", seed=42, steps=30)
    await env.conn.execute("UPDATE jobs SET translate = 0 WHERE id = ?", (done.id,))
    repeat, _settings = video_buttons(done.id)
    session = await env.press(ALICE, repeat, message_id=4242)
    assert session.answers()[-1].text == queue_texts.repeat_queued(done.id)
    new = (await env.jobs.user_jobs(ALICE, limit=1))[0]
    assert new.id != done.id and new.status == "queued" and new.source == "repeat"
    assert new.options.seed != 42 and new.options.with_seed(42) == done.options
    assert new.translate is False  # the original's translation choice is kept
    assert new.request_message_id == 4242
    assert env.loop.woken >= 1
    status = session.of(SendMessage)[-1]
    assert status.reply_parameters.message_id == 4242


async def test_repeat_keeps_the_fast_flag(env: FeatureEnv) -> None:
    done = await env.add_job(ALICE, "кот", status="delivered", steps=4, quality="fast")
    repeat, _settings = video_buttons(done.id)
    await env.press(ALICE, repeat)
    new = (await env.jobs.user_jobs(ALICE, limit=1))[0]
    assert new.id != done.id and new.options.quality == "fast" and new.options.steps == 4


async def test_a_stalled_repeat_reply_does_not_hold_up_other_users(env: FeatureEnv) -> None:
    """The status reply of a repeat may wait out a flood limit (429): the admission lock must
    be free by then, so another user's request is queued and answered meanwhile."""
    done = await env.add_job(ALICE, "кот", status="delivered")
    repeat, _settings = video_buttons(done.id)
    reached, release = asyncio.Event(), asyncio.Event()
    real = env.session.make_request

    async def make_request(bot, method, timeout=None):
        if isinstance(method, SendMessage) and int(method.chat_id) == ALICE:
            reached.set()
            await release.wait()  # Alice's chat is rate limited
        return await real(bot, method, timeout)

    env.session.make_request = make_request  # type: ignore[method-assign]
    pressed = asyncio.create_task(env.press(ALICE, repeat))
    try:
        await asyncio.wait_for(reached.wait(), 5)
        assert not env.app.requests.admission.lock.locked()
        await asyncio.wait_for(env.send(BOB, "пёс на пляже"), 5)
        (bobs,) = await env.jobs.user_jobs(BOB, limit=10)
        assert bobs.status == "queued" and bobs.status_message_id is not None
        assert any(int(c.chat_id) == BOB for c in env.session.of(SendMessage))
        assert not pressed.done()
    finally:
        release.set()
        await asyncio.wait_for(pressed, 5)
    assert env.session.answers()[-1].text == queue_texts.repeat_queued(done.id)
    assert len(await env.jobs.user_jobs(ALICE, limit=10)) == 2


async def test_history_repeat_button(env: FeatureEnv) -> None:
    failed = await env.add_job(ALICE, "пёс", status="failed")
    call = (await env.send(ALICE, "/history")).of(SendMessage)[-1]
    data = call.reply_markup.inline_keyboard[0][0].callback_data
    assert data == RepeatCb(job_id=failed.id).pack()
    await env.press(ALICE, data)
    jobs = await env.jobs.user_jobs(ALICE, limit=10)
    assert len(jobs) == 2 and jobs[0].prompt == "пёс"


async def test_buttons_keep_working_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    first = await open_feature_env(path)
    done = await first.add_job(ALICE, "кот", status="delivered")
    await first.conn.close()
    second = await open_feature_env(path)
    try:
        repeat, settings = video_buttons(done.id)
        await second.press(ALICE, repeat)
        assert second.session.answers()[-1].text == queue_texts.repeat_queued(done.id)
        assert len(await second.jobs.user_jobs(ALICE, limit=10)) == 2
        await second.press(ALICE, settings)
        assert second.session.of(SendMessage)[-1].reply_markup is not None
    finally:
        await second.conn.close()


async def test_someone_elses_video_button_changes_nothing(env: FeatureEnv) -> None:
    theirs = await env.add_job(BOB, "секрет Боба", status="delivered")
    repeat, _ = video_buttons(theirs.id)
    session = await env.press(ALICE, repeat, chat_id=-100)  # e.g. under Bob's video in a group
    answer = session.answers()[-1]
    assert answer.text == queue_texts.button_foreign() and answer.show_alert
    assert await env.jobs.user_jobs(ALICE, limit=10) == []
    assert len(await env.jobs.user_jobs(BOB, limit=10)) == 1
    assert session.of(SendMessage) == []


@pytest.mark.parametrize(
    "data",
    [
        "rep:",
        "rep:abc",
        "rep:1:2",
        "rep:-1",
        "rep:99999999999999999999999",
        "zzz:1",
        "",
        "set:open:x",
    ],
)
async def test_malformed_callback_data_changes_nothing(env: FeatureEnv, data: str) -> None:
    await env.add_job(ALICE, "кот", status="delivered")
    session = await env.press(ALICE, data)
    assert len(session.answers()) == 1  # the spinner always stops
    assert session.answers()[0].text in (queue_texts.button_broken(), queue_texts.button_foreign())
    assert len(await env.jobs.user_jobs(ALICE, limit=10)) == 1
    assert await env.users.get_settings(ALICE) == {}
    assert session.of(SendMessage) == []


async def test_settings_button_under_a_video(env: FeatureEnv) -> None:
    _, settings = video_buttons(1)
    assert settings == SettingsCb(action="open").pack()
    session = await env.press(ALICE, settings)
    keyboard = session.of(SendMessage)[-1].reply_markup.inline_keyboard
    assert keyboard[0][0].text == "✅ 16:9"
    session = await env.press(ALICE, settings, chat_id=-100)
    assert session.answers()[-1].text == settings_texts.only_in_private()
