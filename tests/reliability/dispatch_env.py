"""The real bot wiring (``bot.__main__.build_app``: middlewares, every router, limits) in this
process, talking HTTP to the fake Bot API, fed updates one by one with ``dp.feed_update``.

The generation loop is not started, so jobs a message creates stay ``queued`` and can be checked
in the jobs table. Runs on its own event loop so sync hypothesis tests can drive it too.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiogram.types import Update

from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram, bot_settings

BOT_USERNAME = "t2v_test_bot"


@dataclass
class DispatchEnv:
    loop: asyncio.AbstractEventLoop
    tg: FakeTelegram
    app: Any
    users: itertools.count[int] = field(default_factory=lambda: itertools.count(100_000))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def next_user(self) -> int:
        return next(self.users)

    # ------------------------------------------------------------ updates

    def message(self, text: str | None, user_id: int, **extra: Any) -> dict[str, Any]:
        """A message dict as Telegram sends it (entities for a leading /command)."""
        return self.tg.push_message(text, user_id=user_id, **extra)

    async def feed(self, update: dict[str, Any]) -> None:
        update = {"update_id": next(_update_ids), **update}
        parsed = Update.model_validate(update, context={"bot": self.app.bot})
        await self.app.dp.feed_update(self.app.bot, parsed)

    def feed_message(self, text: str | None, user_id: int, **extra: Any) -> dict[str, Any]:
        message = self.message(text, user_id, **extra)
        self.run(self.feed({"message": message}))
        return message

    # ------------------------------------------------------------ what happened

    def replies(self, chat_id: int) -> list[str]:
        return [m.text or m.caption or "" for m in self.tg.sent(chat_id)]

    def jobs_of(self, user_id: int) -> list[Any]:
        return self.run(self.app.jobs.user_jobs(user_id, limit=100))

    def callback_answers(self, since: int = 0) -> list[dict[str, Any]]:
        return [c.params for c in self.tg.calls[since:] if c.method == "answerCallbackQuery"]


_update_ids = itertools.count(10_000_000)


def open_env(data_dir: Path, **settings: Any) -> DispatchEnv:
    from bot.__main__ import build_app

    loop = asyncio.new_event_loop()
    tg = FakeTelegram(username=BOT_USERNAME)
    loop.run_until_complete(tg.start())
    values: dict[str, Any] = {"max_queue": 100_000, "admin_ids": [5000]}
    values.update(settings)
    app = loop.run_until_complete(build_app(bot_settings(tg, data_dir, **values), FakeBackend()))
    # The parts of startup a handler relies on (no polling, no generation loop).
    loop.run_until_complete(app.bot.me())
    return DispatchEnv(loop, tg, app)


def close_env(env: DispatchEnv) -> None:
    async def close() -> None:
        await env.app.context.status.close()
        await env.app.bot.session.close()
        await env.app.conn.close()
        await env.tg.stop()

    env.run(close())
    env.loop.close()


def forward_origin(user_id: int) -> dict[str, Any]:
    return {
        "type": "user",
        "date": int(time.time()) - 60,
        "sender_user": {"id": user_id, "is_bot": False, "first_name": "Админ"},
    }
