"""The live preview, delivery into the status message, and the «✖ Cancel» button, end to end.

The real bot (``build_app`` + ``App.run``) against the fake Bot API, with ``PREVIEW=on`` (the
default; most other e2e tests run ``PREVIEW=off``): the status message is a photo whose picture
follows the render (the fake backend reports a preview JPEG per step, as ``pipeline/preview.py``
does), and the finished video replaces it by ``editMessageMedia``.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import use_locale
from bot.storage.jobs import JobStatus
from bot.texts import status as status_texts
from tests.e2e.harness import answered, running_bot
from tests.fakes.backend import FakeBackend
from tests.fakes.mp4 import read_mp4
from tests.fakes.telegram import Call, FakeTelegram, SentMessage

pytestmark = pytest.mark.e2e

ALICE, BOB, ADMIN = 1001, 2002, 9009


def decode(data: bytes, tmp_path: Path) -> tuple[int, tuple[int, int]]:
    path = tmp_path / f"check-{time.monotonic_ns()}.mp4"
    path.write_bytes(data)
    mp4 = read_mp4(path)
    return len(mp4.frames), (mp4.width, mp4.height)


def buttons(markup: Any) -> list[str]:
    """Callback data of every button of a keyboard (as sent, JSON or dict)."""
    if isinstance(markup, str):
        markup = json.loads(markup)
    if not markup:
        return []
    return [b.get("callback_data", "") for row in markup["inline_keyboard"] for b in row]


def status_photo(tg: FakeTelegram, chat_id: int) -> Call:
    (call,) = tg.calls_of("sendPhoto", chat_id, ok=True)
    return call


def message(tg: FakeTelegram, chat_id: int, message_id: int) -> SentMessage:
    return tg.messages[(chat_id, message_id)]


def media_edits(tg: FakeTelegram, chat_id: int, kind: str) -> list[Call]:
    return [
        c
        for c in tg.calls_of("editMessageMedia", chat_id, ok=True)
        if c.params["media"]["type"] == kind
    ]


async def test_status_photo_shows_previews_then_becomes_the_one_video(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend(previews=True, step_delay=0.3)
    async with running_bot(tg, tmp_path, backend, preview=True) as app:
        request = tg.push_message("кот играет на пианино --steps 8", user_id=ALICE)
        await tg.wait_for(lambda: media_edits(tg, ALICE, "photo"), timeout=15)
        # While it renders the status photo carries the cancel button.
        photo = status_photo(tg, ALICE)
        status_id = photo.result["message_id"]
        assert message(tg, ALICE, status_id).media == "photo"
        assert "cxl:1" in buttons(message(tg, ALICE, status_id).reply_markup)
        job = await wait_delivered(app, 1)
    # The status photo answered the request, with a placeholder picture and the status caption.
    assert photo.params["reply_parameters"]["message_id"] == request["message_id"]
    assert photo.file("photo").data[:2] == b"\xff\xd8"
    assert 0 < len(photo.params["caption"]) <= 1024
    # Previews made by the worker replaced the picture during the render.
    shown = [tg.media_upload(c).data for c in media_edits(tg, ALICE, "photo")]
    assert shown and all(jpeg in backend.previews_sent for jpeg in shown)
    # Then the video replaced the preview in the same message: MP4, thumbnail, streaming, buttons.
    (video_edit,) = media_edits(tg, ALICE, "video")
    assert video_edit.params["message_id"] == status_id
    media = video_edit.params["media"]
    assert media["supports_streaming"] is True and (media["width"], media["height"]) == (64, 64)
    assert tg.media_upload(video_edit, "thumbnail").data[:2] == b"\xff\xd8"
    assert decode(tg.media_upload(video_edit).data, tmp_path) == (9, (64, 64))
    final = message(tg, ALICE, status_id)
    assert final.media == "video" and not final.deleted and len(final.caption or "") <= 1024
    assert buttons(final.reply_markup)[0] == "rep:1" and "cxl:1" not in buttons(final.reply_markup)
    # Exactly one video for the user, no sendVideo; a «done» reply notifies (edits do not).
    assert tg.video_message_count(ALICE) == 1 and not tg.calls_of("sendVideo")
    done = [c for c in tg.calls_of("sendMessage", ALICE, ok=True) if "Готово" in c.params["text"]]
    assert len(done) == 1 and done[0].params["reply_parameters"]["message_id"] == status_id
    assert job is not None and job.status == JobStatus.DELIVERED
    assert job.result_message_id == status_id and (job.file_id or "").startswith("video-file")


async def wait_delivered(app: Any, job_id: int, timeout: float = 20.0) -> Any:
    """The job once it is final (delivered, cancelled, failed…)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = await app.jobs.get(job_id)
        if job is not None and job.is_final:
            return job
        await asyncio.sleep(0.05)
    raise TimeoutError(f"job {job_id} not final within {timeout} s")


async def test_deleted_status_message_falls_back_to_send_video(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    gate = threading.Event()
    async with running_bot(tg, tmp_path, FakeBackend(gate=gate), preview=True) as app:
        request = tg.push_message("кот", user_id=ALICE)
        photo = await tg.wait_for(lambda: tg.calls_of("sendPhoto", ALICE, ok=True))
        tg.messages[(ALICE, photo[0].result["message_id"])].deleted = True  # the user deleted it
        gate.set()
        job = await wait_delivered(app, 1)
    assert job.status == JobStatus.DELIVERED
    (video,) = tg.videos(ALICE)
    assert video.params["reply_parameters"]["message_id"] == request["message_id"]
    assert job.result_message_id == video.result["message_id"]
    assert tg.video_message_count(ALICE) == 1


async def test_a_job_that_fails_before_its_status_photo_lands_says_so_once(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """The render fails while the status photo is still uploading: the reason goes into that
    photo's caption once, not also into a second message beside it."""
    tg.slow("sendPhoto", 0.5, times=1)
    backend = FakeBackend(fail_with=RuntimeError("boom"))
    async with running_bot(tg, tmp_path, backend, preview=True) as app:
        tg.push_message("кот", user_id=ALICE)
        await tg.wait_for(lambda: backend.runs, timeout=10)
        job = await wait_delivered(app, 1)
        await tg.wait_for(lambda: tg.calls_of("editMessageCaption", ALICE, ok=True), timeout=10)
        await asyncio.sleep(0.3)  # nothing more arrives
    assert job.status == JobStatus.FAILED
    with use_locale("ru"):
        reason = status_texts.failure(job.error)
    (status,) = tg.sent(ALICE)  # the status photo, and nothing beside it
    assert status.method == "sendPhoto" and status.caption == reason
    assert not buttons(status.reply_markup)


async def test_preview_off_keeps_the_text_status_with_a_cancel_button(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend(previews=True, step_delay=0.1)
    async with running_bot(tg, tmp_path, backend, preview=False) as app:
        tg.push_message("кот", user_id=ALICE)
        job = await wait_delivered(app, 1)
    assert job.status == JobStatus.DELIVERED
    assert not tg.calls_of("sendPhoto") and not tg.calls_of("editMessageMedia")
    status = tg.calls_of("sendMessage", ALICE, ok=True)[0]
    assert "cxl:1" in buttons(status.params["reply_markup"])
    assert len(tg.videos(ALICE)) == 1


# ------------------------------------------------------------------ the cancel button


async def start_long_job(tg: FakeTelegram, app: Any, backend: FakeBackend) -> int:
    """ALICE's job #1 renders (slowly); returns its status message id."""
    tg.push_message("кот --steps 150", user_id=ALICE)
    await tg.wait_for(lambda: backend.steps_done >= 1, timeout=15)
    photo = await tg.wait_for(lambda: tg.calls_of("sendPhoto", ALICE, ok=True))
    return int(photo[0].result["message_id"])


async def test_cancel_button_by_the_owner_stops_the_render(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend(step_delay=0.05)
    async with running_bot(tg, tmp_path, backend, preview=True) as app:
        status_id = await start_long_job(tg, app, backend)
        press = tg.push_callback("cxl:1", user_id=ALICE, message_id=status_id)
        answer = await answered(tg, press)
        job = await wait_delivered(app, 1)
        await tg.wait_for(lambda: backend.cancelled == 1)
        await tg.wait_for(
            lambda: "cxl:1" not in buttons(message(tg, ALICE, status_id).reply_markup)
        )
    assert job.status == JobStatus.CANCELLED
    assert "#1" in answer and backend.steps_done < 150
    final = message(tg, ALICE, status_id)
    assert "отмен" in (final.caption or "").lower() and buttons(final.reply_markup) == []
    assert tg.video_message_count(ALICE) == 0


async def test_cancel_button_by_an_admin(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend(step_delay=0.05)
    async with running_bot(tg, tmp_path, backend, preview=True, admin_ids=[ADMIN]) as app:
        status_id = await start_long_job(tg, app, backend)
        # The admin sees ALICE's status message in a group, say; the press carries its job id.
        press = tg.push_callback("cxl:1", user_id=ADMIN, chat_id=ALICE, message_id=status_id)
        await answered(tg, press)
        job = await wait_delivered(app, 1)
        await tg.wait_for(lambda: "администратор" in (message(tg, ALICE, status_id).caption or ""))
    assert job.status == JobStatus.CANCELLED and backend.cancelled == 1


async def test_forged_cancel_by_another_user_changes_nothing(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    async with running_bot(tg, tmp_path, backend, preview=True) as app:
        tg.push_message("кот", user_id=ALICE)
        photo = await tg.wait_for(lambda: tg.calls_of("sendPhoto", ALICE, ok=True))
        status_id = photo[0].result["message_id"]
        # BOB forges ALICE's button (his own chat, or ALICE's message id): refused, said so.
        for data in ("cxl:1", "cxl:999", "cxl:0", "cxl:-5"):
            press = tg.push_callback(data, user_id=BOB, message_id=status_id, chat_id=ALICE)
            text = await answered(tg, press)
            assert "ничего не изменено" in text, (data, text)
        assert (await app.jobs.get(1)).status in JobStatus.ACTIVE  # type: ignore[union-attr]
        gate.set()
        job = await wait_delivered(app, 1)
    assert job.status == JobStatus.DELIVERED and backend.cancelled == 0
    assert tg.video_message_count(ALICE) == 1


async def test_cancel_pressed_after_the_job_ended(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path, FakeBackend(), preview=True) as app:
        tg.push_message("кот", user_id=ALICE)
        job = await wait_delivered(app, 1)
        press = tg.push_callback("cxl:1", user_id=ALICE, message_id=job.status_message_id)
        text = await answered(tg, press)
        after = await app.jobs.get(1)
    assert job.status == JobStatus.DELIVERED and after is not None
    assert after.status == JobStatus.DELIVERED and "#1" in text
    assert tg.video_message_count(ALICE) == 1


@pytest.mark.slow
async def test_tiny_model_preview_reaches_the_status_photo(
    tg: FakeTelegram, tmp_path: Path, tiny_wan_dir: Path
) -> None:
    """The real pipeline (tiny random Wan, loaded by the bot's own loader) makes previews from
    its latents; the status photo shows them, then becomes the video."""
    from bot.__main__ import build_app
    from pipeline.preview import fit_size
    from tests.e2e.harness import mode_overrides
    from tests.fakes.telegram import bot_settings

    settings = bot_settings(
        tg,
        tmp_path,
        **mode_overrides("polling"),
        preview=True,
        t2v_model=str(tiny_wan_dir),
        device="cpu",
        default_size="96x64",
        default_frames=9,
        default_steps=12,
    )
    app = await build_app(settings)  # the real load_backend -> pipeline.text2video
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await asyncio.wait_for(app.started.wait(), timeout=15)
        tg.push_message("a cat plays the piano", user_id=ALICE)
        job = await wait_delivered(app, 1, timeout=120)
    finally:
        await app.stop()
        await asyncio.wait_for(task, timeout=30)
    assert job.status == JobStatus.DELIVERED
    previews = media_edits(tg, ALICE, "photo")
    assert previews, "no preview reached the status photo"
    from PIL import Image

    image = Image.open(io.BytesIO(tg.media_upload(previews[-1]).data))
    assert image.format == "JPEG" and image.size == fit_size(96, 64)
    (video,) = media_edits(tg, ALICE, "video")
    assert video.params["message_id"] == job.status_message_id == job.result_message_id
    assert decode(tg.media_upload(video).data, tmp_path) == (9, (96, 64))
    assert tg.video_message_count(ALICE) == 1
