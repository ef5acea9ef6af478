"""The real bot, in-process, against the fake Bot API: start it, stop it like SIGTERM does, and
read what users saw."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from bot.__main__ import App, build_app
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import MODES, FakeTelegram, bot_settings, webhook_overrides

MODE = contextvars.ContextVar("bot_mode", default="polling")
"""The mode :func:`running_bot` uses unless told: set per test by the ``mode`` fixture
(tests/e2e/conftest.py); a module runs in both modes with ``pytest.mark.parametrize("mode",
MODES)``."""


def mode_overrides(mode: str | None = None) -> dict[str, str]:
    """The settings that make a bot receive in ``mode`` (default: the test's ``mode``)."""
    mode = mode or MODE.get()
    assert mode in MODES, mode
    return webhook_overrides() if mode == "webhook" else {}


def receiving(tg: FakeTelegram, mode: str | None = None) -> bool:
    """Whether a bot started in ``mode`` receives from ``tg`` yet (it polled, or set its webhook)."""
    if (mode or MODE.get()) == "webhook":
        return tg.webhook is not None
    return bool(tg.calls_of("getUpdates"))


@contextlib.asynccontextmanager
async def running_bot(
    tg: FakeTelegram,
    data_dir: Path,
    backend: Any = None,
    *,
    mode: str | None = None,
    **overrides: Any,
) -> AsyncIterator[App]:
    """``bot.__main__.build_app`` + ``App.run`` (what ``python -m bot`` runs) receiving from ``tg``
    until the block ends, then stopped the way SIGTERM stops it. ``mode``: ``polling`` or
    ``webhook`` (``WEBHOOK_URL`` on a free local port: the fake POSTs every update there)."""
    mode = mode or MODE.get()
    overrides = {**mode_overrides(mode), **overrides}
    settings = bot_settings(tg, data_dir, **overrides)
    app = await build_app(settings, backend if backend is not None else FakeBackend())
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await asyncio.wait_for(app.started.wait(), timeout=15)
        if mode == "webhook":  # the server listens and Telegram knows it (or startup failed)
            await tg.wait_for(lambda: tg.webhook is not None or task.done(), timeout=15)
            if task.done():
                await task
        yield app
    finally:
        await app.stop()
        await asyncio.wait_for(task, timeout=30)
    if mode == "webhook":  # every update came by the webhook
        assert not tg.calls_of("getUpdates"), "the bot polled in webhook mode"


def answers(tg: FakeTelegram, callback_id: str) -> list[dict]:
    return [
        c.params
        for c in tg.calls_of("answerCallbackQuery")
        if c.params["callback_query_id"] == callback_id
    ]


async def answered(tg: FakeTelegram, callback_id: str) -> str:
    """The text of the last answer to a button press."""
    found = await tg.wait_for(lambda: answers(tg, callback_id))
    return found[-1].get("text", "")


async def reply_to(tg: FakeTelegram, chat_id: int, request: dict) -> str:
    """The text of the bot's reply to the user's message ``request``."""

    def find() -> str | None:
        for message in tg.sent(chat_id):
            if message.reply_to == request["message_id"] and message.text:
                return message.text
        return None

    return await tg.wait_for(find)


async def new_texts(tg: FakeTelegram, chat_id: int, before: int) -> list[str]:
    await tg.wait_for(lambda: len(tg.texts_to(chat_id)) > before)
    return tg.texts_to(chat_id)[before:]


def query(data_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the bot's SQLite database in ``data_dir`` from outside, as an operator would."""
    conn = sqlite3.connect(data_dir / "bot.sqlite3", timeout=10)
    try:
        with conn:
            return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true (TimeoutError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


async def all_delivered(data_dir: Path, count: int) -> None:
    """Wait until the database holds exactly ``count`` jobs, every one delivered."""
    await until(
        lambda: [r[0] for r in query(data_dir, "SELECT status FROM jobs")] == ["delivered"] * count
    )
