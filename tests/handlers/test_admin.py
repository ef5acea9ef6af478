"""Admin commands through the real Dispatcher: /stats, /ban, /unban, /pause, /resume; menus; chart."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import (
    SendMessage,
    SendPhoto,
    SetMyCommands,
    SetMyDescription,
    SetMyShortDescription,
)
from aiogram.types import BotCommandScopeAllGroupChats, BotCommandScopeChat, BotCommandScopeDefault

from bot import charts
from bot.charts import render_chart
from bot.i18n import use_locale
from bot.telegram.commands import set_profile
from bot.telegram.filters import GROUP_COMMANDS
from bot.texts import admin as admin_texts
from tests.handlers.harness import FeatureEnv, make_bot, open_feature_env

ADMIN, ALICE, BOB = 1, 10, 20
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[FeatureEnv]:
    env = await open_feature_env(tmp_path / "bot.sqlite3", admin_ids=[ADMIN])
    yield env
    await env.close()


async def finished(env: FeatureEnv, user_id: int, status: str, seconds: float | None) -> None:
    job = await env.add_job(user_id)
    await env.conn.execute(
        "UPDATE jobs SET status = ?, gen_seconds = ? WHERE id = ?", (status, seconds, job.id)
    )


async def test_stats_for_admin(env: FeatureEnv) -> None:
    for seconds in (10.0, 20.0, 30.0):
        await finished(env, ALICE, "delivered", seconds)
    await finished(env, BOB, "failed", None)
    await env.add_job(BOB)  # queued
    env.fake.device = "NVIDIA H200, 12.3/139 GB"
    session = await env.send(ADMIN, "/stats")
    text = session.of(SendMessage)[-1].text
    assert "Сегодня" in text and "готово 3" in text and "ошибка 1" in text and "в очереди 1" in text
    assert "среднее 20 с" in text and "p95 30 с" in text
    assert "25,0%" in text  # 1 failed of 4 that ended (Russian decimal comma, CLDR)
    assert "Очередь: 1" in text and "NVIDIA H200, 12.3/139 GB" in text and "Аптайм" in text
    photo = session.of(SendPhoto)[-1]
    assert photo.photo.data.startswith(PNG)


async def test_stats_shows_cpu_and_pause(env: FeatureEnv) -> None:
    await env.pause.pause()
    text = (await env.send(ADMIN, "/stats")).of(SendMessage)[-1].text
    assert "Устройство: CPU" in text and "пауза" in text


@pytest.mark.parametrize("command", ["/stats", f"/ban {BOB}", f"/unban {BOB}", "/pause", "/resume"])
async def test_non_admin_is_refused_and_nothing_changes(env: FeatureEnv, command: str) -> None:
    if "unban" in command:
        await env.users.ban(BOB)
    job = await env.add_job(BOB, "секрет Боба")
    session = await env.send(ALICE, command)
    assert session.texts() == [admin_texts.not_admin()]
    assert session.of(SendPhoto) == []
    assert (await env.jobs.get(job.id)).status == "queued"
    assert await env.users.is_banned(BOB) is ("unban" in command)
    assert not await env.pause.is_paused()


async def test_ban_cancels_queued_jobs_and_unban(env: FeatureEnv) -> None:
    running = await env.add_job(BOB, status="running")
    queued = [await env.add_job(BOB), await env.add_job(BOB)]
    other = await env.add_job(ALICE)
    session = await env.send(ADMIN, f"/ban {BOB}")
    assert session.last_text() == admin_texts.ban_done(BOB, 2)
    assert await env.users.is_banned(BOB)
    assert [(await env.jobs.get(j.id)).status for j in queued] == ["cancelled", "cancelled"]
    assert (await env.jobs.get(running.id)).status == "running"
    assert (await env.jobs.get(other.id)).status == "queued"
    cancelled_edits = {e.message_id for e in session.edits() if "отменена" in e.text}
    assert cancelled_edits == {j.status_message_id for j in queued}
    assert running.status_message_id not in {e.message_id for e in session.edits()}
    assert (await env.send(ADMIN, f"/ban {BOB}")).last_text() == admin_texts.ban_already(BOB, 0)
    assert (await env.send(ADMIN, f"/unban {BOB}")).last_text() == admin_texts.unban_done(BOB)
    assert not await env.users.is_banned(BOB)
    assert (await env.send(ADMIN, f"/unban {BOB}")).last_text() == admin_texts.unban_not_banned(BOB)


async def test_ban_usage_and_admin_protection(env: FeatureEnv) -> None:
    assert (await env.send(ADMIN, "/ban")).last_text() == admin_texts.ban_usage()
    assert (await env.send(ADMIN, "/ban вася")).last_text() == admin_texts.ban_usage()
    for bad in ("99999999999999999999", "²", "--5", "+5", "0", "-0"):
        assert (await env.send(ADMIN, f"/ban {bad}")).last_text() == admin_texts.ban_usage()
    assert (await env.send(ADMIN, f"/ban {ADMIN}")).last_text() == admin_texts.ban_admin()
    assert not await env.users.is_banned(ADMIN)


async def test_pause_and_resume(env: FeatureEnv) -> None:
    assert (await env.send(ADMIN, "/pause")).last_text() == admin_texts.pause_done()
    assert await env.pause.is_paused()
    assert (await env.send(ADMIN, "/pause")).last_text() == admin_texts.pause_already()
    assert (await env.send(ADMIN, "/resume")).last_text() == admin_texts.resume_done()
    assert not await env.pause.is_paused()
    assert (await env.send(ADMIN, "/resume")).last_text() == admin_texts.resume_not_paused()


async def test_admin_commands_are_silent_in_groups(env: FeatureEnv) -> None:
    await env.send(ADMIN, "/stats", chat_id=-100)
    await env.send(ADMIN, "/pause", chat_id=-100)
    assert env.session.calls == [] and not await env.pause.is_paused()


async def test_command_menus_and_descriptions_in_each_language() -> None:
    bot, session = make_bot()
    await set_profile(bot, [ADMIN, 2])
    for language in (None, "en"):
        calls = [c for c in session.of(SetMyCommands) if c.language_code == language]
        assert isinstance(calls[0].scope, BotCommandScopeDefault)
        user_names = [c.command for c in calls[0].commands]
        assert "queue" in user_names and "stats" not in user_names
        assert all(c.description for c in calls[0].commands)
        assert isinstance(calls[1].scope, BotCommandScopeAllGroupChats)
        assert {c.command for c in calls[1].commands} == set(GROUP_COMMANDS)  # all a group gets
        admin_scopes = [c.scope for c in calls[2:]]
        assert [s.chat_id for s in admin_scopes] == [ADMIN, 2]
        assert all(isinstance(s, BotCommandScopeChat) for s in admin_scopes)
        assert {"stats", "ban", "unban", "pause", "resume", "queue"} <= {
            c.command for c in calls[2].commands
        }
    russian = next(c for c in session.of(SetMyCommands) if c.language_code is None)
    english = next(c for c in session.of(SetMyCommands) if c.language_code == "en")
    assert dict((c.command, c.description) for c in russian.commands)["queue"] == (
        "Мои задачи и место в очереди"
    )
    assert dict((c.command, c.description) for c in english.commands)["queue"] == (
        "My jobs and their place in the queue"
    )
    descriptions = {c.language_code: c.description for c in session.of(SetMyDescription)}
    shorts = {c.language_code: c.short_description for c in session.of(SetMyShortDescription)}
    assert set(descriptions) == set(shorts) == {None, "en"}
    assert "видео" in descriptions[None] and "video" in descriptions["en"]
    assert len(shorts[None]) <= 120 and len(shorts["en"]) <= 120
    with use_locale("en"):
        assert shorts["en"] == "Text → short video. Write what should happen in the shot."


async def test_chart_renders_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = []
    real = charts.render_chart_png

    def spy(*args):
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(charts, "render_chart_png", spy)
    now = time.time()
    buckets = [(now - 3600 * i, i % 3, 12.0 if i % 2 else None) for i in range(168, 0, -1)]
    png = await render_chart(buckets, admin_texts.chart_labels(7))
    assert png.startswith(PNG) and len(png) > 1000
    assert (await render_chart([], admin_texts.chart_labels(7))).startswith(PNG)
    assert threads and all(th is not threading.main_thread() for th in threads)


async def test_stats_shows_videos_on_disk(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "job-1.mp4").write_bytes(b"\0" * 2_000_000)
    (videos / "job-1.jpg").write_bytes(b"\0" * 500_000)
    env = await open_feature_env(
        tmp_path / "bot.sqlite3", admin_ids=[ADMIN], video_dir=videos, video_retention_days=0
    )
    try:
        text = (await env.send(ADMIN, "/stats")).of(SendMessage)[-1].text
    finally:
        await env.close()
    assert "Видео на диске: 2 файла, 2,5 МБ (хранятся всегда)" in text


async def test_stats_lists_the_workers(env: FeatureEnv) -> None:
    """GPU workers (``python -m bot.worker``) register in the database; /stats lists them."""
    from bot.storage.workers import WorkerStore, model_info_dict

    workers = WorkerStore(env.conn)
    await workers.register("gpu0", model_info_dict(env.fake), "NVIDIA H200, 1/139 GB")
    await workers.register("gpu1", model_info_dict(env.fake), "NVIDIA H200, 2/139 GB")
    await workers.stopped("gpu1")
    text = (await env.send(ADMIN, "/stats")).of(SendMessage)[-1].text
    assert "Воркеры: 2" in text
    assert "• gpu0 — NVIDIA H200, на связи" in text and "• gpu1 — NVIDIA H200, остановлен" in text
