"""Outgoing pace: each chat gets its share of Telegram's limits, so one chat's backlog never
delays another's.

Telegram lets a bot send about one message a second to one chat (20 a minute to a group) and
about 30 a second in all; beyond that it answers 429 and the waiting starts for everyone. This
request middleware (aiogram's ``BaseRequestMiddleware``, on the session) keeps under those
limits before a 429 comes back:

- new messages (``sendMessage``, ``sendVideo``, ``sendPhoto``…) wait for their *own chat's*
  bucket, then for a share of the bot-wide bucket: a chat with a backlog queues behind itself only;
- edits, deletions, chat actions and callback answers skip the per-chat bucket and draw on their
  own bot-wide bucket, smaller than the whole, so status edits can never crowd out first replies;
- ``getUpdates`` and the other calls that send nothing to a chat are not paced.

Buckets are ``aiolimiter.AsyncLimiter`` leaky buckets; idle chats' buckets are forgotten.
"""

from __future__ import annotations

from collections import OrderedDict

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageCaption,
    EditMessageMedia,
    EditMessageReplyMarkup,
    EditMessageText,
    SendAnimation,
    SendChatAction,
    SendDocument,
    SendMessage,
    SendPhoto,
    SendVideo,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType
from aiolimiter import AsyncLimiter

BOT_PER_SECOND = 25
"""All new messages of the bot, a second (Telegram: about 30)."""
UPDATES_PER_SECOND = 20
"""Edits, deletions, chat actions and callback answers, a second (within the same 30)."""
PRIVATE_PER_MINUTE = 60
GROUP_PER_MINUTE = 20
MAX_CHATS = 10_000

SENDS = (SendMessage, SendVideo, SendPhoto, SendAnimation, SendDocument)
UPDATES = (
    EditMessageText,
    EditMessageCaption,
    EditMessageMedia,
    EditMessageReplyMarkup,
    DeleteMessage,
    SendChatAction,
    AnswerCallbackQuery,
)


class PacingMiddleware(BaseRequestMiddleware):
    def __init__(
        self,
        bot_per_second: float = BOT_PER_SECOND,
        updates_per_second: float = UPDATES_PER_SECOND,
        private_per_minute: float = PRIVATE_PER_MINUTE,
        group_per_minute: float = GROUP_PER_MINUTE,
    ) -> None:
        self.sends = AsyncLimiter(bot_per_second, 1)
        self.updates = AsyncLimiter(updates_per_second, 1)
        self.private_per_minute = private_per_minute
        self.group_per_minute = group_per_minute
        self._chats: OrderedDict[int | str, AsyncLimiter] = OrderedDict()

    def _chat(self, chat_id: int | str) -> AsyncLimiter:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            group = isinstance(chat_id, str) or chat_id < 0
            per_minute = self.group_per_minute if group else self.private_per_minute
            # A burst of a few messages is fine (a status, then a reply); then the chat's pace.
            bucket = AsyncLimiter(max(1.0, per_minute / 20), 60 / 20)
            self._chats[chat_id] = bucket
            while len(self._chats) > MAX_CHATS:
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(chat_id)
        return bucket

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if isinstance(method, SENDS):
            async with self._chat(method.chat_id):
                pass
            async with self.sends:
                pass
        elif isinstance(method, UPDATES):
            async with self.updates:
                pass
        return await make_request(bot, method)
