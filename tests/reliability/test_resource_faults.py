"""The machine misbehaving: VIDEO_DIR unusable or full, the database locked by another process,
the model missing or corrupt at start.

The bot runs as root in CI containers, where permission bits do not stop a write, so "not
writable" is simulated by making ``VIDEO_DIR`` a regular file (every write under it fails with
``NotADirectoryError``/``FileExistsError``, for root too), and "full" by a generator whose write
fails with ``ENOSPC``, exactly as the exporter's would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
    CYRILLIC,
    FIGURES,
    REPO,
    FaultyTelegram,
    ForkServer,
    base_env,
    bot_env,
    db_jobs,
    engine_env,
    wait_all_final,
    wait_for,
    wait_ready,
)


async def test_disk_full_fails_jobs_with_message_then_recovers(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    engine = engine_env(database)
    async with FaultyTelegram() as tg:
        full = fork_server.spawn(
            bot_env(tg, tmp_path, rel_enospc=1, **engine), tmp_path / "bot-1.log"
        )
        try:
            await wait_ready(tg, full)
            for user in (9301, 9302, 9303):
                tg.push_message("кот на луне", user_id=user)
            rows = await wait_all_final(database, 3, full)
            assert full.alive()
        finally:
            await full.terminate()
        for row in rows:
            assert row["status"] == "failed", row
            assert row["error"] == "generation", row  # the reason code; the user reads its text
            assert any(
                CYRILLIC.search(t)
                for t in [m.text or m.caption or "" for m in tg.sent(row["chat_id"])]
            )
        # Space is back: the same bot serves new requests.
        again = fork_server.spawn(bot_env(tg, tmp_path, **engine), tmp_path / "bot-2.log")
        try:
            await wait_ready(tg, again)
            tg.push_message("кот снова", user_id=9301)
            rows = await wait_all_final(database, 4, again)
        finally:
            await again.terminate()
        assert rows[-1]["status"] == "delivered"
    FIGURES["disk_full"] = {"jobs_failed_with_message": 3, "recovered": True}


async def test_video_dir_is_a_file_at_start(fork_server: ForkServer, tmp_path: Path) -> None:
    (tmp_path / "videos").write_text("not a directory")
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(bot_env(tg, tmp_path), tmp_path / "bot.log")
        code = await proc.wait(20)
    assert code != 0
    assert "videos" in proc.output()


async def test_video_dir_unusable_while_running(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """VIDEO_DIR vanishes and a file takes its place mid-run: the job fails with a message (it
    must not stay ``running``), the loop goes on, and works again once the folder is back."""
    videos = tmp_path / "videos"
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(
            bot_env(tg, tmp_path, **engine_env(database)), tmp_path / "bot.log"
        )
        try:
            await wait_ready(tg, proc)
            shutil.rmtree(videos)
            videos.write_text("not a directory")
            tg.push_message("кот на луне", user_id=9311)
            try:
                rows = await wait_all_final(database, 1, proc, 4)
            finally:
                stuck = [r["status"] for r in db_jobs(database)]
                FIGURES["video_dir_replaced_by_file"] = {"job_status_after_4s": stuck}
            assert rows[0]["status"] == "failed" and rows[0]["error"] == "generation"
            assert any(
                CYRILLIC.search(m.text or m.caption or "") for m in tg.sent(rows[0]["chat_id"])
            )
            videos.unlink()
            videos.mkdir()
            tg.push_message("кот снова", user_id=9312)
            rows = await wait_all_final(database, 2, proc)
            assert rows[-1]["status"] == "delivered"
        finally:
            await proc.terminate()


LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("UPDATE users SET banned = banned WHERE 0")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


@pytest.mark.parametrize("seconds", [3.0])
async def test_database_locked_by_another_process(
    fork_server: ForkServer, tmp_path: Path, seconds: float
) -> None:
    """Another process holds ``BEGIN EXCLUSIVE`` for a few seconds while users write and a job
    finishes: the bot waits (busy_timeout 5 s) and nothing is lost or failed."""
    db = tmp_path / "bot.sqlite3"
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(bot_env(tg, tmp_path, rel_step_delay=0.3), tmp_path / "bot.log")
        try:
            await wait_ready(tg, proc)
            tg.push_message("первый кот", user_id=9321)  # renders ~1.2 s, finishes under the lock
            await wait_for(lambda: db_jobs(db), 5, "first job written")
            locker = subprocess.Popen(  # noqa: ASYNC220 - a second process, on purpose
                [sys.executable, "-c", LOCKER, str(db), str(seconds)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
            locked_at = time.monotonic()
            for user in (9322, 9323, 9324):
                tg.push_message("кот под замком", user_id=user)
            rows = await wait_all_final(db, 4, proc, 30)
            waited = time.monotonic() - locked_at
            locker.wait(10)
        finally:
            await proc.terminate()
    assert [r["status"] for r in rows] == ["delivered"] * 4, rows
    assert tg.videos_per_job() == {1: 1, 2: 1, 3: 1, 4: 1}
    assert "Traceback" not in proc.output(), proc.output()[-3000:]
    FIGURES["db_locked"] = {"lock_s": seconds, "all_delivered_after_s": round(waited, 1)}


def corrupt_model_dir(path: Path) -> Path:
    path.mkdir()
    (path / "model_index.json").write_text('{"_class_name": "WanPipeline", "transformer": [')
    return path


def start_real_bot(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    """The genuine ``python -m bot`` (not the fork server): the operator's command."""
    full = base_env()
    full.update(
        BOT_TOKEN="123456789:AAFakeTokenForTests_abcdefghijKLMNOP",
        TELEGRAM_API_URL="http://127.0.0.1:9",  # never reached: the model fails first
        DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
        VIDEO_DIR=str(tmp_path / "videos"),
        TRANSLATOR_MODEL="none",
        DEVICE="cpu",
    )
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_model_missing_or_corrupt_at_start(tmp_path: Path) -> None:
    """Three broken model setups, started at once (each start imports torch: ~10 s on CI)."""
    (tmp_path / "empty").mkdir()
    cases = {
        "missing": {"T2V_MODEL": str(tmp_path / "no-such-model")},
        "corrupt": {"T2V_MODEL": str(corrupt_model_dir(tmp_path / "model"))},
        "empty_dir": {"T2V_MODEL": str(tmp_path / "empty")},
    }
    started = time.monotonic()
    procs = {}
    for case, env in cases.items():
        folder = tmp_path / case
        folder.mkdir(exist_ok=True)
        procs[case] = start_real_bot(folder, **env)
    figures = FIGURES.setdefault("model_start_errors", {})
    for case, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode != 0, (case, stderr[-2000:])
        lines = [line for line in stderr.splitlines() if line.strip()]
        errors = [line for line in lines if " ERROR " in line or "error" in line.lower()]
        assert errors, (case, stderr[-2000:])
        assert "Traceback" not in stderr, (case, stderr[-3000:])
        assert len(errors) == 1 and "cannot start" in errors[0], (case, errors)
        assert "AAFakeTokenForTests" not in stderr + stdout
        figures[case] = {"exit": proc.returncode, "line": errors[0].split(": ", 1)[-1][:140]}
    FIGURES["model_start_errors_wall_s"] = round(time.monotonic() - started, 1)


def test_bad_configuration_exits_with_one_line(tmp_path: Path) -> None:
    env = base_env()
    env.update(BOT_TOKEN="not-a-token-but-secret-looking-1234567890", ADMIN_IDS="1,два")
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "BOT_TOKEN" in lines[0] and "ADMIN_IDS" in lines[0]
    assert "secret-looking" not in result.stderr
    assert os.path.isdir(REPO / "bot")
