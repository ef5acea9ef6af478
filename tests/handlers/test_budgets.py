"""GPU-cost budgets through the bot's real middlewares, routers and services (issue 14, item 1).

A request costs its transformer passes × frames × pixels, in ordinary videos (the loaded model's
default job = 1, ``bot/services/cost.py``). ``MAX_COST_PER_JOB`` caps one request,
``DAILY_COST_PER_USER`` a user's day, ``DAILY_COST_PER_CHAT`` a group's day; every refusal names
the budget, the request's cost, what is left and when it frees; admins are exempt. Also: limits
are checked again when an old job's button is pressed (item 3).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import AnswerCallbackQuery, SendMessage

from bot.services.admission import DAY
from bot.telegram.keyboards import RepeatCb
from bot.texts import queue as queue_texts
from bot.texts import requests as request_texts
from pipeline.quality import TierSupport, load_cache_data
from tests.handlers.harness import FeatureEnv, open_feature_env

ADMIN, ALICE, BOB, CAROL = 1, 10, 20, 30
GROUP = -100500
NOON = 100 * DAY + 12 * 3600.0
WAN_MODEL = {"max_pixels": 1280 * 720, "max_frames": 81}
"""The real Wan 2.1 1.3B's bounds (pipeline.presets): up to 1280x720 and 81 frames."""


@pytest.fixture
async def envs() -> AsyncIterator[list[FeatureEnv]]:
    opened: list[FeatureEnv] = []
    yield opened
    for env in opened:
        await env.close()


async def make_env(tmp_path: Path, envs: list, **settings) -> FeatureEnv:
    settings.setdefault("admin_ids", [ADMIN])
    settings.setdefault("max_active_jobs_per_user", 50)
    env = await open_feature_env(tmp_path / "bot.sqlite3", **settings)
    envs.append(env)
    now = [NOON]
    env.jobs.clock = lambda: now[0]
    env.now = now  # type: ignore[attr-defined]
    return env


async def jobs_of(env: FeatureEnv, user_id: int) -> list:
    return await env.jobs.user_jobs(user_id, limit=1000)


def accepted(env: FeatureEnv) -> list[str]:
    return [t for t in env.session.texts() if re.match(r"⏳ Запрос #\d+ принят", t)]


async def test_the_max_cost_request_is_refused_with_its_cost_and_the_cap(
    tmp_path: Path, envs: list
) -> None:
    """The issue's `кот --steps 100 --size 1280x720`: ~4.7 ordinary videos balanced, ~9.2 best."""
    env = await make_env(tmp_path, envs, **WAN_MODEL)
    env.fake.tiers = TierSupport(cache=load_cache_data())  # Wan 2.1 1.3B's MagCache
    assert env.settings.max_cost_per_job == 4
    await env.send(ALICE, "/generate кот --steps 100 --size 1280x720")
    refusal = env.session.last_text()
    assert refusal.startswith("💰 Этот запрос стоит 4,7 обычного видео")
    assert "4 обычных видео на запрос" in refusal and "--steps" in refusal
    await env.users.update_settings(ALICE, quality="best")
    await env.send(ALICE, "/generate кот --steps 100 --size 1280x720")
    assert env.session.last_text().startswith("💰 Этот запрос стоит 9,2 обычного видео")
    assert await jobs_of(env, ALICE) == []
    # Within the cap: queued, and a costly request says what it costs.
    await env.send(ALICE, "/generate кот --size 1280x720")  # best, 2 × 2.3 pixels = 4.6: no
    assert await jobs_of(env, ALICE) == []
    await env.users.update_settings(ALICE, quality=None)
    await env.send(ALICE, "/generate кот --size 1280x720")  # balanced: 2.3
    (job,) = await jobs_of(env, ALICE)
    assert job.cost == pytest.approx(1280 * 720 / (832 * 480))
    assert "Этот запрос стоит 2,3 обычного видео." in env.session.last_text()
    await env.send(ALICE, "кот")  # an ordinary video: its cost is not worth a line
    assert "стоит" not in env.session.last_text()
    # An admin is exempt and charged what the request costs: the issue's ~9 ordinary videos.
    await env.users.update_settings(ADMIN, quality="best")
    await env.send(ADMIN, "/generate кот --steps 100 --size 1280x720")
    (admins,) = await jobs_of(env, ADMIN)
    assert admins.cost == pytest.approx(9.23, abs=0.01)
    assert "Этот запрос стоит 9,2 обычного видео." in env.session.last_text()


async def test_daily_budget_per_user_frees_at_utc_midnight(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, envs, daily_cost_per_user=3)
    for i in range(3):
        await env.send(ALICE, f"кот {i}")
    assert len(await jobs_of(env, ALICE)) == 3
    env.session.clear()
    await env.send(ALICE, "кот 4")
    refusal = env.session.last_text()
    assert refusal == request_texts.limit_daily_cost(1.0, 3.0, 0.0, 12 * 3600.0)
    assert refusal == (
        "💰 Дневной бюджет исчерпан: 3 обычных видео в сутки, осталось 0 обычных видео, а этот "
        "запрос стоит 1 обычное видео. Бюджет обновится в 00:00 UTC — через 12 ч."
    )
    assert len(await jobs_of(env, ALICE)) == 3
    await env.send(BOB, "кот")  # another user's budget is their own
    assert len(await jobs_of(env, BOB)) == 1
    # A job cancelled before it started is not charged: its cost comes back.
    newest = (await jobs_of(env, ALICE))[0]
    await env.jobs.cancel(newest.id)
    await env.send(ALICE, "/generate кот --frames 121")  # 121/81 = 1.5 > 1 left
    assert env.session.last_text() == request_texts.limit_daily_cost(121 / 81, 3.0, 1.0, 12 * 3600)
    assert "осталось 1 обычное видео" in env.session.last_text()
    await env.send(ALICE, "/generate кот --frames 41")  # 41/81 = 0.506: fits
    assert len(await jobs_of(env, ALICE)) == 4
    await env.send(ALICE, "/generate кот --frames 41")  # 0.494 left: refused
    assert "осталось 0,5 обычного видео" in env.session.last_text()
    await env.send(ALICE, "/generate кот --frames 37")  # 0.457: a smaller request fits
    assert len(await jobs_of(env, ALICE)) == 5
    env.now[0] = 101 * DAY + 1  # 00:00:01 UTC the next day
    await env.send(ALICE, "кот завтра")
    assert len(await jobs_of(env, ALICE)) == 6


async def test_daily_budget_per_group_chat(tmp_path: Path, envs: list) -> None:
    env = await make_env(tmp_path, envs, daily_cost_per_chat=2, daily_cost_per_user=20)
    await env.send(ALICE, "/generate кот", chat_id=GROUP)
    await env.send(BOB, "/generate пёс", chat_id=GROUP)
    assert len(accepted(env)) == 2
    env.session.clear()
    await env.send(CAROL, "/generate ёж", chat_id=GROUP)  # her own budget is untouched
    refusal = env.session.last_text()
    assert refusal == request_texts.limit_chat_cost(1.0, 2.0, 0.0, 12 * 3600.0)
    assert refusal.startswith("💰 Дневной бюджет этого чата исчерпан: 2 обычных видео в сутки")
    assert await jobs_of(env, CAROL) == []
    await env.send(CAROL, "ёж")  # in her private chat the group's budget does not apply
    assert len(await jobs_of(env, CAROL)) == 1
    await env.send(ADMIN, "/generate ёж", chat_id=GROUP)  # admins are exempt
    assert len(await jobs_of(env, ADMIN)) == 1


async def test_admins_are_exempt_from_every_budget(tmp_path: Path, envs: list) -> None:
    env = await make_env(
        tmp_path, envs, daily_cost_per_user=1, daily_cost_per_chat=1, max_cost_per_job=0.5
    )
    for i in range(3):
        await env.send(ADMIN, f"/generate кот {i} --frames 121", chat_id=GROUP)
    assert len(await jobs_of(env, ADMIN)) == 3
    await env.send(ALICE, "кот")  # 1 > 0.5: the cap applies to everyone else
    assert env.session.last_text() == request_texts.limit_job_cost(1.0, 0.5)
    assert await jobs_of(env, ALICE) == []


async def test_zero_turns_each_budget_off(tmp_path: Path, envs: list) -> None:
    env = await make_env(
        tmp_path, envs, daily_cost_per_user=0, daily_cost_per_chat=0, max_cost_per_job=0,
        **WAN_MODEL,
    )  # fmt: skip
    await env.send(ALICE, "/generate кот --steps 100 --size 1280x720")
    for i in range(25):
        await env.send(ALICE, f"/generate кот {i}", chat_id=GROUP)
    assert len(await jobs_of(env, ALICE)) == 26


async def test_repeat_buttons_are_charged_and_refused_like_requests(
    tmp_path: Path, envs: list
) -> None:
    env = await make_env(tmp_path, envs, daily_cost_per_user=2)
    done = await env.add_job(ALICE, "кот", status="delivered")
    await env.press(ALICE, RepeatCb(job_id=done.id).pack())
    assert env.session.answers()[-1].text == queue_texts.repeat_queued(done.id)
    new = (await jobs_of(env, ALICE))[0]
    assert new.source == "repeat" and new.cost == 1.0
    await env.press(ALICE, RepeatCb(job_id=done.id).pack())
    answer = env.session.of(AnswerCallbackQuery)[-1]
    assert answer.show_alert and answer.text == request_texts.limit_daily_cost(
        1.0, 2.0, 0.0, 12 * 3600.0
    )  # the whole refusal fits an alert (200 characters)
    assert len(await jobs_of(env, ALICE)) == 2


async def test_the_repeat_of_an_old_job_after_lowered_limits_queues_nothing(
    tmp_path: Path, envs: list
) -> None:
    """The issue's finding: after MAX_STEPS/MAX_FRAMES/MAX_PIXELS were lowered and the bot
    restarted, the «🔁» button of an old job with steps 100 queued it again. It is resolved
    against today's limits now, as a new request is."""
    before = await make_env(tmp_path, envs, max_cost_per_job=0)
    await before.send(ALICE, "/generate кот --steps 100 --frames 121")
    (old,) = await jobs_of(before, ALICE)
    assert (old.options.steps, old.options.frames) == (100, 121)
    await before.jobs.claim_next()
    await before.conn.execute("UPDATE jobs SET status = 'delivered' WHERE id = ?", (old.id,))
    await before.close()
    envs.remove(before)

    after = await make_env(
        tmp_path, envs, max_steps=50, max_frames=49, max_pixels=416 * 240, max_cost_per_job=0
    )  # the operator lowered the bounds and restarted
    await after.send(ALICE, "/generate кот --steps 100")  # a fresh request is refused…
    assert "--steps" in after.session.last_text()
    for press in range(2):  # …and so is the button, from the video or from /history
        await after.press(ALICE, RepeatCb(job_id=old.id).pack(), message_id=700 + press)
        answer = after.session.of(AnswerCallbackQuery)[-1]
        assert answer.show_alert
        assert "--steps" in answer.text and "от 1 до 50" in answer.text
        assert "не поставлен в очередь" in answer.text or answer.text.endswith("…")
    assert len(await jobs_of(after, ALICE)) == 1  # nothing queued
    assert not [c for c in after.session.of(SendMessage) if "принят" in c.text]
