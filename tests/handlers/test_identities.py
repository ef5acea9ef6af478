"""Real identities: whoever posts as a channel, or as an anonymous group admin, is that chat.

Telegram sends such messages from one shared service account with the real sender in
``sender_chat``; keyed by the service account, every channel would share one user's limits and
bans. Each case below goes through the real middlewares, routers and services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.types import Chat

from bot.texts import requests as request_texts
from tests.handlers.harness import CHANNEL_BOT, FeatureEnv, open_feature_env

ADMIN = 1
GROUP, DISCUSSION = -100500, -100600
CHANNEL_A = Chat(id=-1001111, type="channel", title="Канал А", username="chan_a")
CHANNEL_B = Chat(id=-1002222, type="channel", title="Канал Б")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[FeatureEnv]:
    env = await open_feature_env(
        tmp_path / "bot.sqlite3", admin_ids=[ADMIN], max_active_jobs_per_user=2
    )
    yield env
    await env.close()


async def post(env: FeatureEnv, text: str, sender: Chat, chat_id: int = GROUP) -> str:
    env.session.clear()
    await env.send(CHANNEL_BOT, text, chat_id=chat_id, sender_chat=sender)
    return env.session.last_text()


async def test_a_channel_post_is_the_channels_request(env: FeatureEnv) -> None:
    await post(env, "/generate кот на луне", CHANNEL_A)
    (job,) = await env.jobs.user_jobs(CHANNEL_A.id, limit=10)
    assert job.chat_id == GROUP and job.prompt == "кот на луне"
    assert await env.jobs.user_jobs(CHANNEL_BOT, limit=10) == []
    user = await env.users.get(CHANNEL_A.id)
    assert user is not None and user.username == "chan_a"


async def test_two_channels_have_separate_limits(env: FeatureEnv) -> None:
    for prompt in ("кот", "пёс"):
        await post(env, f"/gen {prompt}", CHANNEL_A)
    refused = await post(env, "/gen ёж", CHANNEL_A)
    assert refused == request_texts.limit_active(2)
    await post(env, "/gen ёж", CHANNEL_B)  # a second channel is not held back by the first
    assert len(await env.jobs.user_jobs(CHANNEL_B.id, limit=10)) == 1
    assert len(await env.jobs.user_jobs(CHANNEL_A.id, limit=10)) == 2


async def test_a_banned_channel_is_refused_and_others_are_not(env: FeatureEnv) -> None:
    assert "заблокирован" in (await env.send(ADMIN, f"/ban {CHANNEL_A.id}")).last_text()
    refused = await post(env, "/gen кот", CHANNEL_A)
    assert refused == request_texts.banned()
    assert await env.jobs.user_jobs(CHANNEL_A.id, limit=10) == []
    await post(env, "/gen кот", CHANNEL_B)
    assert len(await env.jobs.user_jobs(CHANNEL_B.id, limit=10)) == 1
    env.session.clear()
    await env.send(ADMIN, f"/unban {CHANNEL_A.id}")
    await post(env, "/gen кот", CHANNEL_A)
    assert len(await env.jobs.user_jobs(CHANNEL_A.id, limit=10)) == 1


async def test_anonymous_admins_are_keyed_by_their_group(env: FeatureEnv) -> None:
    group = Chat(id=GROUP, type="supergroup", title="Группа")
    await post(env, "/gen закат над морем", group)
    (job,) = await env.jobs.user_jobs(GROUP, limit=10)
    assert job.chat_id == GROUP


async def test_a_comment_posted_as_the_linked_channel(env: FeatureEnv) -> None:
    await post(env, "/gen волны", CHANNEL_B, chat_id=DISCUSSION)
    (job,) = await env.jobs.user_jobs(CHANNEL_B.id, limit=10)
    assert job.chat_id == DISCUSSION
