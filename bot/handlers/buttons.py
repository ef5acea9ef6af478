"""Buttons under videos and in /history: "🔁 Another take" / "🔁 #id" (same options, new seed).

Callback data only name a job id, and come from the client, so they are never trusted: the job
is read from the database and must belong to the presser (admins included — a button never acts
on someone else's job). Buttons keep working after a restart because nothing lives in memory.
A forged or malformed button, or one for someone else's job, changes nothing and says so in the
``answerCallbackQuery`` (the spinner on the button stops either way).

A press is one callback update; the new job carries that update's id, so the same press
replayed after a crash (``bot/telegram/updates.py``) finds its job instead of queuing another.

This router is included last: its catch-all answers every callback no other handler took.
"""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import CallbackQuery, Update

from bot.context import Actor, AppContext
from bot.handlers.owned import owned_job
from bot.services.requests import Origin
from bot.telegram.keyboards import RepeatCb
from bot.texts import ALERT_LIMIT, shorten
from bot.texts import queue as queue_texts

log = logging.getLogger(__name__)


async def on_repeat(
    callback: CallbackQuery,
    callback_data: RepeatCb,
    app: AppContext,
    actor: Actor,
    event_update: Update,
) -> None:
    job = await owned_job(callback, callback_data.job_id, app, actor)
    if job is None:
        return
    message = callback.message
    chat_id = message.chat.id if message is not None else job.chat_id
    # The new video replies to the message whose button was pressed (the video or /history).
    reply_to = message.message_id if message is not None else job.request_message_id
    admitted = await app.requests.repeat(
        actor, job, Origin(chat_id, reply_to, event_update.update_id)
    )
    if admitted.replayed:
        return  # the same press, replayed after a crash: it was answered the first time
    if admitted.refusal is not None:
        await callback.answer(shorten(admitted.refusal, ALERT_LIMIT), show_alert=True)
        return
    await callback.answer(queue_texts.repeat_queued(job.number))


async def on_unknown_button(callback: CallbackQuery) -> None:
    """Malformed, forged or retired callback data: stop the spinner and say nothing changed."""
    log.info("unhandled callback data from %s: %r", callback.from_user.id, callback.data)
    await callback.answer(queue_texts.button_broken(), show_alert=True)


def router() -> Router:
    r = Router(name="buttons")
    r.callback_query.register(on_repeat, RepeatCb.filter())
    r.callback_query.register(on_unknown_button)
    return r
