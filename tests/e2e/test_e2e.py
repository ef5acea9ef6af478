"""End to end: the real bot (its own entry point) against the fake Bot API server.

Most tests run the bot in-process (``bot.__main__.build_app`` + ``App.run``, exactly what
``python -m bot`` runs) with the fast fake backend, to exercise the queue, status, delivery,
faults and recovery in a second or two each. The last ones load the real pipeline with tiny
random models, and one runs ``python -m bot`` as a subprocess to kill it with SIGKILL mid-render.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bot.__main__ import build_app
from bot.config import Settings
from bot.storage import db
from bot.storage.jobs import FailReason, JobStore
from bot.texts import share as share_texts
from bot.texts import status as status_texts
from pipeline.export import export_mp4
from pipeline.options import OptionOverrides, resolve_options
from tests.e2e.harness import mode_overrides, receiving, running_bot
from tests.fakes.backend import FakeBackend, frames_for
from tests.fakes.mp4 import read_mp4
from tests.fakes.telegram import MODES, WEBHOOK_SECRET, Call, FakeTelegram

# Every test runs twice: the bot receiving by long polling, and by a webhook the fake POSTs to.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("mode", MODES)]

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB = 1001, 2002


def decode(data: bytes, tmp_path: Path) -> tuple[int, tuple[int, int]]:
    """Frame count and (width, height) of an MP4, decoded with PyAV."""
    path = tmp_path / f"check-{time.monotonic_ns()}.mp4"
    path.write_bytes(data)
    mp4 = read_mp4(path)
    return len(mp4.frames), (mp4.width, mp4.height)


def sent_texts(tg: FakeTelegram, chat_id: int) -> list[str]:
    """Every text message the bot sent to a chat, as first sent (later edits not applied)."""
    return [c.params["text"] for c in tg.calls_of("sendMessage", chat_id, ok=True)]


def status_edits(tg: FakeTelegram, chat_id: int) -> list[Call]:
    return [c for c in tg.calls_of("editMessageText", chat_id)]


# ------------------------------------------------------------------ the happy path


async def test_a_russian_message_ends_in_one_video_reply(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend) as app:
        request = tg.push_message("кот играет на пианино в космосе", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE))
        await tg.wait_for(lambda: any(m.deleted for m in tg.sent(ALICE)))
        (video,) = tg.videos(ALICE)
        job = await app.jobs.get(1)
    assert video.params["reply_parameters"] == {
        "message_id": request["message_id"],
        "allow_sending_without_reply": True,
    }
    frames, size = decode(video.file("video").data, tmp_path)
    assert (frames, size) == (9, (64, 64))
    assert (video.params["width"], video.params["height"], video.params["duration"]) == (64, 64, 1)
    assert video.params["supports_streaming"] is True
    assert video.file("thumbnail") is not None and video.file("thumbnail").data[:2] == b"\xff\xd8"
    caption = video.params["caption"]
    assert len(caption) <= 1024
    assert "кот играет на пианино" in caption and "a cat plays the piano" in caption
    assert f"Зерно: {job.options.seed}" in caption and "шагов: 4" in caption and "64x64" in caption
    buttons = [b for row in video.params["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == [
        status_texts.button_repeat(),
        share_texts.button_share(),
        status_texts.button_settings(),
    ]
    assert buttons[0]["callback_data"] == "rep:1"
    assert job.status == "delivered" and job.file_id == video.result["video"]["file_id"]
    assert job.result_message_id == video.result["message_id"]
    assert job.gen_seconds is not None and job.video_meta["frames"] == 9
    assert len(backend.runs) == 1 and backend.threads == {next(iter(backend.threads))}
    assert next(iter(backend.threads)).startswith("generate")
    # The status message was finalised (deleted), nothing else was left behind.
    status = [m for m in tg.sent(ALICE) if m.text is not None]
    assert len(status) == 1 and status[0].deleted


async def test_a_long_prompt_gets_a_caption_within_the_limit(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running_bot(tg, tmp_path, max_prompt_chars=1000):
        tg.push_message("очень длинное описание " * 43, user_id=ALICE)  # ~990 characters
        (video,) = await tg.wait_for(lambda: tg.videos(ALICE))
    assert len(video.params["caption"]) <= 1024 and "Зерно:" in video.params["caption"]


async def test_status_edits_are_throttled_and_never_identical(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    interval = 0.4
    async with running_bot(
        tg, tmp_path, FakeBackend(step_delay=0.05), status_min_interval=interval
    ):
        tg.push_message("/gen собака бежит по пляжу --steps 40", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE))
    edits = status_edits(tg, ALICE)
    assert len(edits) >= 3
    assert all(e.ok for e in edits), "an edit was refused (identical text or missing message)"
    gaps = [b.time - a.time for a, b in itertools.pairwise(edits)]
    assert min(gaps) >= interval - 0.02, gaps
    first_text = tg.calls_of("sendMessage", ALICE)[0].params["text"]
    texts_seen = [first_text] + [e.params["text"] for e in edits]
    assert all(a != b for a, b in itertools.pairwise(texts_seen))
    progress = [t for t in texts_seen if "%" in t]
    assert progress and "Шаг" in progress[0] and "▓" in progress[-1]
    assert any("Запрос для модели: a cat plays the piano" in t for t in texts_seen)
    job_id = 1  # the first job of a fresh database; its number is shown for /cancel
    assert texts_seen[0].startswith(f"⏳ Запрос #{job_id} принят.")
    assert all(t.startswith(f"Запрос #{job_id} в работе") for t in texts_seen[1:] if "%" in t)


async def test_the_bot_answers_while_a_video_renders(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend(step_delay=0.1)  # time.sleep in the worker thread, like a GPU step
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("/gen медленный кот --steps 30", user_id=ALICE)
        await tg.wait_for(lambda: backend.started.is_set())
        await asyncio.sleep(0.2)
        sent = time.monotonic()
        tg.push_message("/help", user_id=BOB)
        (reply,) = await tg.wait_for(lambda: tg.calls_of("sendMessage", BOB))
        latency = reply.time - sent
        assert not tg.videos(ALICE), "the render should still be running"
    print(f"\n/help answered in {latency * 1000:.0f} ms while a video rendered")
    assert latency < 1.0


async def test_upload_overlaps_the_next_render(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend()
    tg.slow("sendVideo", 1.0)
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("первый кот", user_id=ALICE)
        tg.push_message("второй кот", user_id=BOB)
        await tg.wait_for(lambda: len(tg.videos()) == 2, timeout=15)
    first_upload = min(tg.videos(), key=lambda c: c.time)
    assert len(backend.run_started) == 2
    assert backend.run_started[1] < first_upload.time + 1.0 - 0.3


async def test_queued_positions_are_refreshed_when_the_queue_moves(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate, step_delay=0.2)  # each job outlasts a refresh (0.2 s)
    users = [3001, 3002, 3003]
    async with running_bot(tg, tmp_path, backend):
        for user in users:
            tg.push_message(f"кот {user}", user_id=user)
        await tg.wait_for(lambda: all(tg.calls_of("sendMessage", u) for u in users))
        third = tg.calls_of("sendMessage", users[2])[0]
        assert "Место в очереди: 2" in third.params["text"]
        gate.set()
        await tg.wait_for(lambda: len(tg.videos()) == 3, timeout=15)
    third_texts = [e.params["text"] for e in status_edits(tg, users[2])]
    assert any("Место в очереди: 1" in t for t in third_texts), third_texts
    assert any("Видео будет примерно через" in t for t in third_texts), third_texts


# ------------------------------------------------------------------ faults


async def test_429_on_sends_is_survived(tg: FakeTelegram, tmp_path: Path) -> None:
    tg.fail("sendMessage", status=429, retry_after=1)
    tg.fail("sendVideo", status=429, retry_after=1)
    async with running_bot(tg, tmp_path):
        tg.push_message("кот под дождём", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=15)
        await asyncio.sleep(0.3)
    assert [c.status for c in tg.calls_of("sendVideo")] == [429, 200]
    assert [c.status for c in tg.calls_of("sendMessage")] == [429, 200]


async def test_a_blocked_user_does_not_stop_others(tg: FakeTelegram, tmp_path: Path) -> None:
    gate = threading.Event()
    async with running_bot(tg, tmp_path, FakeBackend(gate=gate)) as app:
        tg.push_message("кот Алисы", user_id=ALICE)
        tg.push_message("кот Боба", user_id=BOB)
        await tg.wait_for(lambda: tg.calls_of("sendMessage", BOB))
        tg.block(ALICE)  # Alice blocks the bot while her video renders
        gate.set()
        await tg.wait_for(lambda: tg.videos(BOB), timeout=15)
        alice, bob = await app.jobs.get(1), await app.jobs.get(2)
    assert alice.status == "undeliverable" and "blocked" in (alice.error or "")
    assert bob.status == "delivered"
    assert tg.videos(ALICE) == [] and len(tg.videos(BOB)) == 1


async def test_a_generation_error_fails_only_that_job(tg: FakeTelegram, tmp_path: Path) -> None:
    backend = FakeBackend(fail_with=RuntimeError("CUDA out of memory. Tried to allocate 20 GiB"))
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("огромный кот", user_id=ALICE)
        await tg.wait_for(
            lambda: any(m.text == status_texts.failure("out_of_memory") for m in tg.sent(ALICE))
        )
        tg.push_message("маленький кот", user_id=ALICE)
        await tg.wait_for(lambda: tg.videos(ALICE))
        failed, ok = await app.jobs.get(1), await app.jobs.get(2)
    assert failed.status == "failed" and failed.error == FailReason.OUT_OF_MEMORY
    assert ok.status == "delivered" and backend.freed == 1
    assert "--frames" in status_texts.failure("out_of_memory") and "--size" in status_texts.failure(
        "out_of_memory"
    )


async def test_a_video_over_the_upload_limit_is_refused_politely(
    tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Settings, "upload_limit_bytes", property(lambda self: 2000))
    async with running_bot(tg, tmp_path) as app:
        tg.push_message("кот", user_id=ALICE)
        await tg.wait_for(
            lambda: any(m.text == status_texts.failure("too_large") for m in tg.sent(ALICE))
        )
        job = await app.jobs.get(1)
    assert job.status == "failed" and tg.calls_of("sendVideo") == []


async def test_cancel_stops_a_running_job_and_the_loop_goes_on(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    async with running_bot(tg, tmp_path, backend) as app:
        tg.push_message("кот, которого отменят", user_id=ALICE)
        tg.push_message("кот Боба", user_id=BOB)
        await tg.wait_for(lambda: backend.started.is_set())
        assert await app.jobs.cancel(1) is not None
        assert app.worker.cancel(1) is True
        await tg.wait_for(lambda: len(backend.runs) == 2)
        gate.set()
        await tg.wait_for(lambda: tg.videos(BOB))
        cancelled = await app.jobs.get(1)
    assert cancelled.status == "cancelled" and backend.cancelled == 1
    assert tg.videos(ALICE) == []


async def test_a_cancel_between_claim_and_render_wastes_no_gpu_time(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """/cancel can land after the claim but before the loop has a cancel flag to set."""
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend) as app:
        claim = app.jobs.claim

        async def claim_then_cancel(*args: Any) -> Any:
            job = await claim(*args)
            if job is not None and job.user_id == ALICE:
                assert await app.jobs.cancel(job.id) is not None  # what /cancel does first
                assert app.worker.cancel(job.id) is False  # ...and finds no flag yet
            return job

        app.jobs.claim = claim_then_cancel  # type: ignore[method-assign]
        tg.push_message("кот, которого отменят сразу", user_id=ALICE)
        await tg.wait_for(
            lambda: (app.worker.current_job_id is None) and tg.calls_of("sendMessage", ALICE)
        )
        tg.push_message("кот Боба", user_id=BOB)
        await tg.wait_for(lambda: tg.videos(BOB))
        cancelled = await app.jobs.get(1)
    assert cancelled.status == "cancelled"
    assert [o.prompt for o in backend.runs] == ["кот Боба"]
    assert tg.videos(ALICE) == []


# ------------------------------------------------------------------ durability


async def _prepare_interrupted_database(data_dir: Path, video_dir: Path) -> dict[str, int]:
    """A database as a crash leaves it: generated-not-sent, running, delivered, queued jobs."""
    conn = await db.connect(data_dir / "bot.sqlite3")
    await db.migrate(conn)
    jobs = JobStore(conn)
    defaults, limits = FakeBackend().defaults, FakeBackend().limits

    def options(prompt: str, seed: int):
        return resolve_options(prompt, OptionOverrides(seed=seed), defaults, limits)

    ids: dict[str, int] = {}
    # Interrupted three times already: fails with a message instead of a 4th try.
    worn = await jobs.create(5005, 5005, 1, "кот-неудачник", options("кот-неудачник", 5))
    for _ in range(3):
        await jobs.claim_next()
        if _ < 2:
            await jobs.recover(max_attempts=3)
    ids["worn"] = worn.id
    generated = await jobs.create(ALICE, ALICE, 11, "готовый кот", options("готовый кот", 1))
    await jobs.claim_next()
    video = export_mp4(frames_for(generated.options), video_dir / "job-gen.mp4", 8)
    meta = {**video.to_dict(), "seed": 1, "prompt_en": "a ready cat"}
    await jobs.mark_generated(generated.id, str(video.path), meta, 1.5)
    ids["generated"] = generated.id
    running = await jobs.create(BOB, BOB, 21, "прерванный кот", options("прерванный кот", 2))
    await jobs.claim_next()
    ids["running"] = running.id
    delivered = await jobs.create(
        3003, 3003, 31, "доставленный кот", options("доставленный кот", 3)
    )
    await jobs.claim_next()
    await jobs.mark_generated(delivered.id, str(video.path), meta, 1.0)
    await jobs.mark_delivered(delivered.id, "file-x", 32)
    ids["delivered"] = delivered.id
    queued = await jobs.create(4004, 4004, 41, "ждущий кот", options("ждущий кот", 4))
    ids["queued"] = queued.id
    await conn.close()
    return ids


async def test_restart_recovers_every_job_and_sends_nothing_twice(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "videos").mkdir()
    ids = await _prepare_interrupted_database(tmp_path, tmp_path / "videos")
    backend = FakeBackend()
    async with running_bot(tg, tmp_path, backend) as app:
        await tg.wait_for(lambda: len(tg.videos()) == 3, timeout=15)
        await asyncio.sleep(0.5)  # room for a duplicate to show up, if there were one
        final = {name: await app.jobs.get(job_id) for name, job_id in ids.items()}
    assert len(tg.videos()) == 3
    assert sorted(c.chat_id for c in tg.videos()) == sorted([ALICE, BOB, 4004])
    # The generated video was sent from its file, not rendered again.
    assert sorted(o.prompt for o in backend.runs) == ["ждущий кот", "прерванный кот"]
    (ready,) = tg.videos(ALICE)
    assert ready.params["reply_parameters"]["message_id"] == 11
    assert {job.status for job in final.values()} == {"delivered", "failed"}
    assert final["worn"].status == "failed" and final["running"].attempts == 2
    assert any(status_texts.resumed() in t for t in sent_texts(tg, BOB))
    assert any(t == status_texts.failure("interrupted") for t in tg.texts_to(5005))
    assert tg.calls_of("sendVideo", 3003) == []


async def test_graceful_stop_leaves_the_running_job_for_the_next_start(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend(step_delay=0.05)
    async with running_bot(tg, tmp_path, backend):
        tg.push_message("/gen долгий кот --steps 100", user_id=ALICE)
        await tg.wait_for(lambda: backend.started.is_set())
        await asyncio.sleep(0.3)
        stopped = time.monotonic()
    stop_seconds = time.monotonic() - stopped
    conn = await db.connect(tmp_path / "bot.sqlite3")
    job = await JobStore(conn).get(1)
    await conn.close()
    assert job.status == "running" and backend.cancelled == 1 and tg.videos() == []
    assert stop_seconds < 5
    async with running_bot(tg, tmp_path, FakeBackend()):
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=15)
        await asyncio.sleep(0.3)
    assert len(tg.videos(ALICE)) == 1
    assert any(status_texts.resumed() in t for t in sent_texts(tg, ALICE))


# ------------------------------------------------------------------ the real pipeline, tiny models


def _tiny_settings(tg: FakeTelegram, data_dir: Path, wan: Path, marian: Path) -> dict[str, str]:
    receive = {name.upper(): value for name, value in mode_overrides().items()}
    return {
        **receive,
        "BOT_TOKEN": tg.token,
        "TELEGRAM_API_URL": tg.base_url,
        "DATABASE_PATH": str(data_dir / "bot.sqlite3"),
        "VIDEO_DIR": str(data_dir / "videos"),
        "T2V_MODEL": str(wan),
        "TRANSLATOR_MODEL": str(marian),
        "DEVICE": "cpu",
        "DEFAULT_SIZE": "64x64",
        "DEFAULT_FRAMES": "9",
        "DEFAULT_STEPS": "2",
        "MAX_COST_PER_JOB": "0",  # --steps 40 over a 2-step default job: 20 ordinary videos
        "STATUS_MIN_INTERVAL": "0.2",
        "QUEUE_REFRESH_INTERVAL": "0.2",
        "POLLING_TIMEOUT": "1",
        "LOG_LEVEL": "INFO",
        # Text status and sendVideo, which these tests read; the real model with the live
        # preview and delivery into the status photo: tests/e2e/test_preview.py.
        "PREVIEW": "off",
    }


@pytest.mark.slow
async def test_tiny_model_end_to_end(
    tg: FakeTelegram, tmp_path: Path, tiny_wan_dir: Path, tiny_marian_dir: Path
) -> None:
    env = _tiny_settings(tg, tmp_path, tiny_wan_dir, tiny_marian_dir)
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    loaded = time.monotonic()
    app = await build_app(settings)  # the real load_backend → pipeline.text2video
    load_seconds = time.monotonic() - loaded
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await asyncio.wait_for(app.started.wait(), timeout=10)
        timings = []
        for text in ("кот играет на пианино в космосе", "собака бежит по пляжу на закате"):
            sent = time.monotonic()
            request = tg.push_message(text, user_id=ALICE)
            count = len(tg.videos(ALICE))
            await tg.wait_for(lambda count=count: len(tg.videos(ALICE)) > count, timeout=60)
            timings.append(time.monotonic() - sent)
        job = await app.jobs.get(2)
    finally:
        await app.stop()
        await task
    videos = tg.videos(ALICE)
    assert len(videos) == 2
    assert videos[-1].params["reply_parameters"]["message_id"] == request["message_id"]
    assert decode(videos[-1].file("video").data, tmp_path) == (9, (64, 64))
    assert job.status == "delivered" and job.prompt_en  # translated by the tiny Marian model
    print(
        f"\ntiny model: loaded in {load_seconds:.1f} s; message → video "
        f"{timings[0]:.2f} s (first), {timings[1]:.2f} s (warm)"
    )


async def _start_process(
    env: dict[str, str], cwd: Path, log_path: Path
) -> asyncio.subprocess.Process:
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    log = log_path.open("ab")
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=cwd, env=full_env, stdout=log, stderr=log
        )
    finally:
        log.close()


@pytest.mark.slow
async def test_kill_9_mid_render_then_restart_delivers_exactly_once(
    tg: FakeTelegram, tmp_path: Path, tiny_wan_dir: Path, tiny_marian_dir: Path
) -> None:
    env = _tiny_settings(tg, tmp_path, tiny_wan_dir, tiny_marian_dir)
    log_path = tmp_path / "bot.log"
    first = await _start_process(env, tmp_path, log_path)
    try:
        await tg.wait_for(lambda: receiving(tg), timeout=60)
        tg.push_message("/gen кот играет на пианино --steps 40", user_id=ALICE)
        await tg.wait_for(
            lambda: any(
                "Шаг" in (e.params.get("text") or "") for e in tg.calls_of("editMessageText")
            ),
            timeout=60,
        )
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert tg.videos() == []

    second = await _start_process(env, tmp_path, log_path)
    try:
        await tg.wait_for(lambda: tg.videos(ALICE), timeout=120)
        await asyncio.sleep(1.0)
        second.send_signal(signal.SIGTERM)  # graceful stop: exit code 0
        code = await asyncio.wait_for(second.wait(), timeout=30)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    log_text = log_path.read_text("utf-8", errors="replace")
    assert code == 0, log_text[-3000:]
    assert len(tg.videos(ALICE)) == 1
    assert any(status_texts.resumed() in t for t in sent_texts(tg, ALICE)), log_text[-3000:]
    assert decode(tg.videos(ALICE)[0].file("video").data, tmp_path) == (9, (64, 64))
    assert tg.token.split(":")[1] not in log_text and WEBHOOK_SECRET not in log_text
    conn = await db.connect(tmp_path / "bot.sqlite3")
    job = await JobStore(conn).get(1)
    await conn.close()
    assert job.status == "delivered" and job.attempts == 2
