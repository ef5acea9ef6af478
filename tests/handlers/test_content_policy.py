"""The content policy at the request service: every way a job is asked for is checked, a match
is refused with a neutral text (never echoed), queues nothing, is counted in /stats and logged
without the text."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.telegram.keyboards import RepeatCb
from bot.texts import policy as policy_texts
from tests.handlers.harness import FeatureEnv, open_feature_env

ADMIN, ALICE = 1, 10

LIST = "# blocked\nвзрыв\nbomb\nкровавая баня\n"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[FeatureEnv]:
    words = tmp_path / "blocked.txt"
    words.write_text(LIST, encoding="utf-8")
    env = await open_feature_env(
        tmp_path / "bot.sqlite3", admin_ids=[ADMIN], blocked_words_file=words
    )
    yield env
    await env.close()


@pytest.mark.parametrize(
    "request_text",
    [
        "огромный взрыв над морем",  # Russian, plain text
        "Взрывами разнесло мост",  # an inflected form
        "/gen a bomb in the city --steps 4",  # English, /generate
        "/gen Bombs falling",  # English plural
        '/gen кот --negative "взрывы"',  # the negative prompt the user wrote
        "после кровавой бани",  # a phrase, inflected
    ],
)
async def test_a_blocked_request_is_refused_neutrally_and_changes_nothing(
    env: FeatureEnv, request_text: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        session = await env.send(ALICE, request_text)
    assert session.last_text() == policy_texts.refused()
    assert len(session.texts()) == 1  # one reply, no status message
    assert await env.jobs.user_jobs(ALICE, limit=10) == []
    assert env.loop.woken == 0
    assert (await env.app.policy.counts.counts())["prompt"] == (1, 1)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "bot.policy")
    assert f"user {ALICE}" in logged and "list line" in logged
    body = request_text.removeprefix("/gen ").split(" --")[0]
    assert body not in logged and "взрыв" not in logged.lower()


async def test_similar_but_different_words_pass(env: FeatureEnv) -> None:
    session = await env.send(ALICE, "взрывной характер у кота")
    assert "#1" in session.last_text()
    (job,) = await env.jobs.user_jobs(ALICE, limit=10)
    assert job.status == "queued"
    assert (await env.app.policy.counts.counts())["prompt"] == (0, 0)


async def test_an_old_repeat_button_is_checked_against_todays_list(
    env: FeatureEnv, tmp_path: Path
) -> None:
    """A job made before the operator added a word: its «🔁» button now queues nothing."""
    old = await env.add_job(ALICE, "дракон над замком", status="delivered")
    (tmp_path / "blocked.txt").write_text(LIST + "дракон\n", encoding="utf-8")
    os.utime(tmp_path / "blocked.txt", ns=(1, 10**18))
    env.app.policy.words.reload_interval = 0
    session = await env.press(ALICE, RepeatCb(job_id=old.id).pack())
    assert session.answers()[-1].text == policy_texts.refused()
    assert [j.id for j in await env.jobs.user_jobs(ALICE, limit=10)] == [old.id]


async def test_stats_shows_the_refusals_and_they_survive_a_restart(tmp_path: Path) -> None:
    words = tmp_path / "blocked.txt"
    words.write_text(LIST, encoding="utf-8")
    path = tmp_path / "bot.sqlite3"
    first = await open_feature_env(path, admin_ids=[ADMIN], blocked_words_file=words)
    await first.send(ALICE, "взрыв")
    await first.send(ALICE, "/gen bombs")
    await first.close()
    second = await open_feature_env(path, admin_ids=[ADMIN], blocked_words_file=words)
    try:
        session = await second.send(ADMIN, "/stats")
        stats = next(t for t in session.texts() if "📊" in t)
        assert policy_texts.stats_line({"prompt": (2, 2)}) in stats
    finally:
        await second.close()
