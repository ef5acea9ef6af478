"""A job's last word always reaches its user (bot/notify/status.py, bot/notify/recovery.py).

The final edit of a status message the user deleted ("message to edit not found") or that is too
old ("message can't be edited") used to be dropped; now the text is sent as a new message that
replies to the request. And a restart notice stores the new status message before deleting the
old one, so a kill in between never leaves the job pointing at a deleted message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiogram import Bot

from bot.notify.recovery import renew_status
from bot.notify.status import StatusHub
from bot.storage import db
from bot.storage.jobs import Job, JobStore
from bot.telegram.session import RetryPolicy, make_session
from bot.texts import status as status_texts
from tests.fakes.telegram import Call, FakeTelegram
from tests.unit.test_jobs import make_options

USER = 1001
FAILED = "😔 Не получилось: тестовая ошибка."


@dataclass
class Env:
    tg: FakeTelegram
    jobs: JobStore
    hub: StatusHub
    bot: Bot


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with FakeTelegram() as tg:
        conn = await db.connect(tmp_path / "bot.sqlite3")
        await db.migrate(conn)
        bot = Bot(tg.token, session=make_session(tg.base_url, RetryPolicy(max_attempts=1)))
        jobs = JobStore(conn)
        try:
            yield Env(tg, jobs, StatusHub(bot, jobs, min_interval=0.0), bot)
        finally:
            await bot.session.close()
            await conn.close()


async def job_with_status(env: Env) -> tuple[Job, int]:
    """A job whose request and status message exist in the chat; returns (job, request id)."""
    request = env.tg.push_message("кот", user_id=USER)["message_id"]
    job = await env.jobs.create(USER, USER, request, "кот", make_options())
    status = await env.bot.send_message(chat_id=USER, text=status_texts.queued(job.id, 1, None))
    await env.jobs.set_status_message(job.id, status.message_id)
    return job, request


def new_messages(env: Env, since: int) -> list[Call]:
    return [c for c in env.tg.calls[since:] if c.method == "sendMessage" and c.ok]


async def test_final_text_is_sent_anew_when_the_user_deleted_the_status(env: Env) -> None:
    job, request = await job_with_status(env)
    status_id = (await env.jobs.get(job.id)).status_message_id  # type: ignore[union-attr]
    env.tg.messages[(USER, status_id)].deleted = True
    since = len(env.tg.calls)
    await env.hub.finish(job, FAILED)
    (sent,) = new_messages(env, since)
    assert sent.params["text"] == FAILED
    assert sent.params["reply_parameters"]["message_id"] == request
    assert sent.params["reply_parameters"]["allow_sending_without_reply"] in (True, "true")


async def test_final_text_is_sent_anew_when_the_status_cannot_be_edited(env: Env) -> None:
    job, _ = await job_with_status(env)
    env.tg.fail("editMessageText", status=400, description="Bad Request: message can't be edited")
    since = len(env.tg.calls)
    await env.hub.finish(job, FAILED)
    assert [c.params["text"] for c in new_messages(env, since)] == [FAILED]


async def test_final_text_edits_a_live_status_and_sends_nothing_more(env: Env) -> None:
    job, _ = await job_with_status(env)
    since = len(env.tg.calls)
    await env.hub.finish(job, FAILED)
    assert new_messages(env, since) == []
    assert FAILED in env.tg.texts_to(USER)


async def test_no_second_message_when_the_caller_answered_already(env: Env) -> None:
    """``/cancel`` answers its user itself: a gone status message is not worth another one."""
    job, _ = await job_with_status(env)
    status_id = (await env.jobs.get(job.id)).status_message_id  # type: ignore[union-attr]
    env.tg.messages[(USER, status_id)].deleted = True
    since = len(env.tg.calls)
    await env.hub.finish(job, status_texts.cancelled(), resend=False)
    assert new_messages(env, since) == []


async def test_a_refused_edit_for_other_reasons_sends_nothing(env: Env) -> None:
    """A user who blocked the bot (403) cannot receive a new message either."""
    job, _ = await job_with_status(env)
    env.tg.fail("editMessageText", status=403, description="Forbidden: bot was blocked by the user")
    since = len(env.tg.calls)
    await env.hub.finish(job, FAILED)
    assert new_messages(env, since) == []


async def test_resume_notice_is_stored_before_the_old_status_is_deleted(
    env: Env, tmp_path: Path
) -> None:
    job, _ = await job_with_status(env)
    old_id = (await env.jobs.get(job.id)).status_message_id  # type: ignore[union-attr]
    seen: list[tuple[int, int | None]] = []

    async def at_delete(call: Call) -> None:  # what a kill -9 at this instant would leave
        current = await env.jobs.get(job.id)
        seen.append(
            (int(call.params["message_id"]), current.status_message_id if current else None)
        )

    env.tg.hooks["deleteMessage"] = at_delete
    await renew_status(env.jobs, env.hub, job.id)
    new_id = (await env.jobs.get(job.id)).status_message_id  # type: ignore[union-attr]
    assert new_id is not None and new_id != old_id
    assert seen == [(old_id, new_id)]  # the new id was stored when the old message went
    assert env.tg.messages[(USER, old_id)].deleted
    assert status_texts.resumed() in (env.tg.messages[(USER, new_id)].text or "")
    # And the job's last word then lands on the live notice.
    since = len(env.tg.calls)
    await env.hub.finish(await env.jobs.get(job.id), FAILED)  # type: ignore[arg-type]
    assert new_messages(env, since) == []
    assert env.tg.messages[(USER, new_id)].text == FAILED
