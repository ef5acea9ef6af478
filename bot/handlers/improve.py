"""The buttons under an improved prompt: «✅ Render this» / «✏️ As I wrote it».

Callback data carry a draft's random token and a choice, and come from the client, so they are
never trusted: :meth:`bot.services.drafts.PromptDrafts.choose` reads the draft and checks that it
is the presser's, still open and recent. A press that queues a job removes the buttons; a second
press, a forged or malformed token, someone else's draft or a stale one changes nothing and says
so in the ``answerCallbackQuery``.
"""

from __future__ import annotations

import logging
import re

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, Update

from bot.context import Actor, AppContext
from bot.telegram.keyboards import ImproveCb
from bot.texts import ALERT_LIMIT, shorten
from bot.texts import queue as queue_texts

log = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16}$")


async def on_improve_choice(
    callback: CallbackQuery,
    callback_data: ImproveCb,
    app: AppContext,
    actor: Actor,
    event_update: Update,
) -> None:
    if not TOKEN_RE.match(callback_data.token):  # forged: no draft has such a token
        await callback.answer(queue_texts.button_broken(), show_alert=True)
        return
    chosen = await app.drafts.choose(
        actor, callback_data.token, callback_data.choice, event_update.update_id
    )
    admitted = chosen.admitted
    if admitted is not None and admitted.replayed:
        return  # the same press, replayed after a crash: it was answered the first time
    await callback.answer(shorten(chosen.answer, ALERT_LIMIT) or None, show_alert=chosen.alert)
    if admitted is not None and admitted.job is not None and isinstance(callback.message, Message):
        try:
            await callback.message.edit_reply_markup(reply_markup=None)
        except TelegramAPIError as error:
            log.info("buttons of an improved prompt not removed: %s", error)


def router() -> Router:
    r = Router(name="improve")
    r.callback_query.register(on_improve_choice, ImproveCb.filter())
    return r
