"""Photo → video over the fake Bot API: the real bot fetches the photo with ``getFile`` and the
file URL, queues one image-to-video job, and sends one video that starts from the photo. Every bad
photo gets its own answer and queues nothing; without ``I2V_MODEL`` the answer says so."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bot.i18n import use_locale
from bot.texts import photos as photo_texts
from bot.texts import requests as request_texts
from pipeline.image import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from tests.e2e.harness import reply_to, running_bot
from tests.fakes import images
from tests.fakes.backend import FAKE_IMAGE_MODEL, FakeBackend
from tests.fakes.mp4 import read_mp4
from tests.fakes.telegram import MODES, FakeTelegram

pytestmark = pytest.mark.e2e

ALICE = 1001
RED = (220, 30, 30)
BLUE = (30, 40, 220)


def i2v_backend() -> FakeBackend:
    return FakeBackend(image_model=FAKE_IMAGE_MODEL)


def image_rows(db: Path) -> list[tuple[int, int, int, str, int]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT job_id, width, height, mime, length(data) FROM job_images ORDER BY job_id"
        ).fetchall()


def photo_error(code: str, locale: str = "ru") -> str:
    with use_locale(locale):
        return photo_texts.photo_error(code, MAX_IMAGE_BYTES / 1024 / 1024, MAX_IMAGE_PIXELS / 1e6)


def mean_colour(frame: np.ndarray) -> list[float]:
    return frame.reshape(-1, 3).mean(axis=0).tolist()


@pytest.mark.parametrize("preview", [False, True], ids=["text-status", "photo-status"])
@pytest.mark.parametrize("mode", MODES)
async def test_photo_with_russian_caption_comes_back_as_one_video(
    tg: FakeTelegram, tmp_path: Path, preview: bool
) -> None:
    """PREVIEW=off: the video is sent as a reply to the request; PREVIEW=on: it is edited into
    the status photo (itself a reply to the request). Either way ONE video, from the photo."""
    backend = i2v_backend()
    async with running_bot(tg, tmp_path, backend, preview=preview) as app:
        request = tg.push_photo(
            data=images.solid(320, 180, RED), width=320, height=180,
            caption="кот медленно поворачивает голову",
        )  # fmt: skip
        (upload,) = await tg.wait_for(lambda: tg.video_uploads(ALICE), timeout=20)
        await tg.wait_for(lambda: tg.video_message_count(ALICE) == 1, timeout=5)
        job = await app.jobs.get(1)
        await asyncio.sleep(0.3)  # nothing more arrives
        assert len(tg.video_uploads(ALICE)) == tg.video_message_count(ALICE) == 1
    assert job is not None and job.status == "delivered"
    assert job.prompt == "кот медленно поворачивает голову"
    (shown,) = [m for m in tg.sent(ALICE) if m.media == "video" and not m.deleted]
    assert shown.upload is upload and shown.reply_to == request["message_id"]
    assert shown.method == ("sendPhoto" if preview else "sendVideo")
    # The photo was fetched the Bot API way: getFile, then its file URL.
    assert [c.params["file_id"] for c in tg.calls_of("getFile")] == [
        request["photo"][-1]["file_id"]
    ]
    assert tg.downloads == [f"files/{request['photo'][-1]['file_id']}"]
    # 16:9 photo → a 16:9 size of about the default area (64x64) on 16-pixel sides.
    assert (job.options.width, job.options.height) == (80, 48)
    assert image_rows(tmp_path / "bot.sqlite3") == [
        (1, 80, 48, "image/png", len(backend.images[0]))
    ]
    path = tmp_path / "got.mp4"
    path.write_bytes(upload.data)
    mp4 = read_mp4(path)
    assert (len(mp4.frames), mp4.width, mp4.height) == (9, 80, 48)
    assert mean_colour(mp4.frames[0]) == pytest.approx(RED, abs=12)  # starts from the photo


async def test_generate_as_a_reply_to_a_photo(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = i2v_backend()
    async with running_bot(tg, tmp_path, backend) as app:
        photo = tg.push_photo(data=images.solid(90, 160, BLUE), width=90, height=160)
        assert await reply_to(tg, ALICE, photo) == photo_texts_ru(photo_texts.photo_needs_caption)
        tg.push_message("/generate собака машет хвостом --steps 3", reply_to_message=photo)
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
        job = await app.jobs.get(1)
        assert await app.jobs.get(2) is None
    assert job is not None and job.status == "delivered" and job.options.steps == 3
    assert job.prompt == "собака машет хвостом"
    assert (job.options.width, job.options.height) == (48, 80)  # portrait: 9:16
    assert len(tg.downloads) == 1 and backend.images[0] is not None


async def test_image_sent_as_a_file_and_a_captioned_command(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = i2v_backend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_document(
            images.solid(200, 200, RED, "PNG"), mime_type="image/png", file_name="cat.png",
            caption="кот прыгает",
        )  # fmt: skip
        tg.push_photo(data=images.solid(160, 90, BLUE), caption="/gen волны на море")
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2, timeout=20)
        jobs = {job.prompt: job for job in await app.jobs.user_jobs(ALICE)}
    assert sorted(jobs) == ["волны на море", "кот прыгает"]  # the command is not the prompt
    square, wide = jobs["кот прыгает"], jobs["волны на море"]
    assert (square.options.width, square.options.height) == (64, 64)
    assert (wide.options.width, wide.options.height) == (80, 48)
    assert len(image_rows(tmp_path / "bot.sqlite3")) == 2


def photo_texts_ru(text: object) -> str:
    with use_locale("ru"):
        return text()  # type: ignore[operator]


@pytest.mark.parametrize("locale", ["ru", "en"])
async def test_without_i2v_model_the_reply_says_so(
    tg: FakeTelegram, tmp_path: Path, locale: str
) -> None:
    async with running_bot(tg, tmp_path, FakeBackend()) as app:
        request = tg.push_photo(
            data=images.solid(64, 64, RED), caption="кот бежит", language_code=locale
        )
        answer = await reply_to(tg, ALICE, request)
        reply = tg.push_message("/generate кот бежит", reply_to_message=request,
                                language_code=locale)  # fmt: skip
        second = await reply_to(tg, ALICE, reply)
        assert await app.jobs.count_queued() == 0 and await app.jobs.get(1) is None
    with use_locale(locale):
        expected = photo_texts.photo_unavailable()
    assert answer == expected == second
    assert ("Describe" in answer) == (locale == "en")
    assert not tg.downloads and not tg.calls_of("getFile")


BAD = {
    # kind: (how it is sent, content, error code, downloaded?)
    "corrupt": ("photo", images.truncated_jpeg(), "corrupt", True),
    "pixel_bomb": ("document_png", images.png_bomb(), "too_many_pixels", True),
    "zero_byte": ("document_jpeg", b"", "empty", True),
    "not_an_image_pdf": ("document_pdf", images.NOT_AN_IMAGE, "not_an_image", False),
    "pdf_named_jpeg": ("document_jpeg", images.NOT_AN_IMAGE, "not_an_image", True),
    "too_large": ("photo_huge", images.solid(64, 64, RED), "too_large", False),
}


@pytest.mark.parametrize("kind", sorted(BAD))
async def test_bad_photo_gets_its_message_and_queues_nothing(
    tg: FakeTelegram, tmp_path: Path, kind: str
) -> None:
    how, content, code, downloaded = BAD[kind]
    caption = "кот на луне"
    async with running_bot(tg, tmp_path, i2v_backend()) as app:
        if how == "photo":
            request = tg.push_photo(data=content, caption=caption)
        elif how == "photo_huge":  # Telegram says how big it is: never downloaded
            request = tg.push_photo(data=content, caption=caption, file_size=MAX_IMAGE_BYTES + 1)
        else:
            mime = {"document_png": "image/png", "document_jpeg": "image/jpeg"}.get(
                how, "application/pdf"
            )
            request = tg.push_document(content, mime_type=mime, caption=caption)
        answer = await reply_to(tg, ALICE, request)
        assert await app.jobs.count_queued() == 0 and await app.jobs.get(1) is None
        # The bot still works for this user afterwards.
        tg.push_photo(data=images.solid(64, 64, BLUE), caption="кот на луне")
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
    assert answer == photo_error(code)
    assert bool(tg.downloads[:-1]) == downloaded
    assert len(image_rows(tmp_path / "bot.sqlite3")) == 1


async def test_photo_from_a_banned_user_queues_nothing(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path, i2v_backend()) as app:
        await app.users.touch(ALICE, None, "Иван")
        await app.users.ban(ALICE)
        request = tg.push_photo(data=images.solid(64, 64, RED), caption="кот бежит")
        answer = await reply_to(tg, ALICE, request)
        tg.push_message("/generate кот бежит", reply_to_message=request)
        await asyncio.sleep(0.5)
        assert await app.jobs.get(1) is None
    with use_locale("ru"):
        assert answer == request_texts.banned()
    assert not tg.downloads and not tg.calls_of("getFile")
    assert image_rows(tmp_path / "bot.sqlite3") == []


async def test_history_marks_photo_jobs(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path, i2v_backend()):
        tg.push_photo(data=images.solid(64, 64, RED), caption="кот с фото")
        tg.push_message("собака без фото")
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2, timeout=20)
        history = tg.push_message("/history")
        text = await tg.wait_for(
            lambda: next((t for t in tg.texts_to(ALICE) if "кот с фото" in t), None)
        )
        del history
    lines = text.splitlines()
    assert any(f"{photo_texts.PHOTO_MARK} «кот с фото»" in line for line in lines)
    assert not any(photo_texts.PHOTO_MARK in line for line in lines if "собака" in line)


@pytest.mark.slow
async def test_real_tiny_i2v_model_through_the_bot(
    tg: FakeTelegram, tmp_path: Path, tiny_wan_dir: Path, tiny_wan_i2v_dir: Path
) -> None:
    """The real loader (``load_backend``: T2V_MODEL, then I2V_MODEL) on tiny random Wan
    checkpoints: a photo with a Russian caption comes back as one video of the photo's aspect,
    and the image model's VAE was given the photo (the random VAE does not keep colours, so the
    conditioning input is what is checked)."""
    import torch

    from bot.__main__ import build_app
    from tests.fakes.telegram import bot_settings

    settings = bot_settings(
        tg, tmp_path, t2v_model=str(tiny_wan_dir), i2v_model=str(tiny_wan_i2v_dir),
        device="cpu", default_size="64x64", default_frames=5, default_steps=2,
        default_quality="best",
    )  # fmt: skip
    app = await build_app(settings)  # the real load_backend → pipeline.text2video
    seen: list[torch.Tensor] = []
    pipe = app.worker.backend.inner.image_generator.pipe
    handle = pipe.vae.encoder.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].detach())
    )
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await asyncio.wait_for(app.started.wait(), timeout=30)
        tg.push_photo(data=images.solid(320, 180, RED), caption="кот поворачивает голову")
        (video,) = await tg.wait_for(lambda: tg.videos(ALICE), timeout=120)
        job = await app.jobs.get(1)
    finally:
        handle.remove()
        await app.stop()
        await task
    path = tmp_path / "got.mp4"
    path.write_bytes(video.file("video").data)
    mp4 = read_mp4(path)
    assert job is not None and job.status == "delivered"
    assert (len(mp4.frames), mp4.width, mp4.height) == (5, 80, 64)  # 64 px: the smallest side
    assert len(seen) == 1 and tuple(seen[0].shape[-2:]) == (64, 80)
    pixels = ((seen[0][0, :, 0].mean(dim=(1, 2)) + 1) * 127.5).tolist()
    assert pixels == pytest.approx(RED, abs=3)


async def test_another_variant_of_a_photo_job_animates_the_same_photo(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """«🔁 Ещё вариант» under a photo job's video: the same photo, a new seed, no new download."""
    backend = i2v_backend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_photo(data=images.solid(180, 320, BLUE), caption="кот моргает")
        (video,) = await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
        tg.push_callback("rep:1", message_id=video.result["message_id"])
        await tg.wait_for(lambda: len(tg.videos(ALICE)) == 2, timeout=20)
        first, second = await app.jobs.get(1), await app.jobs.get(2)
    assert first is not None and second is not None
    assert second.prompt == first.prompt and second.options.seed != first.options.seed
    assert (second.options.width, second.options.height) == (48, 80)
    assert backend.images[0] == backend.images[1] is not None
    assert len(tg.downloads) == 1
    assert [row[0] for row in image_rows(tmp_path / "bot.sqlite3")] == [1, 2]


async def test_self_hosted_local_mode_photo_is_read_from_the_shared_disk(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """A self-hosted Bot API server started with ``--local`` answers ``getFile`` with an absolute
    path on its disk (shared with the bot) and serves no download."""
    tg.local_files_dir = tmp_path / "bot-api-files"
    tg.local_files_dir.mkdir()
    backend = i2v_backend()
    async with running_bot(tg, tmp_path, backend):
        tg.push_photo(data=images.solid(64, 64, RED), caption="кот бежит")
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
    assert tg.calls_of("getFile") and not tg.downloads
    assert backend.images[0] is not None


async def test_photo_job_left_when_i2v_model_is_removed_fails_with_a_message(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """Queued with I2V_MODEL, then the operator restarts without it: the photo job is not
    rendered by the text model; it fails at its turn and the user is told why."""
    import threading

    backend = FakeBackend(image_model=FAKE_IMAGE_MODEL, gate=threading.Event())
    async with running_bot(tg, tmp_path, backend):
        tg.push_photo(data=images.solid(64, 64, RED), caption="кот бежит")
        await asyncio.to_thread(backend.started.wait, 10)  # rendering, held at the gate
    text_only = FakeBackend()
    async with running_bot(tg, tmp_path, text_only) as app:
        await tg.wait_for(lambda: any("отключили" in t for t in tg.texts_to(ALICE)), timeout=20)
        job = await app.jobs.get(1)
    assert job is not None and job.status == "failed" and job.error == "no_image_model"
    assert text_only.runs == [] and not tg.videos(ALICE)


async def test_in_a_group_only_a_photo_captioned_with_the_command_is_a_request(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    group = -100500
    backend = i2v_backend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_photo(
            data=images.solid(64, 64, RED), caption="просто фото из отпуска",
            chat_id=group, chat_type="group",
        )  # fmt: skip
        tg.push_photo(
            data=images.solid(64, 64, BLUE), caption="/generate волны бьются о скалы",
            chat_id=group, chat_type="group",
        )  # fmt: skip
        await tg.wait_for(lambda: tg.videos(group), timeout=20)
        await asyncio.sleep(0.3)
        jobs = await app.jobs.user_jobs(ALICE)
    assert [job.prompt for job in jobs] == ["волны бьются о скалы"]
    assert len(tg.downloads) == 1 and len(tg.videos(group)) == 1


async def test_an_album_with_one_caption_is_one_request(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = i2v_backend()
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_photo(data=images.solid(64, 64, RED), caption="кот", media_group_id="album1")
        for colour in (BLUE, RED):
            tg.push_photo(data=images.solid(64, 64, colour), media_group_id="album1")
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
        await asyncio.sleep(0.5)
        jobs = await app.jobs.user_jobs(ALICE)
    assert len(jobs) == 1 and len(tg.downloads) == 1
    with use_locale("ru"):
        hint = photo_texts.photo_needs_caption()
    assert hint not in tg.texts_to(ALICE)


async def test_telegram_failing_to_hand_over_the_photo(tg: FakeTelegram, tmp_path: Path) -> None:
    """The download fails (404), or the cloud API refuses a file over 20 MB at ``getFile``:
    each answered, nothing queued; the next photo works."""
    async with running_bot(tg, tmp_path, i2v_backend()) as app:
        gone = tg.push_message(
            None, photo=[{"file_id": "gone", "file_unique_id": "g", "width": 64, "height": 64}],
            caption="кот",
        )  # fmt: skip
        first = await reply_to(tg, ALICE, gone)
        tg.fail("getFile", status=400, description="Bad Request: file is too big")
        big = tg.push_photo(data=images.solid(64, 64, RED), caption="кот")
        second = await reply_to(tg, ALICE, big)
        assert await app.jobs.get(1) is None
        tg.push_photo(data=images.solid(64, 64, RED), caption="кот")
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=20)
    assert first == photo_texts_ru(photo_texts.photo_download_failed)
    assert second == photo_error("too_large")


async def test_a_photo_over_the_limits_is_refused_before_download(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    import threading

    backend = FakeBackend(image_model=FAKE_IMAGE_MODEL, gate=threading.Event())
    async with running_bot(tg, tmp_path, backend, max_active_jobs_per_user=1) as app:
        tg.push_message("собака бежит")
        await asyncio.to_thread(backend.started.wait, 10)
        request = tg.push_photo(data=images.solid(64, 64, RED), caption="кот бежит")
        answer = await reply_to(tg, ALICE, request)
        assert await app.jobs.get(2) is None
        backend.gate.set()
    with use_locale("ru"):
        assert answer == request_texts.limit_active(1)
    assert not tg.downloads and not tg.calls_of("getFile")
