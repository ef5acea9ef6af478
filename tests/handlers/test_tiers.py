"""Quality tiers as users see them: each tier's typical time in /settings, and queued ETAs that
count the tier of every job ahead (``bot/eta.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendMessage

from bot.i18n import duration, use_locale
from bot.telegram.keyboards import SettingsCb
from pipeline.progress import Progress, Stage
from pipeline.quality import TierSupport, load_cache_data
from tests.handlers.harness import FeatureEnv, open_feature_env, wan_like_backend

ALICE, BOB, CAROL, DAVE = 10, 20, 30, 40
WAN_MAGCACHE = TierSupport(cache=load_cache_data())
WAN_DISTILLED = TierSupport(distilled=True, cache=load_cache_data(), fast_steps=4)
BEST_PASSES, FAST_PASSES = 100, 4  # 50 guided steps; 4 distilled steps without guidance


def reference(passes: int) -> float:
    """``pipeline.quality.estimate_seconds`` on the H200 reference, written out."""
    return 3.2 + 0.62 * passes


async def measured(env: FeatureEnv, seconds: float, count: int = 3, **options: Any) -> None:
    """``count`` jobs that took ``seconds`` to generate: what the ETA learns from."""
    for _ in range(count):
        job = await env.add_job(BOB, "давний", status="delivered", **options)
        await env.conn.execute(
            "UPDATE jobs SET gen_seconds = ?, generated_at = ? WHERE id = ?",
            (seconds, env.jobs.clock(), job.id),
        )


def in_locale(locale: str, seconds: float) -> str:
    with use_locale(locale):
        return duration(seconds)


# ---------------------------------------------------------------- /settings


async def test_settings_show_the_tier_time_in_russian_and_english(tmp_path: Path) -> None:
    env = await open_feature_env(
        tmp_path / "bot.sqlite3", backend=wan_like_backend(tiers=WAN_MAGCACHE)
    )
    try:
        text = (await env.send(ALICE, "/settings")).of(SendMessage)[-1].text
        # balanced on Wan 2.1 1.3B: MagCache computes 25 of 50 guided steps = 50 passes, ≈ 34.2 s
        assert "Качество: баланс (50 шагов, ≈ 35 с)" in text
        assert "быстро ≈ 19 с, баланс ≈ 35 с, лучше ≈ 1 мин 6 с" in text
        assert "оценка для одной видеокарты H200" in text
        await env.users.update_settings(ALICE, language="en")
        text = (await env.send(ALICE, "/settings")).of(SendMessage)[-1].text
        assert "Quality: balanced (50 steps, ≈ 35 sec)" in text
        assert "fast ≈ 19 sec, balanced ≈ 35 sec, best ≈ 1 min 6 sec" in text
        assert "estimated for one H200 GPU" in text

        # Once this bot has made videos, the times are its own: balanced jobs took 20 s here.
        await measured(env, 20.0, quality="balanced")
        text = (await env.send(ALICE, "/settings")).of(SendMessage)[-1].text
        assert "Quality: balanced (50 steps, ≈ 20 sec)" in text
        best = 20.0 * reference(BEST_PASSES) / reference(50)
        assert f"best ≈ {in_locale('en', best)}" in text
        assert "from this bot's recent videos" in text

        # Picking another tier redraws the line with that tier's steps and time.
        await env.press(ALICE, SettingsCb(action="set", name="quality", value="best").pack())
        redrawn = env.session.edits()[-1].text
        assert f"Quality: best (50 steps, ≈ {in_locale('en', best)})" in redrawn
    finally:
        await env.close()


async def test_settings_time_follows_the_fast_tiers_steps(tmp_path: Path) -> None:
    env = await open_feature_env(
        tmp_path / "bot.sqlite3",
        backend=wan_like_backend(tiers=WAN_DISTILLED),
        fast_lora="distilled.safetensors",
        fast_steps=4,
        default_quality="fast",
    )
    try:
        text = (await env.send(ALICE, "/settings")).of(SendMessage)[-1].text
        fast = in_locale("ru", reference(FAST_PASSES))  # 5.7 s
        assert f"Качество: быстро, быстрый режим оператора (4 шага, ≈ {fast})" in text
    finally:
        await env.close()


# ---------------------------------------------------------------- queued ETA


@pytest.fixture
async def tiers_env(tmp_path: Path) -> Any:
    """A Wan 2.1 1.3B stand-in with distilled fast weights and MagCache, whose best jobs were
    measured at 60 s."""
    env = await open_feature_env(
        tmp_path / "bot.sqlite3",
        backend=wan_like_backend(tiers=WAN_DISTILLED),
        fast_lora="distilled.safetensors",
        fast_steps=4,
    )
    await measured(env, 60.0, quality="best")
    yield env
    await env.close()


def fast_seconds() -> float:
    """A fast job at the pace of best jobs measured at 60 s (one factor of the reference)."""
    return 60.0 * reference(FAST_PASSES) / reference(BEST_PASSES)


async def test_queued_status_counts_the_tiers_of_the_jobs_ahead(tiers_env: FeatureEnv) -> None:
    env = tiers_env
    # Two other users who, like Alice, have not rendered yet: in the fair queue their older jobs
    # go first (Bob's measured renders would put Alice ahead of Bob).
    await env.add_job(CAROL, "первый", quality="best")
    await env.add_job(DAVE, "второй", quality="best")
    await env.press(ALICE, SettingsCb(action="set", name="quality", value="fast").pack())
    env.session.clear()
    text = (await env.send(ALICE, "кот на луне")).of(SendMessage)[-1].text
    mine = (await env.jobs.user_jobs(ALICE, limit=1))[0]
    assert mine.options.quality == "fast" and mine.options.steps == 4
    eta = 2 * 60.0 + fast_seconds()  # ≈ 125 s: two best jobs, then its own 5 s
    assert "Место в очереди: 3" in text
    assert f"Видео будет примерно через {in_locale('ru', eta)}" in text
    assert in_locale("ru", eta) == "2 мин 6 с" and "3 мин" not in text  # not 3 × 60 s

    # A best job in the same place waits as long, but costs its own minute.
    await env.press(ALICE, SettingsCb(action="set", name="quality", value="best").pack())
    await env.conn.execute("UPDATE jobs SET status = 'cancelled' WHERE id = ?", (mine.id,))
    text = (await env.send(ALICE, "кот на солнце")).of(SendMessage)[-1].text
    assert f"Видео будет примерно через {in_locale('ru', 3 * 60.0)}" in text

    # /queue tells the same.
    lines = (await env.send(ALICE, "/queue")).last_text().splitlines()
    newest = (await env.jobs.user_jobs(ALICE, limit=1))[0]
    line = next(x for x in lines if f"#{newest.number}" in x)
    assert "место 3" in line and f"≈ {in_locale('ru', 3 * 60.0)}" in line


async def test_queued_eta_adds_the_rest_of_the_running_job(tiers_env: FeatureEnv) -> None:
    env = tiers_env
    running = await env.add_job(
        BOB, "идёт", status="running", quality="fast", steps=4, guidance=1.0
    )
    await env.add_job(CAROL, "ждёт", quality="best")  # never rendered, older: ahead of Alice
    fast = await env.add_job(ALICE, "мой", quality="fast", steps=4, guidance=1.0)
    await env.app.status.begin_running(running)  # the worker claimed it: its own estimate
    view = await env.app.status.queued_etas()
    position, eta = view[fast.id][1:]
    assert position == 2
    # The running fast job (≈ 5.2 s, a moment elapsed), the best job ahead, its own run.
    assert eta == pytest.approx(fast_seconds() + 60.0 + fast_seconds(), abs=0.5)
    assert env.app.status.running_remaining() == pytest.approx(fast_seconds(), abs=0.5)
    # Once it reports steps, its remainder follows its own pace (10 s a step here, 2 steps left).
    env.app.status.progress(running.id, Progress(Stage.DENOISE, 1, 4, elapsed=1.0))
    env.app.status.progress(running.id, Progress(Stage.DENOISE, 2, 4, elapsed=11.0))
    assert env.app.status.running_remaining() == pytest.approx(20.0)
    view = await env.app.status.queued_etas()
    assert view[fast.id][2] == pytest.approx(20.0 + 60.0 + fast_seconds())


async def test_no_eta_before_anything_was_measured(tmp_path: Path) -> None:
    env = await open_feature_env(
        tmp_path / "bot.sqlite3", backend=wan_like_backend(tiers=WAN_MAGCACHE)
    )
    try:
        await env.add_job(BOB, "ждёт", quality="best")
        text = (await env.send(ALICE, "кот")).of(SendMessage)[-1].text
        assert "Место в очереди: 2" in text and "примерно" not in text
    finally:
        await env.close()
