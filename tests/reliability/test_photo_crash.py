"""kill -9 around a photo request (photo → video): nothing lost, nothing done twice.

The real entry point in a forked process (``botproc.py``, ``REL_I2V=1``: an image-to-video model
is loaded) against the fake Bot API. Two windows:

- ``after_download`` — the photo was fetched (``getFile`` + download) and validated, the job is
  not written yet (``REL_HOLD_JOB_WRITE``: the write, and with it the photo's, never commits).
  The update was confirmed to Telegram but waits in the update inbox: the restarted bot replays
  it, fetches the photo again and queues exactly one job.
- ``after_insert`` — the job and its photo are committed, the "queued" answer never left (the
  fake holds ``sendMessage``), so the update is not marked done. The replay finds the job by its
  update id: no second job, no second download, one answer, one video.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import images
from tests.fakes.telegram import MODES, Call
from tests.reliability.harness import (
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    db_rows,
    engine_env,
    mode_env,
    wait_all_final,
    wait_for,
    wait_ready,
)

USER = 7101
CAPTION = "кот поворачивает голову"


def photo_rows(db: Path | str) -> list[tuple[int, int, int]]:
    if isinstance(db, str):  # PostgreSQL: migrated before the bot starts
        rows = db_rows(db, "SELECT job_id, width, height FROM job_images ORDER BY job_id")
        return [(r["job_id"], r["width"], r["height"]) for r in rows]
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "job_images" not in tables:
            return []
        return conn.execute("SELECT job_id, width, height FROM job_images").fetchall()


async def settle(tg: FaultyTelegram, quiet: float = 0.3) -> None:
    last = len([c for c in tg.calls if c.method != "getUpdates"])
    for _ in range(20):
        await asyncio.sleep(quiet)
        now = len([c for c in tg.calls if c.method != "getUpdates"])
        if now == last:
            return
        last = now


@pytest.mark.parametrize("window", ["after_download", "after_insert"])
@pytest.mark.parametrize("mode", MODES)
async def test_kill9_around_a_photo_request(
    mode: str, window: str, fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    db = database
    receive = {**mode_env(mode), **engine_env(db)}
    held = asyncio.Event()

    async def hold_answer(call: Call) -> None:  # the "queued" answer never leaves
        if call.params.get("chat_id") == USER:
            held.set()
            await asyncio.Event().wait()

    async with FaultyTelegram() as tg:
        extra: dict[str, Any] = {"rel_i2v": 1}
        if window == "after_download":
            extra["rel_hold_job_write"] = 1
        else:
            tg.hooks["sendMessage"] = hold_answer
        first = fork_server.spawn(bot_env(tg, tmp_path, **extra, **receive), tmp_path / "b1.log")
        try:
            await wait_ready(tg, first)
            request = tg.push_photo(
                user_id=USER, data=images.solid(320, 180, (200, 40, 40)), caption=CAPTION
            )
            update_id = tg.last_update_id
            await wait_for(lambda: tg.confirmed_offset > update_id, 5, "update confirmed")
            if window == "after_download":
                await wait_for(lambda: (tmp_path / "job-write-held").exists(), 10, "write held")
                assert len(tg.downloads) == 1, "the photo was not fetched before the write"
                assert not db_jobs(db) and not photo_rows(db)
            else:
                await asyncio.wait_for(held.wait(), 10)
                assert [r["update_id"] for r in db_jobs(db)] == [update_id]
                assert photo_rows(db) == [(db_jobs(db)[0]["id"], 80, 48)]
        finally:
            await first.kill9()
        tg.hooks.pop("sendMessage", None)
        downloads_before = len(tg.downloads)

        second = fork_server.spawn(bot_env(tg, tmp_path, rel_i2v=1, **receive), tmp_path / "b2.log")
        try:
            await wait_ready(tg, second)
            rows = await wait_all_final(db, 1, second)
            await settle(tg)
        finally:
            await second.terminate()
    assert [(r["status"], r["update_id"]) for r in rows] == [("delivered", update_id)], rows
    assert photo_rows(db) == [(rows[0]["id"], 80, 48)]  # the photo came with its job
    assert tg.videos_per_job() == {rows[0]["id"]: 1}
    assert tg.videos_per_request() == {(USER, request["message_id"]): 1}
    answers = [m for m in tg.sent(USER) if m.method == "sendMessage"]
    assert len(answers) == 1, [m.text for m in answers]  # one "queued" status message
    # Replayed before the job existed: fetched again; after: the job is found, nothing fetched.
    expected_downloads = 1 if window == "after_download" else 0
    assert len(tg.downloads) - downloads_before == expected_downloads
