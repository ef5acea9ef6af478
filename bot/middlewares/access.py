"""Who may use the bot at all: bans (``/ban``) and the optional ``ALLOWED_USER_IDS`` allow-list.

An outer middleware registered after :class:`bot.middlewares.actor.ActorMiddleware`
(whose ``actor`` already says whether the user is an admin or banned: no extra query). Admins always
pass. Anyone else who is banned or not on the allow-list gets *one* short refusal per
``notice_interval`` (10 minutes) and every other update of theirs is dropped unanswered, so a
banned user who keeps writing cannot make the bot flood the chat (or hit Telegram's limits).
In groups only what the bot answers there (``/generate``, ``/gen``, an @mention of it) gets the
refusal; other commands and ordinary group chatter are ignored as always. A pressed
button always gets its ``answerCallbackQuery`` (a toast that stops the spinner, no message).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, TelegramObject

from bot.context import Actor, AppContext
from bot.middlewares.notices import NoticeLimiter
from bot.telegram.filters import addressed_in_group
from bot.texts import requests as request_texts

log = logging.getLogger(__name__)

NOTICE_INTERVAL = 600.0


class AccessMiddleware(BaseMiddleware):
    def __init__(
        self,
        notice_interval: float = NOTICE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock  # replaceable (tests move time); the limiter reads it
        self._notices = NoticeLimiter(notice_interval, lambda: self.clock())

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        actor: Actor | None = data.get("actor")
        if actor is None or actor.is_admin:
            return await handler(event, data)
        app: AppContext = data["app"]
        refusal = self._refusal(actor, app)
        if refusal is None:
            return await handler(event, data)
        await self._refuse(event, actor.user_id, refusal, data["bot"])
        return None

    @staticmethod
    def _refusal(actor: Actor, app: AppContext) -> str | None:
        if actor.banned:
            return request_texts.banned()
        if not app.settings.is_allowed(actor.user_id):
            return request_texts.not_allowed(actor.user_id)
        return None

    async def _refuse(self, event: TelegramObject, user_id: int, text: str, bot: Bot) -> None:
        try:
            if isinstance(event, CallbackQuery):
                await event.answer(text)
                return
            if not isinstance(event, Message):
                return
            if event.chat.type != "private" and not await addressed_in_group(event, bot):
                return
            if self._notices.due(user_id):
                await event.reply(text)
        except TelegramAPIError as error:
            log.info("refusal to user %s not sent: %s", user_id, error)
