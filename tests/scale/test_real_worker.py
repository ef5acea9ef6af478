"""``python -m bot.worker`` with a real model: the tiny random-weight Wan and Marian checkpoints
(tests/conftest.py) loaded through the project's own loader, exactly as the bot loads them, in
a worker process without BOT_TOKEN; the front end (``ROLE=frontend``, in this process) takes
the model's bounds from the worker's registration and delivers the video it rendered."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.__main__ import build_app
from bot.config import Settings
from bot.storage import db
from bot.storage.workers import WorkerStore
from tests.fakes.telegram import FakeTelegram
from tests.reliability.harness import base_env


@pytest.mark.slow
async def test_a_worker_process_renders_with_the_real_pipeline(
    tmp_path: Path, tiny_wan_dir: Path, tiny_marian_dir: Path
) -> None:
    shared = {
        "DATABASE_PATH": str(tmp_path / "bot.sqlite3"),
        "VIDEO_DIR": str(tmp_path / "videos"),
        "T2V_MODEL": str(tiny_wan_dir),
        "TRANSLATOR_MODEL": str(tiny_marian_dir),
        "DEVICE": "cpu",
        "DEFAULT_SIZE": "64x64",
        "DEFAULT_FRAMES": "9",
        "DEFAULT_STEPS": "2",
        "MAX_COST_PER_JOB": "0",
        "LEASE_SECONDS": "5",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.worker", cwd=tmp_path,
            env={**base_env(), **shared, "WORKER_ID": "cpu0"}, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        async with FakeTelegram() as tg:
            settings = Settings(
                _env_file=None,
                bot_token=tg.token,
                telegram_api_url=tg.base_url,
                role="frontend",
                status_min_interval=0.2,
                polling_timeout=1,
                **{k.lower(): v for k, v in shared.items()},
            )
            # Waits for the worker to register (its model loads first).
            app = await asyncio.wait_for(build_app(settings), 120)
            task = asyncio.create_task(app.run(handle_signals=False))
            try:
                await asyncio.wait_for(app.started.wait(), 30)
                assert app.worker is None and app.context.model.defaults.width == 64
                tg.push_message("кот играет на пианино", user_id=4242)
                # PREVIEW=on: the video is edited into the status photo (no sendVideo).
                await tg.wait_for(lambda: tg.video_uploads(4242), timeout=120)
                await tg.wait_for(lambda: tg.video_message_count(4242) == 1, timeout=10)
                job = await app.jobs.get(1)
            finally:
                await app.stop()
                await task
        assert (job.worker_id, job.attempts) == ("cpu0", 1)
        assert job.prompt_en  # translated in the worker by the tiny Marian model
        os.kill(worker.pid, signal.SIGTERM)
        assert await asyncio.wait_for(worker.wait(), 60) == 0, log_path.read_text()[-3000:]
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    conn = await db.connect(tmp_path / "bot.sqlite3")
    try:
        row = await WorkerStore(conn).latest()
    finally:
        await conn.close()
    assert row is not None and row.worker_id == "cpu0" and row.stopped_at is not None
    assert "Loading" in log_path.read_text()  # the bot's own loader (bot/backend.py)
