"""End to end: the prompt improver (``PROMPT_MODEL``) in the real bot against the fake Bot API,
with the tiny random Qwen2 loaded through the project's loader (``PromptImprover.load``).

A user on "ask" (the default) sees the improved prompt with «✅ Снять так» / «✏️ Как написал»;
each button queues one job and the user gets one video, rendered from the improved English prompt
or from the plain translation. When the improver fails (its random text refused, a timeout, no
model) the plain translation is used and the user still gets a video. "always" improves in the
worker, in the stage of translation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.telegram.keyboards import ImproveCb
from bot.texts import improve as texts
from bot.texts import queue as queue_texts
from pipeline.improve import PromptImprover
from tests.e2e import harness
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram, SentMessage

pytestmark = pytest.mark.e2e

ALICE, BOB = 1001, 1002
GOOD = (
    "A ginger cat plays a grand piano on the surface of the moon, paws on the keys, Earth "
    "rising behind it. Slow orbiting camera, cold sunlight, cinematic, photorealistic."
)
TRANSLATION = "a cat plays the piano in space"  # the fake backend's plain translation


@pytest.fixture
def improver(tiny_qwen_dir: Path) -> PromptImprover:
    return PromptImprover.load(str(tiny_qwen_dir), "cpu", max_new_tokens=12, timeout=30)


def running_bot(tg: FakeTelegram, tmp_path: Path, backend: FakeBackend, **overrides: Any) -> Any:
    values: dict[str, Any] = {"prompt_model": "Qwen/Qwen2.5-1.5B-Instruct"}
    values.update(overrides)
    return harness.running_bot(tg, tmp_path, backend, **values)


def proposals(tg: FakeTelegram, chat_id: int) -> list[SentMessage]:
    """The improved prompts shown (their buttons are removed once one was pressed)."""
    return [m for m in tg.sent(chat_id) if (m.text or "").startswith("✨")]


def button_data(message: SentMessage) -> list[str]:
    return [b["callback_data"] for row in message.reply_markup["inline_keyboard"] for b in row]


async def video_prompts(app: Any, user_id: int) -> list[str | None]:
    """The English prompt each of the user's delivered videos was rendered from (once every
    video sent is committed as delivered: Telegram's answer arrives before that commit)."""
    for _ in range(200):
        jobs = await app.jobs.user_jobs(user_id, limit=20)
        if not any(job.status == "generated" for job in jobs):
            break
        await asyncio.sleep(0.05)
    return [job.video_meta["prompt_en"] for job in reversed(jobs) if job.status == "delivered"]


async def test_ask_both_buttons_each_make_one_video(
    tg: FakeTelegram, tmp_path: Path, improver: PromptImprover
) -> None:
    improver.raw_output = lambda request: f"Prompt: {GOOD}"
    backend = FakeBackend(improver=improver)
    async with running_bot(tg, tmp_path, backend) as app:
        for number, choice in enumerate(("improved", "plain"), start=1):
            request = tg.push_message("кот играет на пианино", user_id=ALICE)
            shown = (await tg.wait_for(lambda n=number: proposals(tg, ALICE)[n - 1 :]))[0]
            assert GOOD in shown.text and shown.reply_to == request["message_id"]
            improved, plain = button_data(shown)
            assert [b["text"] for row in shown.reply_markup["inline_keyboard"] for b in row] == [
                "✅ Снять так",
                "✏️ Как написал",
            ]
            if number == 1:  # forged and foreign presses first: they change nothing
                token = ImproveCb.unpack(improved).token
                for data, user in (
                    (ImproveCb(token="Z" * 16, choice="improved").pack(), ALICE),
                    (ImproveCb(token=token, choice="both").pack(), ALICE),
                    ("imp:" + token, ALICE),
                    (improved, BOB),
                ):
                    forged = tg.push_callback(data, user_id=user, message_id=shown.message_id)
                    assert await harness.answered(tg, forged) in (
                        queue_texts.button_broken(),
                        queue_texts.button_foreign(),
                    )
                assert await app.jobs.user_jobs(ALICE, limit=5) == []
                assert await app.jobs.user_jobs(BOB, limit=5) == []
            press = tg.push_callback(
                improved if choice == "improved" else plain,
                user_id=ALICE,
                message_id=shown.message_id,
            )
            await harness.answered(tg, press)
            await tg.wait_for(lambda n=number: len(tg.videos(ALICE)) == n, timeout=20)
            assert not shown.reply_markup  # the buttons went with the choice
            # A second press of the other button queues nothing more.
            again = tg.push_callback(plain, user_id=ALICE, message_id=shown.message_id)
            assert await harness.answered(tg, again) == texts.already_chosen()
        await tg.wait_for(lambda: len(backend.runs) == 2)
        assert await video_prompts(app, ALICE) == [GOOD, TRANSLATION]
    assert len(tg.videos(ALICE)) == 2


@pytest.mark.parametrize("failure", ["random_text", "timeout"])
async def test_a_failed_improvement_still_makes_a_video_from_the_translation(
    tg: FakeTelegram, tmp_path: Path, improver: PromptImprover, failure: str
) -> None:
    if failure == "timeout":
        improver.timeout = 0.0
    # else: the tiny model's own random text, which the output check refuses
    backend = FakeBackend(improver=improver)
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("кот играет на пианино", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
        assert texts.not_improved() in tg.texts_to(ALICE)
        assert not proposals(tg, ALICE)
        assert await video_prompts(app, ALICE) == [TRANSLATION]
        assert improver.last_stop == ("time" if failure == "timeout" else "length")


async def test_always_improves_in_the_worker(
    tg: FakeTelegram, tmp_path: Path, improver: PromptImprover
) -> None:
    improver.raw_output = lambda request: GOOD
    backend = FakeBackend(improver=improver)
    async with running_bot(tg, tmp_path, backend) as app:
        await app.users.update_settings(ALICE, improve="always")
        tg.push_message("кот играет на пианино", user_id=ALICE)
        tg.push_message("собака в космосе", user_id=ALICE)
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2, timeout=20)
        assert not proposals(tg, ALICE)
        assert await video_prompts(app, ALICE) == [GOOD, GOOD]
        assert backend.improve_threads and not any(
            t.startswith("improve") for t in backend.improve_threads
        )  # the render thread: between renders


async def test_without_a_loaded_improver_the_translation_is_used(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """``PROMPT_MODEL`` set but not loaded (a load error, or a front end without the model):
    "ask" behaves like "always", and the worker's improvement falls back to the translation."""
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("кот играет на пианино", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
        assert not proposals(tg, ALICE)
        assert await video_prompts(app, ALICE) == [TRANSLATION]
        (job,) = await app.jobs.user_jobs(ALICE, limit=5)
        assert job.improve
