"""End to end over the fake Bot API: a share link from one user's video to another user's video,
and the content policy at each of its three gates — the request, the translated prompt in the
worker, and the finished video (``NSFW_MODEL`` with tiny classifiers whose verdict is forced)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.storage.jobs import FailReason
from bot.telegram.keyboards import ShareCb, ShareRunCb
from bot.texts import policy as policy_texts
from bot.texts import share as share_texts
from tests.e2e.harness import answered, running_bot
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram
from tests.fakes.tiny_classifier import build_tiny_classifier

pytestmark = pytest.mark.e2e

ADMIN, ALICE, BOB = 42, 1001, 2002
LINK = re.compile(r"https://t\.me/(\w+)\?start=([A-Za-z0-9_-]+)")
LIST = "# test list\nвзрыв\nbomb\n"


@pytest.fixture
def words(tmp_path: Path) -> Path:
    path = tmp_path / "blocked.txt"
    path.write_text(LIST, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nsfw")
    return {force: build_tiny_classifier(root / force, force=force) for force in ("nsfw", "normal")}


def buttons(markup: dict | None) -> list[dict]:
    return [b for row in (markup or {}).get("inline_keyboard", []) for b in row]


async def test_a_shared_link_renders_the_same_request_for_another_user(
    tg: FakeTelegram, tmp_path: Path, words: Path
) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend, blocked_words_file=words) as app:
        tg.push_message("кот играет на пианино --seed 77 --steps 6", user_id=ALICE)
        (video,) = await tg.wait_for(lambda: tg.videos(ALICE))
        share = [b for b in buttons(video.params["reply_markup"]) if "shl:" in b["callback_data"]]
        assert share and share[0]["text"] == "🔗 Поделиться"
        assert share[0]["callback_data"] == ShareCb(job_id=1).pack()

        tg.push_callback(
            share[0]["callback_data"], user_id=ALICE, message_id=video.result["message_id"]
        )
        link_text = await tg.wait_for(
            lambda: next((t for t in tg.texts_to(ALICE) if LINK.search(t)), None)
        )
        username, token = LINK.search(link_text).groups()
        assert username == tg.username and len(token) == 22

        # Bob, who reads English, opens the link.
        tg.push_message(f"/start {token}", user_id=BOB, first_name="Bob", language_code="en")
        shown = await tg.wait_for(lambda: [m for m in tg.sent(BOB) if m.text])
        assert shown[0].text.startswith("🎬 A shared request:")
        assert "кот играет на пианино" in shown[0].text and "Seed: 77" in shown[0].text
        assert str(ALICE) not in shown[0].text and "Иван" not in shown[0].text
        (render,) = buttons(shown[0].reply_markup)
        assert render["text"] == "🎬 Make this video"
        assert render["callback_data"] == ShareRunCb(token=token).pack()

        press = tg.push_callback(
            render["callback_data"],
            user_id=BOB,
            message_id=shown[0].message_id,
            language_code="en",
        )
        assert await answered(tg, press) == "🎬 Request #1 is queued."
        (bobs,) = await tg.wait_for(lambda: tg.videos(BOB))
        alices = await app.jobs.get(1)
        bob_job = (await app.jobs.user_jobs(BOB, limit=5))[0]
    assert bob_job.user_id == BOB and bob_job.source == "share" and bob_job.number == 1
    assert bob_job.options == alices.options and bob_job.options.seed == 77
    assert len(backend.runs) == 2 and backend.runs[0] == backend.runs[1]
    assert "Seed: 77" in bobs.params["caption"]  # the caption in Bob's language
    assert len(tg.videos(ALICE)) == 1


async def test_bad_links_and_forged_buttons_queue_nothing(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("/start " + "A" * 22, user_id=BOB)
        tg.push_message("/start not-a-token!", user_id=BOB)
        await tg.wait_for(lambda: len(tg.texts_to(BOB)) == 2)
        assert tg.texts_to(BOB) == [share_texts.link_invalid()] * 2
        tg.push_callback(ShareRunCb(token="B" * 22).pack(), user_id=BOB, message_id=1)
        tg.push_callback("shl:12345", user_id=BOB, message_id=1)
        await tg.wait_for(lambda: len(tg.calls_of("answerCallbackQuery")) == 2)
        assert await app.jobs.user_jobs(BOB, limit=5) == []
    assert backend.runs == []


async def test_a_blocked_word_is_refused_in_both_languages(
    tg: FakeTelegram, tmp_path: Path, words: Path
) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend, blocked_words_file=words) as app:
        first = tg.push_message("Взрывами снесло крышу", user_id=ALICE)
        second = tg.push_message("/gen two bombs --steps 4", user_id=ALICE)
        await tg.wait_for(lambda: len(tg.texts_to(ALICE)) == 2)
        replies = tg.sent(ALICE)
        assert [m.text for m in replies] == [policy_texts.refused()] * 2
        assert {m.reply_to for m in replies} == {first["message_id"], second["message_id"]}
        assert await app.jobs.user_jobs(ALICE, limit=5) == []
        assert (await app.context.policy.counts.counts())["prompt"] == (2, 2)
    assert backend.runs == [] and tg.videos() == []


async def test_a_blocked_translation_is_stopped_in_the_worker(
    tg: FakeTelegram, tmp_path: Path, words: Path
) -> None:
    """The Russian text passes, its English translation names a blocked word: the worker fails
    the job before the first step, never shows or stores the translation, and counts it."""
    backend = FakeBackend(translation="a bomb falls on the town")
    async with running_bot(tg, tmp_path, backend, blocked_words_file=words) as app:
        tg.push_message("что-то падает на город", user_id=ALICE)
        await tg.wait_for(lambda: policy_texts.render_refused() in tg.texts_to(ALICE))
        job = await app.jobs.get(1)
        counts = await app.context.policy.counts.counts()
        statuses = [t for m in tg.sent(ALICE) for _, t in m.edits] + tg.texts_to(ALICE)
    assert job.status == "failed" and job.error == FailReason.CONTENT_POLICY
    assert job.started_at is None  # not charged to the daily budget
    assert job.prompt_en is None and not any("bomb" in t for t in statuses)
    assert backend.steps_done == 0 and tg.videos() == []
    assert counts["render"] == (1, 1) and counts["prompt"] == (0, 0)


async def test_a_flagged_video_is_withheld_and_the_admin_told(
    tg: FakeTelegram, tmp_path: Path, classifiers: dict[str, Path]
) -> None:
    backend = FakeBackend()
    async with running_bot(
        tg, tmp_path, backend, nsfw_model=str(classifiers["nsfw"]), admin_ids=[ADMIN]
    ) as app:
        tg.push_message("кот на пляже", user_id=ALICE)
        await tg.wait_for(lambda: policy_texts.withheld() in tg.texts_to(ALICE))
        alert = await tg.wait_for(lambda: tg.texts_to(ADMIN))
        job = await app.jobs.get(1)
        counts = await app.context.policy.counts.counts()
    assert tg.calls_of("sendVideo") == [] and tg.videos() == []  # exactly zero videos sent
    assert job.status == "failed" and job.error == FailReason.WITHHELD
    assert not (tmp_path / "videos" / "job-1.mp4").exists()
    assert list((tmp_path / "videos").glob("job-1*")) == []  # the thumbnail too
    assert alert == [policy_texts.admin_withheld(1, ALICE)]
    assert "кот" not in alert[0]  # no prompt, no media: ids only
    assert not tg.calls_of("sendPhoto", ADMIN) and not tg.calls_of("sendVideo", ADMIN)
    assert counts["video"] == (1, 1)


async def test_a_clean_video_is_delivered(
    tg: FakeTelegram, tmp_path: Path, classifiers: dict[str, Path]
) -> None:
    backend = FakeBackend()
    async with running_bot(
        tg, tmp_path, backend, nsfw_model=str(classifiers["normal"]), admin_ids=[ADMIN]
    ) as app:
        tg.push_message("кот на пляже", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE))
        job = await app.jobs.get(1)
    assert job.status == "delivered" and tg.texts_to(ADMIN) == []
