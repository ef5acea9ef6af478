"""Limits, bans, the allow-list, pause and groups, through the bot's real middlewares and routers.

Each limit must trigger at exactly its number and say which limit it is and when it frees.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage

from bot.telegram.keyboards import RepeatCb
from bot.texts import queue as queue_texts
from bot.texts import requests as request_texts
from tests.handlers.harness import FeatureEnv, open_feature_env

ADMIN, ALICE, BOB = 1, 10, 20
DAY = 86400.0


async def make_env(tmp_path: Path, **settings) -> FeatureEnv:
    settings.setdefault("admin_ids", [ADMIN])
    return await open_feature_env(tmp_path / "bot.sqlite3", **settings)


@pytest.fixture
async def envs(tmp_path: Path) -> AsyncIterator[list[FeatureEnv]]:
    opened: list[FeatureEnv] = []
    yield opened
    for env in opened:
        await env.close()


async def count_jobs(env: FeatureEnv, user_id: int) -> int:
    return len(await env.jobs.user_jobs(user_id, limit=1000))


def queued_replies(env: FeatureEnv) -> list[SendMessage]:
    return [c for c in env.session.of(SendMessage) if re.match(r"⏳ Запрос #\d+ принят", c.text)]


async def test_active_jobs_limit_at_exactly_its_number(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, max_active_jobs_per_user=2)
    envs.append(env)
    await env.send(ALICE, "кот первый")
    await env.send(ALICE, "кот второй")
    assert await count_jobs(env, ALICE) == 2 and len(queued_replies(env)) == 2
    env.session.clear()
    await env.send(ALICE, "кот третий")
    assert env.session.last_text() == request_texts.limit_active(2)
    assert "2" in env.session.last_text() and "завершится" in env.session.last_text()
    assert await count_jobs(env, ALICE) == 2
    # It frees when a job ends.
    first = (await env.jobs.user_jobs(ALICE, limit=10))[-1]
    await env.jobs.cancel(first.id)
    await env.send(ALICE, "кот третий")
    assert await count_jobs(env, ALICE) == 3


async def test_admins_are_exempt(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, max_active_jobs_per_user=1, daily_jobs_per_user=1)
    envs.append(env)
    for i in range(3):
        await env.send(ADMIN, f"кот {i}")
    assert await count_jobs(env, ADMIN) == 3


async def test_daily_limit_at_exactly_its_number_frees_at_utc_midnight(
    tmp_path: Path, envs: list
) -> None:
    env = await make_env(tmp_path, daily_jobs_per_user=3, max_active_jobs_per_user=10)
    envs.append(env)
    now = [100 * DAY + 20 * 3600.0]  # 20:00 UTC
    env.jobs.clock = lambda: now[0]
    for i in range(3):
        await env.send(ALICE, f"кот {i}")
    first_three = await env.jobs.user_jobs(ALICE, limit=10)
    assert len(first_three) == 3
    for job in first_three:  # finished jobs still count: the limit is on requests per day
        await env.jobs.cancel(job.id)
    env.session.clear()
    await env.send(ALICE, "кот четвёртый")
    refusal = env.session.last_text()
    assert refusal == request_texts.limit_daily(3, 4 * 3600.0)
    assert "3" in refusal and "00:00 UTC" in refusal and "4 ч" in refusal
    assert await count_jobs(env, ALICE) == 3
    now[0] = 101 * DAY + 1.0  # just after midnight UTC
    await env.send(ALICE, "кот четвёртый")
    assert await count_jobs(env, ALICE) == 4


async def test_queue_limit_at_exactly_its_number(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, max_queue=2)
    envs.append(env)
    await env.send(ALICE, "кот")
    await env.send(BOB, "пёс")
    env.session.clear()
    await env.send(30, "ёж")
    assert env.session.last_text() == request_texts.limit_queue(2)
    assert await count_jobs(env, 30) == 0


async def test_prompt_length_limit_at_exactly_its_number(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, max_prompt_chars=20)
    envs.append(env)
    await env.send(ALICE, "к" * 20)
    assert await count_jobs(env, ALICE) == 1
    env.session.clear()
    await env.send(ALICE, "к" * 21)
    assert await count_jobs(env, ALICE) == 1
    assert "20" in env.session.last_text()


async def test_allow_list(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, allowed_user_ids=[ALICE])
    envs.append(env)
    await env.send(ALICE, "кот")
    await env.send(ADMIN, "кот")  # admins need not be listed
    await env.send(BOB, "пёс")
    assert await count_jobs(env, ALICE) == 1 and await count_jobs(env, ADMIN) == 1
    assert await count_jobs(env, BOB) == 0
    assert env.session.last_text() == request_texts.not_allowed(BOB)


async def test_banned_user_gets_one_short_refusal_not_a_flood(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path)
    envs.append(env)
    old = await env.add_job(BOB, status="delivered")
    await env.send(ADMIN, f"/ban {BOB}")
    env.session.clear()
    for text in ("кот", "/generate кот", "/queue", "/history", "/start"):
        await env.send(BOB, text)
    assert env.session.texts() == [request_texts.banned()]  # one refusal for five messages
    assert await count_jobs(env, BOB) == 1  # only the old job
    await env.press(BOB, RepeatCb(job_id=old.id).pack())
    assert (
        env.session.answers()[-1].text == request_texts.banned()
    )  # the button spinner stops, nothing queued
    assert await count_jobs(env, BOB) == 1
    await env.send(ADMIN, f"/unban {BOB}")
    await env.send(BOB, "кот")
    assert await count_jobs(env, BOB) == 2


async def test_repeat_button_counts_against_limits(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, max_active_jobs_per_user=1)
    envs.append(env)
    done = await env.add_job(ALICE, "кот", status="delivered", seed=5)
    await env.press(ALICE, RepeatCb(job_id=done.id).pack(), message_id=777)
    assert env.session.answers()[-1].text == queue_texts.repeat_queued(done.id)
    jobs = await env.jobs.user_jobs(ALICE, limit=10)
    new = jobs[0]
    assert new.source == "repeat" and new.prompt == "кот" and new.options.seed != 5
    assert new.options.with_seed(5) == done.options  # same options, new seed
    reply = queued_replies(env)[-1]
    assert reply.reply_parameters.message_id == 777  # answers the message whose button was pressed
    await env.press(ALICE, RepeatCb(job_id=done.id).pack())
    answer = env.session.of(AnswerCallbackQuery)[-1]
    assert answer.text == request_texts.limit_active(1) and answer.show_alert
    assert await count_jobs(env, ALICE) == 2


async def test_forged_repeat_for_someone_elses_job_is_refused(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path)
    envs.append(env)
    theirs = await env.add_job(BOB, "секрет Боба", status="delivered")
    for user in (ALICE, ADMIN):  # not even an admin's button press acts on another's job
        await env.press(user, RepeatCb(job_id=theirs.id).pack())
        assert env.session.answers()[-1].text == queue_texts.button_foreign()
    await env.press(ALICE, RepeatCb(job_id=987654).pack())
    assert (
        env.session.answers()[-1].text == queue_texts.button_foreign()
    )  # same words: nothing leaks
    await env.press(ALICE, "rep:1:2:3")
    assert env.session.answers()[-1].text == queue_texts.button_broken()
    assert await count_jobs(env, ALICE) == 0 and await count_jobs(env, ADMIN) == 0
    assert await count_jobs(env, BOB) == 1
    assert all("секрет" not in (a.text or "") for a in env.session.answers())
    assert queued_replies(env) == []


async def test_paused_bot_accepts_requests_and_says_so(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path)
    envs.append(env)
    await env.send(ADMIN, "/pause")
    await env.send(ALICE, "кот")
    assert await count_jobs(env, ALICE) == 1
    assert request_texts.paused_note() in queued_replies(env)[-1].text
    await env.send(ADMIN, "/resume")
    env.session.clear()
    await env.send(ALICE, "пёс")
    assert request_texts.paused_note() not in queued_replies(env)[-1].text


async def test_groups_answer_only_generate_and_mentions_as_a_reply(
    tmp_path: Path, envs: list
) -> None:
    env = await make_env(tmp_path)
    envs.append(env)
    group = -100500
    for text in ("кот на луне", "/queue", "/history", "/settings", "/stats", "/cancel 1"):
        await env.send(ALICE, text, chat_id=group)
    assert env.session.of(SendMessage) == []
    assert await count_jobs(env, ALICE) == 0
    update = await env.send(ALICE, "/generate кот на луне", chat_id=group)
    reply = update.of(SendMessage)[-1]
    assert reply.chat_id == group and reply.reply_parameters is not None
    assert await count_jobs(env, ALICE) == 1
    await env.send(ALICE, "@someone_else кот", chat_id=group)
    assert await count_jobs(env, ALICE) == 1
    update = await env.send(ALICE, "@Video_Bot собака на пляже", chat_id=group)  # a mention
    assert update.of(SendMessage)[-1].reply_parameters is not None
    jobs = await env.jobs.user_jobs(ALICE, limit=10)
    assert len(jobs) == 2 and jobs[0].prompt == "собака на пляже"


async def test_ban_refusal_repeats_only_after_the_notice_interval(
    tmp_path: Path, envs: list
) -> None:
    from bot.middlewares.access import NOTICE_INTERVAL, AccessMiddleware

    env = await make_env(tmp_path)
    envs.append(env)
    access = next(m for m in env.dp.message.outer_middleware if isinstance(m, AccessMiddleware))
    now = [1000.0]
    access.clock = lambda: now[0]
    await env.users.ban(BOB)
    await env.send(BOB, "кот")
    now[0] += NOTICE_INTERVAL - 1
    await env.send(BOB, "кот")
    assert env.session.texts() == [request_texts.banned()]
    now[0] += 2
    await env.send(BOB, "кот")
    assert env.session.texts() == [request_texts.banned(), request_texts.banned()]
    assert await count_jobs(env, BOB) == 0


async def test_banned_user_in_a_group(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path)
    envs.append(env)
    await env.users.ban(BOB)
    await env.send(BOB, "просто болтаю", chat_id=-100)
    assert env.session.calls == []  # ordinary group chatter is never answered
    await env.send(BOB, "/generate кот", chat_id=-100)
    await env.send(BOB, "/generate пёс", chat_id=-100)
    assert env.session.texts() == [request_texts.banned()]
    assert await count_jobs(env, BOB) == 0


async def test_a_full_video_store_refuses_everyone_with_a_message(tmp_path: Path) -> None:
    env = await open_feature_env(tmp_path / "bot.sqlite3", admin_ids=[1])
    checked: list[bool] = []

    async def full() -> bool:
        checked.append(True)
        return False

    env.app.requests.admission.room = full
    try:
        for user in (10, 1):  # admins too: there is no room for their video either
            reply = (await env.send(user, "кот на луне")).last_text()
            assert reply == request_texts.disk_full()
            assert await env.jobs.user_jobs(user, limit=5) == []
    finally:
        await env.close()
    assert len(checked) == 2
