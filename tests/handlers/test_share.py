"""Share links through the real middlewares and routers: «🔗 Share» under a video, ``/start
<token>`` and «🎬 Make this video». The opener renders the same request as their own job; bad
tokens, forged buttons and expired links queue nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiogram.methods import SendMessage

from bot.storage.shares import TOKEN_BYTES, is_token, new_token
from bot.telegram.keyboards import ShareCb, ShareRunCb, result_keyboard
from bot.texts import policy as policy_texts
from bot.texts import queue as queue_texts
from bot.texts import share as share_texts
from tests.handlers.harness import BOT_USER, FeatureEnv, open_feature_env

ADMIN, ALICE, BOB = 1, 10, 20
LINK = re.compile(r"https://t\.me/(\w+)\?start=([A-Za-z0-9_-]+)")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[FeatureEnv]:
    words = tmp_path / "blocked.txt"
    words.write_text("взрыв\n", encoding="utf-8")
    env = await open_feature_env(
        tmp_path / "bot.sqlite3", admin_ids=[ADMIN], blocked_words_file=words
    )
    yield env
    await env.close()


def share_button(job_id: int) -> str:
    """The «🔗 Share» callback data really put under a delivered video."""
    buttons = [b for row in result_keyboard(job_id).inline_keyboard for b in row]
    (share,) = [b for b in buttons if b.text == share_texts.button_share()]
    return share.callback_data


async def share_link(env: FeatureEnv, job_id: int, user_id: int = ALICE) -> str:
    """Alice presses «🔗» under her video; returns the token of the link she got."""
    session = await env.press(user_id, share_button(job_id), message_id=777)
    message = session.of(SendMessage)[-1]
    match = LINK.search(message.text)
    assert match is not None, message.text
    assert match.group(1) == BOT_USER.username  # from getMe
    return match.group(2)


async def open_link(env: FeatureEnv, user_id: int, token: str) -> SendMessage:
    env.session.clear()
    session = await env.send(user_id, f"/start {token}")
    return session.of(SendMessage)[-1]


async def test_the_result_keyboard_has_share_beside_repeat_and_settings() -> None:
    rows = result_keyboard(5).inline_keyboard
    assert [[b.text for b in row] for row in rows] == [
        ["🔁 Ещё вариант", "🔗 Поделиться"],
        ["⚙️ Настройки"],
    ]
    assert rows[0][1].callback_data == ShareCb(job_id=5).pack()


async def test_share_answers_with_a_link_and_a_send_button(env: FeatureEnv) -> None:
    done = await env.add_job(ALICE, "кот на луне", status="delivered", seed=42)
    session = await env.press(ALICE, share_button(done.id), message_id=777)
    message = session.of(SendMessage)[-1]
    assert int(message.chat_id) == ALICE and message.reply_parameters.message_id == 777
    token = LINK.search(message.text).group(2)
    assert is_token(token) and len(token) <= 64
    (button,) = message.reply_markup.inline_keyboard[0]
    query = parse_qs(urlsplit(button.url).query)
    assert button.url.startswith("https://t.me/share/url?")
    assert query["url"] == [f"https://t.me/{BOT_USER.username}?start={token}"]
    # The token is drawn at random, not derived from the job: another job gets an unrelated one.
    other = await env.add_job(ALICE, "пёс", status="delivered")
    assert await share_link(env, other.id) not in (token, token[::-1])
    # A second press gives the same link: one token per job.
    assert await share_link(env, done.id) == token
    rows = await env.conn.execute_fetchall("SELECT token, job_id FROM share_links")
    assert (token, done.id) in [(r["token"], r["job_id"]) for r in rows] and len(rows) == 2


async def test_the_opener_sees_the_request_and_renders_it_as_their_own(env: FeatureEnv) -> None:
    done = await env.add_job(
        ALICE, "кот на луне", status="delivered", seed=42, steps=30, width=480, height=272
    )
    token = await share_link(env, done.id)
    shown = await open_link(env, BOB, token)
    assert "кот на луне" in shown.text and "42" in shown.text and "480x272" in shown.text
    assert str(ALICE) not in shown.text and f"u{ALICE}" not in shown.text
    (button,) = shown.reply_markup.inline_keyboard[0]
    assert button.text == share_texts.button_render()
    assert button.callback_data == ShareRunCb(token=token).pack()
    assert await env.jobs.user_jobs(BOB, limit=10) == []  # showing queues nothing

    session = await env.press(BOB, button.callback_data, message_id=888)
    (job,) = await env.jobs.user_jobs(BOB, limit=10)
    assert session.answers()[-1].text == share_texts.queued(job.number)
    assert job.user_id == BOB and job.chat_id == BOB and job.number == 1
    assert job.status == "queued" and job.source == "share"
    assert job.options == done.options  # the same prompt and options, seed included
    assert job.request_message_id == 888
    assert [j.id for j in await env.jobs.user_jobs(ALICE, limit=10)] == [done.id]
    status = session.of(SendMessage)[-1]
    assert int(status.chat_id) == BOB and "#1" in status.text
    assert env.loop.woken >= 1


async def test_the_openers_own_limits_apply(tmp_path: Path) -> None:
    env = await open_feature_env(tmp_path / "bot.sqlite3", max_active_jobs_per_user=1)
    try:
        done = await env.add_job(ALICE, "кот", status="delivered")
        await env.add_job(BOB, "пёс")  # Bob's one active job
        token = await share_link(env, done.id)
        shown = await open_link(env, BOB, token)
        session = await env.press(BOB, shown.reply_markup.inline_keyboard[0][0].callback_data)
        assert session.answers()[-1].show_alert
        assert "limit" in session.answers()[-1].text or "предел" in session.answers()[-1].text
        assert len(await env.jobs.user_jobs(BOB, limit=10)) == 1
    finally:
        await env.close()


async def test_a_banned_opener_gets_nothing(env: FeatureEnv) -> None:
    done = await env.add_job(ALICE, "кот", status="delivered")
    token = await share_link(env, done.id)
    shown = await open_link(env, BOB, token)
    await env.users.ban(BOB)
    await env.press(BOB, shown.reply_markup.inline_keyboard[0][0].callback_data)
    assert await env.jobs.user_jobs(BOB, limit=10) == []


@pytest.mark.parametrize(
    "token",
    [
        "A" * 22,  # the right shape, never made
        "short",
        "A" * 23,
        "A" * 64,
        "../../etc/passwd",
        "abc$def%ghi^jkl&mno*pq",
        "1",
        "' OR 1=1 --",
    ],
)
async def test_a_link_that_does_not_exist_queues_nothing(env: FeatureEnv, token: str) -> None:
    await env.add_job(ALICE, "кот", status="delivered")
    shown = await open_link(env, BOB, token)
    assert shown.text == share_texts.link_invalid() and shown.reply_markup is None
    assert await env.jobs.user_jobs(BOB, limit=10) == []


async def test_plain_start_still_greets(env: FeatureEnv) -> None:
    session = await env.send(BOB, "/start")
    assert session.last_text() != share_texts.link_invalid()
    assert "/help" in session.last_text()


@pytest.mark.parametrize(
    "data",
    [
        ShareRunCb(token=new_token()).pack(),  # well-formed, never issued
        "shr:",
        "shr:" + "A" * 60,
        "shr:abc:def",
        "shl:0",
        "shl:-5",
        "shl:abc",
        "shl:99999999999999999999999",
    ],
)
async def test_forged_share_buttons_change_nothing(env: FeatureEnv, data: str) -> None:
    await env.add_job(ALICE, "кот", status="delivered")
    session = await env.press(BOB, data)
    assert len(session.answers()) == 1 and session.answers()[0].show_alert
    assert await env.jobs.user_jobs(BOB, limit=10) == []
    assert len(await env.jobs.user_jobs(ALICE, limit=10)) == 1
    assert session.of(SendMessage) == []
    assert await env.conn.execute_fetchall("SELECT * FROM share_links") == []


async def test_someone_elses_video_cannot_be_shared(env: FeatureEnv) -> None:
    theirs = await env.add_job(ALICE, "секрет Алисы", status="delivered")
    session = await env.press(BOB, share_button(theirs.id), chat_id=-100)
    assert session.answers()[-1].text == queue_texts.button_foreign()
    assert session.of(SendMessage) == []
    assert await env.conn.execute_fetchall("SELECT * FROM share_links") == []


async def test_a_link_to_a_forgotten_prompt_has_expired(env: FeatureEnv) -> None:
    """DATA_RETENTION_DAYS blanked the prompt: the link says it expired and queues nothing."""
    done = await env.add_job(ALICE, "кот", status="delivered")
    token = await share_link(env, done.id)
    await env.conn.execute("UPDATE jobs SET finished_at = 1 WHERE id = ?", (done.id,))
    assert await env.jobs.forget_prompts(before_ts=1000) == 1
    shown = await open_link(env, BOB, token)
    assert shown.text == share_texts.link_expired() and shown.reply_markup is None
    session = await env.press(BOB, ShareRunCb(token=token).pack())
    assert session.answers()[-1].text == share_texts.link_expired()
    assert await env.jobs.user_jobs(BOB, limit=10) == []
    # And its owner can no longer share it.
    session = await env.press(ALICE, share_button(done.id))
    assert session.answers()[-1].text == share_texts.cannot_share()


async def test_a_link_whose_prompt_is_now_blocked_shows_nothing(env: FeatureEnv) -> None:
    done = await env.add_job(ALICE, "большой взрывы", status="delivered")
    token = await share_link(env, done.id)
    shown = await open_link(env, BOB, token)
    assert shown.text == policy_texts.refused() and "взрыв" not in shown.text
    await env.press(BOB, ShareRunCb(token=token).pack())
    assert await env.jobs.user_jobs(BOB, limit=10) == []


async def test_a_banned_sharers_link_stops_working(env: FeatureEnv) -> None:
    done = await env.add_job(ALICE, "кот", status="delivered")
    token = await share_link(env, done.id)
    await env.users.ban(ALICE)
    shown = await open_link(env, BOB, token)
    assert shown.text == share_texts.link_invalid()


def test_tokens_are_random_unique_and_fit_telegram() -> None:
    tokens = {new_token() for _ in range(5000)}
    assert len(tokens) == 5000
    assert TOKEN_BYTES * 8 >= 96
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", token) and is_token(token)
    # Every position takes many characters: no fixed prefix, no counter inside (the 22nd
    # character of 128 bits in base64 carries the last 2 bits: 4 values).
    for position in range(21):
        assert len({t[position] for t in tokens}) > 40
    assert len({t[21] for t in tokens}) == 4


async def test_a_replayed_press_queues_one_job(env: FeatureEnv) -> None:
    """The same «🎬» press handled again after a crash (the update inbox replays it) finds the
    job it made instead of queuing a second one."""
    from tests.handlers.harness import callback_update

    done = await env.add_job(ALICE, "кот", status="delivered")
    token = await share_link(env, done.id)
    update = callback_update(BOB, ShareRunCb(token=token).pack())
    await env.dp.feed_update(env.bot, update)
    await env.dp.feed_update(env.bot, update)
    assert len(await env.jobs.user_jobs(BOB, limit=10)) == 1


async def test_todays_bounds_apply_to_an_old_link(tmp_path: Path) -> None:
    """A link made when 30 steps were allowed, opened after the operator lowered MAX_STEPS:
    the opener is told which option no longer fits, and nothing is queued."""
    path = tmp_path / "bot.sqlite3"
    first = await open_feature_env(path)
    done = await first.add_job(ALICE, "кот", status="delivered", steps=30)
    token = await share_link(first, done.id)
    await first.close()
    env = await open_feature_env(path, max_steps=20)
    try:
        shown = await open_link(env, BOB, token)
        session = await env.press(BOB, shown.reply_markup.inline_keyboard[0][0].callback_data)
        assert session.answers()[-1].show_alert and "--steps" in session.answers()[-1].text
        assert await env.jobs.user_jobs(BOB, limit=10) == []
    finally:
        await env.close()
