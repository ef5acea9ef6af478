"""Buttons under videos and in /history: «🔁 Ещё вариант» / «🔁 #id» (same options, new seed).

Callback data only name a job id, and come from the client, so they are never trusted: the job
is read from the database and must belong to the presser (admins included — a button never acts
on someone else's job). Buttons keep working after a restart because nothing lives in memory.
A forged or malformed button, or one for someone else's job, changes nothing and says so in the
``answerCallbackQuery`` (the spinner on the button stops either way).

A press is one callback update; the new job carries that update's id, so the same press
replayed after a crash (``bot/polling.py``) finds its job instead of queuing another.

This router is included last: its catch-all answers every callback no other handler took.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, Update

from bot import texts_user as t
from bot.handlers.generate import announce_job, create_job, replayed_job
from bot.jobs import JobSource, JobStore
from bot.keyboards import RepeatCb
from bot.limits import admission_lock, check_new_job
from pipeline.options import random_seed

log = logging.getLogger(__name__)

router = Router(name="buttons")

MAX_SQLITE_INT = 2**63


@router.callback_query(RepeatCb.filter())
async def on_repeat(
    callback: CallbackQuery,
    callback_data: RepeatCb,
    bot: Bot,
    jobs: JobStore,
    users: Any,
    settings: Any,
    loop: Any = None,
    pause: Any = None,
    is_admin: bool | None = None,
    event_update: Update | None = None,
) -> None:
    update_id = event_update.update_id if event_update is not None else None
    if await replayed_job(jobs, update_id, bot=bot, loop=loop, pause=pause) is not None:
        return  # the same press, replayed after a crash: its job exists (and is announced now)
    if not 0 < callback_data.job_id < MAX_SQLITE_INT:  # forged: no such row can exist
        await callback.answer(t.BUTTON_BROKEN, show_alert=True)
        return
    job = await jobs.get(callback_data.job_id)
    if job is None or job.user_id != callback.from_user.id:
        # The same answer for a job that does not exist and for someone else's: nothing leaks.
        await callback.answer(t.BUTTON_FOREIGN, show_alert=True)
        return
    message = callback.message
    chat_id = message.chat.id if message is not None else job.chat_id
    # The new video replies to the message whose button was pressed (the video or /history).
    reply_to = message.message_id if message is not None else job.request_message_id
    # Only the check and the insert hold the lock: the reply may wait out a flood limit (429),
    # and other users' requests must not wait with it.
    new_job = None
    async with admission_lock(jobs):
        refusal = await check_new_job(
            job.user_id, jobs=jobs, settings=settings, users=users, is_admin=is_admin
        )
        if refusal is None:
            new_job = await create_job(
                jobs=jobs,
                user_id=job.user_id,
                chat_id=chat_id,
                request_message_id=reply_to,
                prompt=job.prompt,
                options=job.options.with_seed(random_seed()),
                translate=job.translate,
                source=JobSource.REPEAT,
                loop=loop,
                update_id=update_id,
            )
    if new_job is None:
        await callback.answer(refusal, show_alert=True)
        return
    await announce_job(new_job, bot=bot, jobs=jobs, loop=loop, pause=pause)
    await callback.answer(t.repeat_queued(job.id))


@router.callback_query()
async def on_unknown_button(callback: CallbackQuery) -> None:
    """Malformed, forged or retired callback data: stop the spinner and say nothing changed."""
    log.info("unhandled callback data from %s: %r", callback.from_user.id, callback.data)
    await callback.answer(t.BUTTON_BROKEN, show_alert=True)
