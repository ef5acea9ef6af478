"""Per-user admission of updates: one person's flood never slows anybody else.

A token bucket per user (``aiolimiter.AsyncLimiter``): ``FLOOD_BURST`` updates at once, then one
every ``1 / FLOOD_RATE`` seconds. Beyond that a user's updates are dropped here, before they
cost a database write or a reply (the update inbox still records them as handled, so nothing is
replayed), and the user gets at most one "too often" notice per ``notice_interval``. A pressed
button always gets its ``answerCallbackQuery`` so the spinner stops. Admins are never throttled.

It runs first among the middlewares: a flood costs one dictionary lookup per update.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiolimiter import AsyncLimiter

from bot.context import AppContext
from bot.i18n import locale_for_language_code, use_locale
from bot.middlewares.identity import Requester, requester_of
from bot.middlewares.notices import NoticeLimiter
from bot.texts import requests as request_texts

log = logging.getLogger(__name__)

NOTICE_INTERVAL = 60.0
MAX_TRACKED = 10_000
"""Buckets kept at most (least recently used ones are forgotten: a full bucket is the default)."""


class ThrottleMiddleware(BaseMiddleware):
    def __init__(
        self,
        burst: int,
        rate: float,
        notice_interval: float = NOTICE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.rate = rate
        self._buckets: OrderedDict[int, AsyncLimiter] = OrderedDict()
        self.clock = clock  # replaceable (tests move time); the limiter reads it
        self._notices = NoticeLimiter(notice_interval, lambda: self.clock())
        self.dropped = 0
        """Updates dropped so far (for logs and metrics)."""

    def _bucket(self, user_id: int) -> AsyncLimiter:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = AsyncLimiter(self.burst, self.burst / self.rate)
            self._buckets[user_id] = bucket
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(user_id)
        return bucket

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        requester = requester_of(event, data.get("event_from_user"))
        app: AppContext = data["app"]
        if self.burst <= 0 or requester is None or app.settings.is_admin(requester.id):
            return await handler(event, data)
        bucket = self._bucket(requester.id)
        if bucket.has_capacity():
            await bucket.acquire()  # a token is there: returns at once
            return await handler(event, data)
        self.dropped += 1
        await self._notify(event, requester)
        return None

    async def _notify(self, event: TelegramObject, user: Requester) -> None:
        with use_locale(locale_for_language_code(user.language_code)):
            text = request_texts.too_often()
        try:
            if isinstance(event, CallbackQuery):
                await event.answer(text)
                return
            if not self._notices.due(user.id):
                return
            if isinstance(event, Message) and event.chat.type == "private":
                await event.answer(text)
        except TelegramAPIError as error:
            log.info("flood notice to user %s not sent: %s", user.id, error)
