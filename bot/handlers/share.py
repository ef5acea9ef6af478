"""Share links: «🔗 Share» under a video, ``/start <token>`` and «🎬 Make this video».

Why a button that answers with the link rather than a URL button: a ``t.me`` URL button would
only open the sharer's own chat with the bot, and its token would have to exist for every video
ever sent. Pressing «🔗 Share» makes the token when someone wants it and answers with the link
and a «📤 Send to a friend» button (Telegram's own share sheet, ``t.me/share/url``), from which it
goes to any chat in two taps; the link itself can be copied from the message.

The opener sees the prompt and options (texts in their own language) and renders them with one
tap, through :meth:`bot.services.requests.RequestService.remix`: their job, their limits, budgets
and bans, the content policy. Nothing about the sharer is shown. Callback data and ``start``
parameters come from the client and are never trusted: a token is looked up again at every step,
and a malformed, unknown or forged one answers with a clear message and queues nothing.

A link whose job's prompt was forgotten by the retention janitor (``DATA_RETENTION_DAYS``,
``bot/storage/janitor.py``) answers that it expired: the text is gone by design, and a link must
not keep a copy of what the retention rule deleted. A link of a since-banned user, and one whose
prompt the content policy now blocks, behave like a link that does not work.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from urllib.parse import urlencode

from aiogram import Bot, F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, Update
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.context import Actor, AppContext
from bot.handlers.buttons import MAX_SQLITE_INT
from bot.services.requests import Origin
from bot.storage.jobs import Job
from bot.storage.shares import is_token
from bot.telegram.keyboards import ShareCb, ShareRunCb
from bot.telegram.replies import reply_to
from bot.texts import ALERT_LIMIT, shorten
from bot.texts import policy as policy_texts
from bot.texts import queue as queue_texts
from bot.texts import share as share_texts

log = logging.getLogger(__name__)


async def link_url(bot: Bot, token: str) -> str | None:
    """``https://t.me/<bot>?start=<token>`` (getMe, cached by aiogram); None without a username."""
    me = await bot.me()
    return f"https://t.me/{me.username}?start={token}" if me.username else None


def link_keyboard(url: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    query = urlencode({"url": url, "text": share_texts.invitation()})
    builder.button(text=share_texts.button_send(), url=f"https://t.me/share/url?{query}")
    return builder.as_markup()


def render_keyboard(token: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=share_texts.button_render(), callback_data=ShareRunCb(token=token))
    return builder.as_markup()


async def on_share(
    callback: CallbackQuery, callback_data: ShareCb, app: AppContext, actor: Actor, bot: Bot
) -> None:
    """«🔗 Share»: the link of the presser's own job."""
    if not 0 < callback_data.job_id < MAX_SQLITE_INT:  # forged: no such row can exist
        await callback.answer(queue_texts.button_broken(), show_alert=True)
        return
    job = await app.jobs.get(callback_data.job_id)
    if job is None or job.user_id != actor.user_id:
        await callback.answer(queue_texts.button_foreign(), show_alert=True)
        return
    if not job.prompt.strip():
        await callback.answer(share_texts.cannot_share(), show_alert=True)
        return
    token = await app.shares.token_for(job.id)
    url = await link_url(bot, token)
    if url is None:
        await callback.answer(queue_texts.button_broken(), show_alert=True)
        return
    await callback.answer()
    log.info("job %s: share link shown to its owner", job.id)
    message = callback.message
    chat_id = message.chat.id if message is not None else job.chat_id
    await bot.send_message(
        chat_id,
        share_texts.link_message(url),
        reply_parameters=reply_to(message.message_id if message is not None else None),
        reply_markup=link_keyboard(url),
    )


async def shared_job(app: AppContext, token: str | None) -> tuple[Job | None, str | None]:
    """The job a token opens, or the text saying why it opens nothing (in the current locale)."""
    job_id = await app.shares.job_id(token or "") if is_token(token) else None
    job = await app.jobs.get(job_id) if job_id is not None else None
    if job is None:
        return None, share_texts.link_invalid()
    if not job.prompt.strip():
        return None, share_texts.link_expired()  # DATA_RETENTION_DAYS forgot it
    if await app.users.is_banned(job.user_id):
        return None, share_texts.link_invalid()
    if app.policy.words.check_all(job.prompt, app.requests.user_negative(job.options)).blocked:
        return None, policy_texts.refused()
    return job, None


async def on_start_link(
    message: Message, command: CommandObject, app: AppContext, actor: Actor
) -> None:
    """``/start <token>``: the shared request and its «🎬» button, or why there is none."""
    token = (command.args or "").strip()
    job, refusal = await shared_job(app, token)
    if job is None:
        log.info("user %s opened a share link that opens nothing", actor.user_id)
        await message.answer(refusal or share_texts.link_invalid())
        return
    shown = replace(job.options, negative_prompt=app.requests.user_negative(job.options))
    await message.answer(share_texts.shared_request(shown), reply_markup=render_keyboard(token))


async def on_share_run(
    callback: CallbackQuery,
    callback_data: ShareRunCb,
    app: AppContext,
    actor: Actor,
    event_update: Update,
) -> None:
    """«🎬 Make this video»: the shared request queued as the presser's own job."""
    job, refusal = await shared_job(app, callback_data.token)
    if job is None:
        await callback.answer(shorten(refusal or "", ALERT_LIMIT), show_alert=True)
        return
    message = callback.message
    chat_id = message.chat.id if message is not None else actor.user_id
    reply = message.message_id if message is not None else None
    admitted = await app.requests.remix(actor, job, Origin(chat_id, reply, event_update.update_id))
    if admitted.replayed:
        return
    if admitted.refusal is not None or admitted.job is None:
        await callback.answer(shorten(admitted.refusal or "", ALERT_LIMIT), show_alert=True)
        return
    await callback.answer(share_texts.queued(admitted.job.number))


def router() -> Router:
    r = Router(name="share")
    r.message.register(on_start_link, F.chat.type == "private", CommandStart(deep_link=True))
    r.callback_query.register(on_share, ShareCb.filter())
    r.callback_query.register(on_share_run, ShareRunCb.filter())
    return r
