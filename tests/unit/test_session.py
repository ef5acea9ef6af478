"""bot/session.py against the fake Bot API: which failures are retried, how long, and which not."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import FSInputFile

from bot.telegram.session import RetryPolicy, make_session, upload_timeout
from tests.fakes.telegram import FakeTelegram

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_retry_after=5)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = Bot(tg.token, session=make_session(tg.base_url, FAST))
    yield bot
    await bot.session.close()


async def test_429_waits_retry_after_then_succeeds(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("sendMessage", status=429, retry_after=1)
    start = time.monotonic()
    message = await bot.send_message(chat_id=5, text="привет")
    assert time.monotonic() - start >= 1.0
    assert message.text == "привет"
    assert [c.status for c in tg.calls_of("sendMessage")] == [429, 200]


async def test_5xx_and_dropped_connections_are_retried(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("sendMessage", status=500, times=2)
    tg.fail("sendMessage", drop=True)
    await bot.send_message(chat_id=5, text="x")
    assert [c.status for c in tg.calls_of("sendMessage")] == [500, 500, 0, 200]


async def test_retries_are_bounded(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("sendMessage", status=502, times=None)
    with pytest.raises(TelegramServerError):
        await bot.send_message(chat_id=5, text="x")
    assert len(tg.calls_of("sendMessage")) == FAST.max_attempts


async def test_client_errors_are_not_retried(tg: FakeTelegram, bot: Bot) -> None:
    tg.block(7)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(chat_id=7, text="x")
    tg.fail("editMessageText", status=400, description="Bad Request: message is not modified")
    with pytest.raises(TelegramBadRequest):
        await bot.edit_message_text(text="x", chat_id=5, message_id=1)
    assert len(tg.calls_of("sendMessage")) == 1 and len(tg.calls_of("editMessageText")) == 1


async def test_a_too_long_flood_wait_is_raised(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("sendMessage", status=429, retry_after=3600)
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(chat_id=5, text="x")


async def test_get_updates_is_left_to_the_dispatcher(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("getUpdates", status=500)
    with pytest.raises(TelegramServerError):
        await bot.get_updates(timeout=0)
    assert len(tg.calls_of("getUpdates")) == 1


async def test_unreachable_server_gives_up(tmp_path: Path) -> None:
    async with FakeTelegram() as server:
        url, token = server.base_url, server.token
    bot = Bot(token, session=make_session(url, FAST))
    try:
        with pytest.raises(TelegramNetworkError):
            await bot.send_message(chat_id=5, text="x")
    finally:
        await bot.session.close()


async def test_a_retried_upload_sends_the_whole_file_again(
    tg: FakeTelegram, bot: Bot, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4000
    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    tg.fail("sendVideo", status=429, retry_after=1)
    message = await bot.send_video(
        chat_id=5, video=FSInputFile(path), request_timeout=upload_timeout(len(data))
    )
    assert message.video is not None
    calls = tg.calls_of("sendVideo")
    assert [c.status for c in calls] == [429, 200]
    assert all(c.file("video").data == data for c in calls)


def test_upload_timeout_grows_with_size() -> None:
    assert upload_timeout(0) == 120
    assert upload_timeout(2000 * 1024 * 1024) > upload_timeout(50 * 1024 * 1024) > 120


async def test_observers_hear_every_try_with_its_outcome(tg: FakeTelegram) -> None:
    heard: list[tuple[str, str]] = []
    bot = Bot(
        tg.token,
        session=make_session(
            tg.base_url, FAST, observers=[lambda method, outcome: heard.append((method, outcome))]
        ),
    )
    try:
        tg.fail("sendMessage", status=429, retry_after=1)
        tg.fail("sendMessage", status=502)
        await bot.send_message(chat_id=5, text="x")
        with pytest.raises(TelegramForbiddenError):
            tg.fail("sendMessage", status=403)
            await bot.send_message(chat_id=6, text="y")
        await bot.get_updates(timeout=0)
    finally:
        await bot.session.close()
    assert heard == [
        ("sendMessage", "retry_after"),
        ("sendMessage", "server_error"),
        ("sendMessage", "ok"),
        ("sendMessage", "client_error"),
        ("getUpdates", "ok"),
    ]


async def test_a_failing_observer_never_breaks_a_request(tg: FakeTelegram) -> None:
    def broken(method: str, outcome: str) -> None:
        raise RuntimeError("observer bug")

    bot = Bot(tg.token, session=make_session(tg.base_url, FAST, observers=[broken]))
    try:
        message = await bot.send_message(chat_id=5, text="still sent")
    finally:
        await bot.session.close()
    assert message.text == "still sent"
