"""``ROLE=frontend``: the Telegram side alone, in its own interpreter, never imports torch, and
validates requests with the model limits a worker registered."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.storage import db
from bot.storage.workers import WorkerStore, model_info_dict
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram
from tests.reliability.harness import REPO, base_env, bot_env

SCRIPT = """
import asyncio, sys
from bot.__main__ import build_app
from bot.config import Settings

async def main():
    app = await build_app(Settings())
    task = asyncio.create_task(app.run(handle_signals=False))
    await asyncio.wait_for(app.started.wait(), 60)
    limits = app.context.model.limits
    print("TORCH", "torch" in sys.modules, "DIFFUSERS", "diffusers" in sys.modules, flush=True)
    print("WORKER", app.worker is None, "MAX_STEPS", limits.max_steps, flush=True)
    await app.stop()
    await task

asyncio.run(main())
"""


async def test_frontend_never_imports_torch(tmp_path: Path) -> None:
    backend = FakeBackend()
    conn = await db.connect(tmp_path / "bot.sqlite3")
    try:
        await db.migrate(conn)
        await WorkerStore(conn).register("gpu0", model_info_dict(backend), "cuda:0 (test)")
    finally:
        await conn.close()
    async with FakeTelegram() as tg:
        env = bot_env(tg, tmp_path, role="frontend")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SCRIPT, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "TORCH False DIFFUSERS False" in text, text[-3000:]
    # No loop in this process, and the bounds are the registered worker's.
    assert f"WORKER True MAX_STEPS {backend.limits.max_steps}" in text, text[-3000:]


def test_a_worker_needs_no_token_and_names_a_bad_setting(tmp_path: Path) -> None:
    """``python -m bot.worker`` reads the same settings without ``BOT_TOKEN``; a wrong value is
    named (exit 2) before any model is loaded."""
    import subprocess

    env = {k: v for k, v in base_env().items() if not k.startswith("BOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "bot.worker"],
        cwd=tmp_path,
        env={**env, "LEASE_SECONDS": "0", "DATABASE_PATH": str(tmp_path / "db.sqlite3")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "LEASE_SECONDS" in result.stderr and "BOT_TOKEN" not in result.stderr
