"""Handlers through the real Dispatcher (``feed_update``) with a real Bot talking to the fake Bot API.

The generation loop is not started here, so every accepted request stays ``queued``: these tests
look at what the user is told and what is written to the database, not at generation.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import Update

from bot.__main__ import App, build_app
from bot.texts import help as help_texts
from bot.texts import photos as photo_texts
from bot.texts import requests as request_texts
from bot.texts import status as status_texts
from tests.fakes.backend import FAKE_DEFAULTS, FakeBackend
from tests.fakes.telegram import Call, FakeTelegram, bot_settings

USER = 1001
ADMIN = 4242


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


async def make_app(tg: FakeTelegram, tmp_path: Path, **overrides: Any) -> App:
    settings = bot_settings(tg, tmp_path, admin_ids=str(ADMIN), **overrides)
    return await build_app(settings, FakeBackend())


@pytest.fixture
async def app(tg: FakeTelegram, tmp_path: Path) -> AsyncIterator[App]:
    app = await make_app(tg, tmp_path)
    yield app
    await app.bot.session.close()
    await app.conn.close()


_update_ids = itertools.count(1)


async def feed(app: App, message: dict[str, Any]) -> None:
    # Telegram never reuses an update id (jobs remember theirs: a replay finds its job).
    update = Update.model_validate(
        {"update_id": next(_update_ids), "message": message}, context={"bot": app.bot}
    )
    await app.dp.feed_update(app.bot, update)


async def say(app: App, tg: FakeTelegram, text: str | None, **kwargs: Any) -> dict[str, Any]:
    message = tg.push_message(text, **kwargs)
    await feed(app, message)
    return message


def replies(tg: FakeTelegram, chat_id: int = USER) -> list[Call]:
    return [c for c in tg.calls_of("sendMessage", chat_id) if c.ok]


async def test_start_and_help(app: App, tg: FakeTelegram) -> None:
    await say(app, tg, "/start")
    await say(app, tg, "/help")
    start, help_ = (c.params["text"] for c in replies(tg))
    assert start == help_texts.start()
    assert "Пример" in help_ and "/gen" in help_
    for option in ("--steps", "--seed", "--frames", "--fps", "--size", "--guidance", "--negative"):
        assert option in help_
    assert f"1–{app.context.model.limits.max_steps}" in help_
    for command in ("/queue", "/cancel", "/history", "/settings"):  # every user command is listed
        assert command in help_
    assert await app.jobs.count_queued() == 0


async def test_plain_text_is_queued_before_the_user_is_told(app: App, tg: FakeTelegram) -> None:
    seen_in_db: list[str | None] = []

    async def look(call: Call) -> None:
        job = await app.jobs.get(1)
        seen_in_db.append(job.status if job else None)

    tg.hooks["sendMessage"] = look
    request = await say(app, tg, "кот играет на пианино в космосе")
    assert seen_in_db == ["queued"]
    job = await app.jobs.get(1)
    assert job is not None and job.status == "queued"
    assert job.prompt == "кот играет на пианино в космосе"
    assert job.request_message_id == request["message_id"] and job.chat_id == USER
    assert (job.options.steps, job.options.frames) == (FAKE_DEFAULTS.steps, FAKE_DEFAULTS.frames)
    (reply,) = replies(tg)
    assert reply.params["reply_parameters"]["message_id"] == request["message_id"]
    assert reply.params["text"].startswith(f"⏳ Запрос #{job.id} принят.")  # the id for /cancel
    assert "Место в очереди: 1" in reply.params["text"]
    assert job.status_message_id == reply.result["message_id"]


async def test_a_failed_reply_loses_nothing(app: App, tg: FakeTelegram) -> None:
    tg.fail("sendMessage", status=400, description="Bad Request: chat not found")
    await say(app, tg, "собака бежит по пляжу")
    job = await app.jobs.get(1)
    assert job is not None and job.status == "queued" and job.status_message_id is None


async def test_generate_with_options(app: App, tg: FakeTelegram) -> None:
    await say(app, tg, '/gen закат над морем —steps 7 seed=42 --size 96x64 --negative "размыто"')
    job = await app.jobs.get(1)
    assert job is not None
    assert job.prompt == "закат над морем"
    o = job.options
    assert (o.steps, o.seed, o.width, o.height, o.negative_prompt) == (7, 42, 96, 64, "размыто")
    await say(app, tg, "/generate@t2v_test_bot ещё один закат --frames 13")
    job2 = await app.jobs.get(2)
    assert job2 is not None and job2.options.frames == 13


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/gen кот --steps 999", ["--steps", "от 1 до 200", "не поставлен"]),
        ("/gen кот --steps много", ["--steps", "целое число"]),
        ("/gen кот --frames 12", ["--frames", "13", "4k+1"]),
        ("/gen кот --size 100x64", ["--size", "кратны 16"]),
        ("/gen кот --size 512x512", ["--size", "пикселей"]),
        ("/gen кот --colour red", ["colour", "--steps", "--negative"]),
        ("/gen кот --steps", ["--steps", "не указано значение"]),
        ('/gen кот --negative "открыто', ["кавычка"]),
        ("/gen --steps 5", ["Описание", "пустое"]),
    ],
)
async def test_bad_options_queue_nothing_and_say_why(
    app: App, tg: FakeTelegram, text: str, expected: list[str]
) -> None:
    request = await say(app, tg, text)
    (reply,) = replies(tg)
    for fragment in expected:
        assert fragment in reply.params["text"]
    assert reply.params["reply_parameters"]["message_id"] == request["message_id"]
    assert await app.jobs.count_queued() == 0


async def test_generate_without_text_shows_usage(app: App, tg: FakeTelegram) -> None:
    await say(app, tg, "/gen")
    assert replies(tg)[0].params["text"] == help_texts.generate_usage()
    assert await app.jobs.count_queued() == 0


async def test_too_long_prompt_names_the_limit(tg: FakeTelegram, tmp_path: Path) -> None:
    app = await make_app(tg, tmp_path, max_prompt_chars=20)
    try:
        await say(app, tg, "очень " * 10)
        text = replies(tg)[0].params["text"]
        assert "до 20 символов" in text and "слишком длинное" in text
        assert await app.jobs.count_queued() == 0
    finally:
        await app.bot.session.close()
        await app.conn.close()


@pytest.mark.parametrize("kind", ["photo", "sticker", "voice"])
async def test_non_text_messages_get_a_hint(app: App, tg: FakeTelegram, kind: str) -> None:
    """A photo is a photo request: without I2V_MODEL the answer says photos are not animated."""
    message = getattr(tg, f"push_{kind}")()
    await feed(app, message)
    hint = photo_texts.photo_unavailable() if kind == "photo" else help_texts.media_hint()
    assert replies(tg)[0].params["text"] == hint
    assert await app.jobs.count_queued() == 0


async def test_unknown_command_gets_a_hint(app: App, tg: FakeTelegram) -> None:
    await say(app, tg, "/frobnicate now")
    assert replies(tg)[0].params["text"] == help_texts.unknown_command()
    assert await app.jobs.count_queued() == 0


async def test_in_groups_only_commands_count(app: App, tg: FakeTelegram) -> None:
    group = -100500
    await say(app, tg, "просто болтовня в группе", chat_id=group, chat_type="supergroup")
    assert replies(tg, group) == [] and await app.jobs.count_queued() == 0
    request = await say(
        app, tg, "/gen@t2v_test_bot кот в группе", chat_id=group, chat_type="supergroup"
    )
    job = await app.jobs.get(1)
    assert job is not None and job.chat_id == group and job.user_id == USER
    (reply,) = replies(tg, group)
    assert reply.params["reply_parameters"]["message_id"] == request["message_id"]


GROUP_SILENT = [
    "/start", "/help", "/start@t2v_test_bot", "/help@t2v_test_bot", "/queue", "/cancel",
    "/cancel 1", "/history", "/settings", "/stats", "/ban 5", "/pause", "/frobnicate",
    "/gen@other_bot кот", "/generate@other_bot кот", "@other_bot кот",
]  # fmt: skip


@pytest.mark.parametrize("text", GROUP_SILENT)
async def test_in_groups_only_generate_and_mentions_are_answered(
    app: App, tg: FakeTelegram, text: str
) -> None:
    group = -100500
    for user_id in (USER, ADMIN):
        await say(app, tg, text, chat_id=group, chat_type="supergroup", user_id=user_id)
    assert tg.calls_of("sendMessage") == [] and tg.calls_of("sendPhoto") == []
    assert await app.jobs.count_queued() == 0
    # ...while the bot's own requests are answered there, replying to the request.
    mention = "@t2v_test_bot кот в группе"
    entity = {"type": "mention", "offset": 0, "length": len("@t2v_test_bot")}
    for request in ("/gen кот в группе", "/generate@t2v_test_bot пёс", mention):
        extra = {"entities": [entity]} if request == mention else {}
        await say(app, tg, request, chat_id=group, chat_type="supergroup", user_id=ADMIN, **extra)
    assert await app.jobs.count_queued() == 3
    assert len(replies(tg, group)) == 3


async def test_a_banned_user_in_a_group_is_refused_only_where_the_bot_answers(
    app: App, tg: FakeTelegram
) -> None:
    group = -100500
    await app.users.ban(USER)
    for text in ("/start", "/help", "/queue", "/frobnicate", "/gen@other_bot кот"):
        await say(app, tg, text, chat_id=group, chat_type="supergroup")
    assert tg.calls_of("sendMessage") == []
    await say(app, tg, "/gen кот", chat_id=group, chat_type="supergroup")
    assert [c.params["text"] for c in replies(tg, group)] == [request_texts.banned()]
    assert await app.jobs.count_queued() == 0


async def test_active_jobs_limit_holds_exactly_under_concurrency(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    app = await make_app(tg, tmp_path, max_active_jobs_per_user=2)
    try:
        messages = [tg.push_message(f"кот номер {i}") for i in range(6)]
        await asyncio.gather(*(feed(app, m) for m in messages))
        assert await app.jobs.active_count(USER) == 2
        refusals = [c for c in replies(tg) if c.params["text"] == request_texts.limit_active(2)]
        assert len(refusals) == 4
        # Admins are exempt.
        for i in range(3):
            await say(app, tg, f"админский кот {i}", user_id=ADMIN)
        assert await app.jobs.active_count(ADMIN) == 3
    finally:
        await app.bot.session.close()
        await app.conn.close()


async def test_queue_cap(tg: FakeTelegram, tmp_path: Path) -> None:
    app = await make_app(tg, tmp_path, max_queue=3, max_active_jobs_per_user=1)
    try:
        for user in range(1, 6):
            await say(app, tg, "кот", user_id=user)
        assert await app.jobs.count_queued() == 3
        assert replies(tg, 5)[0].params["text"] == request_texts.limit_queue(3)
    finally:
        await app.bot.session.close()
        await app.conn.close()


async def test_user_is_recorded(app: App, tg: FakeTelegram) -> None:
    await say(app, tg, "/start", user_id=77, username="vasya", first_name="Вася")
    user = await app.users.get(77)
    assert user is not None and user.username == "vasya" and user.first_name == "Вася"


async def test_handlers_answer_fast(app: App, tg: FakeTelegram) -> None:
    start = time.monotonic()
    for i in range(10):
        await say(app, tg, f"/gen кот {i}", user_id=100 + i)
    assert (time.monotonic() - start) / 10 < 0.5


def test_caption_words_agree_with_numbers() -> None:
    """«81 кадр», «9 кадров»: a caption reads as Russian, whatever the frame count."""
    common = dict(seed=1, steps=50, width=832, height=480, fps=16, seconds=70.0)
    assert "81 кадр," in status_texts.caption("кот", "cat", frames=81, **common)
    assert "33 кадра," in status_texts.caption("кот", "cat", frames=33, **common)
    assert "9 кадров," in status_texts.caption("кот", "cat", frames=9, **common)
