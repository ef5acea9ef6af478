"""A Bot whose HTTP session records every Bot API call instead of sending it, and update builders.

Handler tests feed updates through a real ``Dispatcher`` (``dp.feed_update``) and assert on the
calls the bot made: what a user would have seen in Telegram.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from aiogram import Bot, Dispatcher
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    GetMe,
    SendMessage,
    SendPhoto,
    SendVideo,
    TelegramMethod,
)
from aiogram.types import CallbackQuery, Chat, Message, MessageEntity, Update, User

from bot.backend import ModelInfo, configure
from bot.config import Settings
from bot.context import AppContext
from bot.notify.status import StatusHub
from bot.services.pause import PauseSwitch
from bot.storage import db
from bot.storage.jobs import Job, JobStore
from bot.storage.state import StateStore
from bot.storage.users import UserStore
from bot.wiring import build_context, setup_dispatcher
from tests.fakes.backend import FakeBackend, wan_like_backend

TOKEN = "123456:" + "A" * 35
BOT_USER = User(id=123456, is_bot=True, first_name="Видеобот", username="video_bot")
CHANNEL_BOT = 136817688
"""Telegram's service account for messages posted as a channel."""
ANONYMOUS_ADMIN_BOT = 1087968824
"""Telegram's service account for messages of anonymous group admins."""


class RecordingSession(BaseSession):
    """Answers every method like Telegram would, and keeps the calls in ``calls``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self._ids = itertools.count(1000)

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.calls.append(method)
        if isinstance(method, (SendMessage, SendPhoto, SendVideo)):
            chat_type = "private" if int(method.chat_id) > 0 else "group"
            return Message(
                message_id=next(self._ids),
                date=int(time.time()),
                chat=Chat(id=int(method.chat_id), type=chat_type),
                from_user=BOT_USER,
                text=getattr(method, "text", None),
                caption=getattr(method, "caption", None),
            )
        if isinstance(method, GetMe):
            return BOT_USER
        return True

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        yield b""

    async def close(self) -> None:
        pass

    # ------------------------------------------------------------ what the user saw

    def of(self, kind: type) -> list[Any]:
        return [call for call in self.calls if isinstance(call, kind)]

    def texts(self) -> list[str]:
        return [c.text for c in self.of(SendMessage)]

    def last_text(self) -> str:
        texts = self.texts()
        assert texts, f"the bot sent no message; calls: {[type(c).__name__ for c in self.calls]}"
        return texts[-1]

    def answers(self) -> list[AnswerCallbackQuery]:
        return self.of(AnswerCallbackQuery)

    def edits(self) -> list[EditMessageText]:
        return self.of(EditMessageText)

    def markup_edits(self) -> list[EditMessageReplyMarkup]:
        return self.of(EditMessageReplyMarkup)

    def clear(self) -> None:
        self.calls.clear()


def make_bot() -> tuple[Bot, RecordingSession]:
    session = RecordingSession()
    return Bot(TOKEN, session=session), session


_update_ids = itertools.count(1)
_message_ids = itertools.count(1)


def message_update(
    user_id: int,
    text: str,
    *,
    chat_id: int | None = None,
    username: str | None = None,
    sender_chat: Chat | None = None,
) -> Update:
    """A text message; ``@name`` words get ``mention`` entities as Telegram would give them.
    With ``sender_chat`` it is posted as that chat, from Telegram's service account as Telegram
    sends it (``Channel_Bot``, or ``GroupAnonymousBot`` when the chat is the group itself)."""
    chat_id = user_id if chat_id is None else chat_id
    chat = Chat(
        id=chat_id,
        type="private" if chat_id > 0 else "supergroup",
        title=None if chat_id > 0 else "Группа",
    )
    sender = User(id=user_id, is_bot=False, first_name=f"u{user_id}", username=username)
    if sender_chat is not None:
        anonymous_admin = sender_chat.id == chat_id
        sender = User(
            id=ANONYMOUS_ADMIN_BOT if anonymous_admin else CHANNEL_BOT,
            is_bot=True,
            first_name="Group" if anonymous_admin else "Channel",
            username="GroupAnonymousBot" if anonymous_admin else "Channel_Bot",
        )
    return Update(
        update_id=next(_update_ids),
        message=Message(
            message_id=next(_message_ids),
            date=int(time.time()),
            chat=chat,
            from_user=sender,
            sender_chat=sender_chat,
            text=text,
            entities=mention_entities(text),
        ),
    )


def mention_entities(text: str) -> list[MessageEntity] | None:
    entities = []
    for match in re.finditer(r"@\w+", text):
        offset = len(text[: match.start()].encode("utf-16-le")) // 2
        length = len(match.group(0).encode("utf-16-le")) // 2
        entities.append(MessageEntity(type="mention", offset=offset, length=length))
    return entities or None


def callback_update(
    user_id: int, data: str, *, chat_id: int | None = None, message_id: int = 500
) -> Update:
    chat_id = user_id if chat_id is None else chat_id
    chat = Chat(id=chat_id, type="private" if chat_id > 0 else "supergroup")
    return Update(
        update_id=next(_update_ids),
        callback_query=CallbackQuery(
            id=str(next(_update_ids)),
            from_user=User(id=user_id, is_bot=False, first_name=f"u{user_id}"),
            chat_instance="ci",
            data=data,
            message=Message(
                message_id=message_id,
                date=int(time.time()),
                chat=chat,
                from_user=BOT_USER,
                text="…",
            ),
        ),
    )


class StubLoop:
    """Stands in for the worker (``WorkerControl``): remembers which running jobs were told to
    stop and how often it was woken."""

    def __init__(self) -> None:
        self.cancelled: list[int] = []
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1

    def cancel(self, job_id: int) -> bool:
        self.cancelled.append(job_id)
        return True


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"bot_token": TOKEN, "admin_ids": [1], "flood_burst": 0}
    values.update(overrides)
    return Settings(_env_file=None, **values)


def options(prompt: str = "кот", seed: int = 7, **changes: Any) -> Any:
    from pipeline.options import GenerationOptions

    values: dict[str, Any] = dict(
        prompt=prompt,
        negative_prompt="",
        steps=50,
        seed=seed,
        frames=81,
        fps=16,
        width=832,
        height=480,
        guidance=5.0,
    )
    values.update(changes)
    return GenerationOptions(**values)


@dataclass
class FeatureEnv:
    """The bot's real Dispatcher, middlewares, routers and services over a real SQLite database,
    a recording bot and a worker stand-in: everything but polling and rendering."""

    dp: Dispatcher
    bot: Bot
    session: RecordingSession
    app: AppContext
    loop: StubLoop
    conn: aiosqlite.Connection
    fake: FakeBackend
    """The model stand-in behind ``app.model`` (its ``device`` shows in /stats)."""

    @property
    def jobs(self) -> JobStore:
        return self.app.jobs

    @property
    def users(self) -> UserStore:
        return self.app.users

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def backend(self) -> ModelInfo:
        return self.app.model

    @property
    def pause(self) -> PauseSwitch:
        return self.app.pause

    async def send(self, user_id: int, text: str, **kwargs: Any) -> RecordingSession:
        await self.dp.feed_update(self.bot, message_update(user_id, text, **kwargs))
        return self.session

    async def press(self, user_id: int, data: str, **kwargs: Any) -> RecordingSession:
        await self.dp.feed_update(self.bot, callback_update(user_id, data, **kwargs))
        return self.session

    async def add_job(
        self, user_id: int, prompt: str = "кот", status: str = "queued", **kw: Any
    ) -> Job:
        """A job row as the request service and the worker would leave it."""
        job = await self.jobs.create(user_id, user_id, 1, prompt, options(prompt, **kw))
        await self.jobs.set_status_message(job.id, 900 + job.id)
        if status != "queued":
            await self.conn.execute(
                "UPDATE jobs SET status = ?, started_at = ? WHERE id = ?",
                (status, self.jobs.clock(), job.id),
            )
        found = await self.jobs.get(job.id)
        assert found is not None
        return found

    async def close(self) -> None:
        await self.app.status.close()
        await self.conn.close()


async def open_feature_env(
    db_path: Path, *, backend: FakeBackend | None = None, **settings_overrides: Any
) -> FeatureEnv:
    """The wiring of ``bot/__main__.py`` (``bot.wiring``) with a wan-like model stand-in (or
    ``backend``, e.g. one with Wan 2.1 1.3B's MagCache ``tiers``)."""
    conn = await db.connect(db_path)
    await db.migrate(conn)
    jobs, users = JobStore(conn), UserStore(conn)
    settings = make_settings(**settings_overrides)
    bot, session = make_bot()
    loop = StubLoop()
    fake = backend or wan_like_backend()
    model = configure(fake, settings)
    status = StatusHub(bot, jobs, min_interval=0.0, queue_refresh_interval=0.0, tiers=model.tiers)
    app = build_context(
        settings=settings,
        jobs=jobs,
        users=users,
        model=model,
        status=status,
        pause=PauseSwitch(StateStore(conn)),
        worker=loop,
        improver=model.improver,
    )
    dp = setup_dispatcher(Dispatcher(app=app), settings)
    return FeatureEnv(dp, bot, session, app, loop, conn, fake)
