"""A front end and two workers as real processes on one database, the fake Bot API.

Every test runs twice: on one SQLite file (WAL) and on a PostgreSQL database (pgserver), given
to the front end and every worker as ``DATABASE_URL``.

``python -m bot`` with ``ROLE=frontend`` (Telegram only) and two ``python -m bot.worker``
processes (the stage backend of tests/reliability/botproc.py; no BOT_TOKEN in their environment)
share one database and VIDEO_DIR. A worker is killed with SIGKILL at each stage of a job,
frozen with SIGSTOP past its lease, or has its job cancelled from Telegram; the user must get
every video exactly once, one "continues" notice for a re-run, and the attempts counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import use_locale
from bot.texts import status as status_texts
from tests.fakes.backend import preview_jpeg
from tests.reliability.harness import (
    ADMIN_ID,
    FIGURES,
    BotProcess,
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    replies_to,
    wait_for,
    wait_ready,
)

LEASE = 2
USER_A, USER_B = 7101, 7102
FINAL = ("delivered", "failed", "cancelled", "undeliverable")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The shared database: the SQLite file under ``tmp_path``, or a fresh PostgreSQL URL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "bot.sqlite3"


def engine_env(db: Path | str) -> dict[str, str]:
    return {"database_url": db} if isinstance(db, str) else {}


def frontend_env(
    tg: FaultyTelegram, data: Path, db: Path | str, preview: str = "on", **extra: Any
) -> dict[str, str]:
    """``PREVIEW=on`` (the default): status messages are photos, the video is edited into them
    (PREVIEW=off's text status and sendVideo are covered by the e2e and crash tests)."""
    settings = {
        "role": "frontend",
        "lease_seconds": LEASE,
        "preview": preview,
        **engine_env(db),
        **extra,
    }
    return bot_env(tg, data, **settings)


def worker_env(
    tg: FaultyTelegram, data: Path, db: Path | str, name: str, **extra: Any
) -> dict[str, str]:
    settings = {
        "rel_entry": "worker",
        "worker_id": name,
        "lease_seconds": LEASE,
        **engine_env(db),
        **extra,
    }
    env = bot_env(tg, data, **settings)
    del env["BOT_TOKEN"]  # a worker never holds the token
    return env


def resumed_notice() -> str:
    with use_locale("ru"):
        return status_texts.resumed_elsewhere()


def notices(tg: FaultyTelegram, chat_id: int) -> int:
    """ "Continues" notices the user received: new status messages (a text, or a photo whose
    caption says it), counted as sent (later edits change their text)."""
    calls = [
        *tg.calls_of("sendMessage", chat_id, ok=True),
        *tg.calls_of("sendPhoto", chat_id, ok=True),
    ]
    said = (str(c.params.get("text") or c.params.get("caption") or "") for c in calls)
    return sum(resumed_notice() in text for text in said)


def videos(tg: FaultyTelegram, chat_id: int) -> int:
    """Videos the user received: sent (``PREVIEW=off``) or edited into the status photo."""
    return len(tg.video_uploads(chat_id))


async def all_final(db: Path | str, expected: int, *procs: BotProcess) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        rows = db_jobs(db)
        if len(rows) >= expected and all(r["status"] in FINAL for r in rows):
            return rows
        return None

    try:
        return await wait_for(done, 30, "all jobs final")
    except TimeoutError:
        states = [(r["id"], r["status"], r["attempts"]) for r in db_jobs(db)]
        logs = "\n".join(f"--- {p.log.name}\n{p.output()[-2500:]}" for p in procs)
        raise AssertionError(f"jobs not final: {states}\n{logs}") from None


async def delivered_once(tg: FaultyTelegram, db: Path | str, *procs: BotProcess) -> list[dict]:
    """Both jobs delivered, each video sent exactly once, nobody got another's video."""
    rows = await all_final(db, 2, *procs)
    await wait_for(lambda: len(tg.video_messages()) >= 2, 10, "both videos sent")
    assert [r["status"] for r in rows] == ["delivered", "delivered"], rows
    assert sorted(tg.videos_per_job().items()) == [(rows[0]["id"], 1), (rows[1]["id"], 1)]
    for message in tg.video_messages():
        assert message.chat_id in (USER_A, USER_B)
    return rows


def stop_all(*procs: BotProcess) -> None:
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("stage", ["translate", "denoise", "encode", "generated"])
async def test_kill9_of_a_worker_at_each_stage(
    stage: str, fork_server: ForkServer, tmp_path: Path, db: Path | str
) -> None:
    data = tmp_path
    async with FaultyTelegram() as tg:
        w1 = fork_server.spawn(worker_env(tg, data, db, "w1", rel_pause_at=stage), data / "w1.log")
        fe = fork_server.spawn(frontend_env(tg, data, db), data / "fe.log")
        procs: list[BotProcess] = [w1, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("кот играет на пианино", user_id=USER_A)
            marker = f"{stage}-job-1" + ("" if stage == "generated" else ".mp4")
            await wait_for(lambda: (data / marker).exists(), 15, f"w1 stopped at {stage}")
            tg.push_message("собака в космосе", user_id=USER_B)
            # Renders take a little while (real ones take minutes): the re-run is seen running.
            w2 = fork_server.spawn(
                worker_env(tg, data, db, "w2", rel_step_delay=0.3), data / "w2.log"
            )
            procs.append(w2)
            assert await w1.kill9() == -9
            killed = time.monotonic()
            if stage != "generated":
                await wait_for(lambda: db_jobs(db)[0]["attempts"] == 2, 30, "re-claim")
                FIGURES.setdefault("reclaim_after_kill9_s", {})[stage] = round(
                    time.monotonic() - killed, 2
                )
                FIGURES["lease_seconds"] = LEASE
            rows = await delivered_once(tg, db, *procs)
            first = rows[0]
            if stage == "generated":
                # Rendered and committed before the kill: delivered as is, never rendered again.
                assert (first["attempts"], first["worker_id"]) == (1, "w1")
                assert notices(tg, USER_A) == 0
            else:
                assert (first["attempts"], first["worker_id"]) == (2, "w2"), rows
                assert notices(tg, USER_A) == 1
            assert rows[1]["attempts"] == 1 and notices(tg, USER_B) == 0
        finally:
            stop_all(*procs)


async def test_a_frozen_worker_loses_its_job_and_writes_nothing(
    fork_server: ForkServer, tmp_path: Path, db: Path | str
) -> None:
    """SIGSTOP past the lease: the other worker re-runs the job; after SIGCONT the stale worker
    finds its lease lost, stops rendering on its own, and none of its late writes land."""
    data = tmp_path
    slow = {"rel_step_delay": 0.25}
    async with FaultyTelegram() as tg:
        w1 = fork_server.spawn(worker_env(tg, data, db, "w1", **slow), data / "w1.log")
        fe = fork_server.spawn(frontend_env(tg, data, db), data / "fe.log")
        procs: list[BotProcess] = [w1, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("/gen кот играет на пианино --steps 16", user_id=USER_A)

            def rendering() -> bool:
                rows = db_jobs(db)
                return bool(rows) and rows[0]["stage"] == "denoise" and rows[0]["worker_id"] == "w1"

            await wait_for(rendering, 15, "w1 rendering")
            os.kill(w1.pid, signal.SIGSTOP)
            w2 = fork_server.spawn(worker_env(tg, data, db, "w2", **slow), data / "w2.log")
            procs.append(w2)
            tg.push_message("собака в космосе", user_id=USER_B)
            rows = await delivered_once(tg, db, *procs)
            assert (rows[0]["worker_id"], rows[0]["attempts"]) == ("w2", 2)
            os.kill(w1.pid, signal.SIGCONT)
            await wait_for(lambda: "lease lost" in w1.output(), 10, "w1 noticed")
            await wait_for(lambda: "nothing written" in w1.output(), 10, "w1 stopped rendering")
            assert w1.alive()  # it goes on as a worker
            assert db_jobs(db) == rows  # its late writes changed nothing
            assert not (data / "videos" / "job-1.mp4").exists()  # it never encoded attempt 1
            assert sorted(tg.videos_per_job().values()) == [1, 1]
            assert notices(tg, USER_A) == 1
        finally:
            stop_all(*procs)


async def test_cancel_reaches_a_worker_in_another_process_within_a_step(
    fork_server: ForkServer, tmp_path: Path, db: Path | str
) -> None:
    data = tmp_path
    step = 1.0  # longer than a heartbeat (LEASE / 3)
    async with FaultyTelegram() as tg:
        w1 = fork_server.spawn(
            worker_env(tg, data, db, "w1", rel_step_delay=step, rel_step_marks=1), data / "w1.log"
        )
        fe = fork_server.spawn(frontend_env(tg, data, db), data / "fe.log")
        procs = [w1, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("/gen кот играет на пианино --steps 30", user_id=USER_A)
            marks = data / "steps-job-1.mp4"

            def steps_done() -> int:
                text = marks.read_text() if marks.exists() else ""
                return int(text) if text.strip() else 0  # "" while the worker rewrites it

            await wait_for(lambda: steps_done() >= 2, 20, "steps")
            tg.push_message("/cancel", user_id=USER_A)
            await wait_for(lambda: db_jobs(db)[0]["status"] == "cancelled", 10, "cancelled")
            at_cancel = await wait_for(steps_done, 5, "steps read")
            await wait_for(lambda: "cancelled while rendering" in w1.output(), 10, "w1 stopped")
            # Seen at the next heartbeat (more often than a step), stopped at the next step.
            assert steps_done() <= at_cancel + 2, "rendered on after the cancel"
            # The worker is free at once: the next job renders and is delivered.
            tg.push_message("собака в космосе", user_id=USER_B)
            await wait_for(lambda: videos(tg, USER_B), 30, "the next job delivered")
            assert videos(tg, USER_A) == 0
        finally:
            stop_all(*procs)


async def test_sigterm_gives_the_job_to_another_worker_at_once(
    fork_server: ForkServer, tmp_path: Path, db: Path | str
) -> None:
    data = tmp_path
    async with FaultyTelegram() as tg:
        env = worker_env(tg, data, db, "w1", rel_step_delay=0.5, lease_seconds=600)
        w1 = fork_server.spawn(env, data / "w1.log")
        fe = fork_server.spawn(frontend_env(tg, data, db, lease_seconds=600), data / "fe.log")
        procs = [w1, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("/gen кот играет на пианино --steps 12", user_id=USER_A)
            await wait_for(
                lambda: (db_jobs(db) or [{}])[0].get("stage") == "denoise",
                15,
                "w1 rendering",
            )
            w2 = fork_server.spawn(
                worker_env(tg, data, db, "w2", lease_seconds=600), data / "w2.log"
            )
            procs.append(w2)
            assert await w1.terminate() == 0
            # A 600 s lease: only the release can have handed the job over this soon.
            await wait_for(lambda: videos(tg, USER_A), 20, "delivered by w2")
            rows = await all_final(db, 1, *procs)
            row = rows[0]
            assert (row["status"], row["worker_id"], row["attempts"]) == ("delivered", "w2", 2)
            assert notices(tg, USER_A) == 1
        finally:
            stop_all(*procs)


async def test_workers_honour_the_stored_pause(
    fork_server: ForkServer, tmp_path: Path, db: Path | str
) -> None:
    """/pause on the front end holds a worker in another process; /resume lets it go on."""
    data = tmp_path
    async with FaultyTelegram() as tg:
        w1 = fork_server.spawn(worker_env(tg, data, db, "w1"), data / "w1.log")
        fe = fork_server.spawn(frontend_env(tg, data, db), data / "fe.log")
        procs = [w1, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("/pause", user_id=ADMIN_ID)
            await wait_for(lambda: tg.calls_of("sendMessage", ADMIN_ID), 10, "/pause answered")
            tg.push_message("кот играет на пианино", user_id=USER_A)
            await wait_for(
                lambda: (db_jobs(db) or [{}])[0].get("status_message_id"),
                10,
                "job acknowledged",
            )
            # Several of the worker's looks at the queue go by (it polls every second).
            await wait_for(lambda: w1.output().count("generation loop started") == 1, 10, "w1")
            for _ in range(3):
                await asyncio.sleep(1.0)
                assert db_jobs(db)[0]["status"] == "queued"
            tg.push_message("/resume", user_id=ADMIN_ID)
            await wait_for(lambda: videos(tg, USER_A), 20, "delivered after /resume")
        finally:
            stop_all(*procs)


async def test_the_embedded_bot_follows_an_extra_worker(
    fork_server: ForkServer, tmp_path: Path, db: Path | str
) -> None:
    """``ROLE=all`` with one more ``python -m bot.worker`` on the same database: the extra
    worker's job is reported and delivered by the bot, the embedded one's as before."""
    data = tmp_path
    async with FaultyTelegram() as tg:
        env = bot_env(tg, data, lease_seconds=LEASE, rel_step_delay=0.5, **engine_env(db))
        bot = fork_server.spawn(env, data / "bot.log")
        procs = [bot]
        try:
            await wait_ready(tg, bot)
            tg.push_message("/gen кот играет на пианино --steps 10", user_id=USER_A)
            await wait_for(
                lambda: (db_jobs(db) or [{}])[0].get("stage") == "denoise",
                15,
                "the embedded worker renders A",
            )
            w1 = fork_server.spawn(worker_env(tg, data, db, "w1"), data / "w1.log")
            procs.append(w1)
            tg.push_message("собака в космосе", user_id=USER_B)
            rows = await delivered_once(tg, db, *procs)
            assert rows[0]["worker_id"].endswith(":bot") and rows[1]["worker_id"] == "w1"
            assert notices(tg, USER_A) == notices(tg, USER_B) == 0
        finally:
            stop_all(*procs)


async def test_a_job_a_worker_refuses_at_claim_time_is_reported(
    fork_server: ForkServer, tmp_path: Path, db: Path | str
) -> None:
    """A worker with lower limits refuses a job at once (claimed and failed between two looks
    of the front end): the user still gets the reason."""
    data = tmp_path
    async with FaultyTelegram() as tg:
        w0 = fork_server.spawn(worker_env(tg, data, db, "w0"), data / "w0.log")
        fe = fork_server.spawn(frontend_env(tg, data, db), data / "fe.log")
        procs = [w0, fe]
        try:
            await wait_ready(tg, fe)  # it validates with w0's limits (50 steps)
            assert await w0.terminate() == 0
            low = {"max_steps": 3, "default_steps": 2}
            w1 = fork_server.spawn(worker_env(tg, data, db, "w1", **low), data / "w1.log")
            procs.append(w1)
            tg.push_message("/gen кот играет на пианино --steps 8", user_id=USER_A)
            rows = await all_final(db, 1, *procs)
            assert (rows[0]["status"], rows[0]["error"]) == ("failed", "over_limit:steps:3")
            with use_locale("ru"):
                reason = status_texts.failure("over_limit:steps:3")
            await wait_for(lambda: reason in replies_to(tg, USER_A), 10, "the reason told")
            assert replies_to(tg, USER_A).count(reason) == 1
        finally:
            stop_all(*procs)


def stored_previews(data: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(f"file:{data / 'bot.sqlite3'}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute("SELECT job_id, step FROM job_previews").fetchall()


async def test_a_workers_previews_reach_the_status_photo_then_one_video(
    fork_server: ForkServer, tmp_path: Path
) -> None:
    """``PREVIEW=on``: the worker (another process) stores its newest preview with its
    heartbeats; the front end shows it in the user's status photo, then edits the one video into
    that same photo. The preview row is gone once the job ended."""
    data = tmp_path
    async with FaultyTelegram() as tg:
        db = data / "bot.sqlite3"
        env = worker_env(tg, data, db, "w1", rel_previews=1, rel_step_delay=0.4)
        w1 = fork_server.spawn(env, data / "w1.log")
        fe = fork_server.spawn(frontend_env(tg, data, db, "on"), data / "fe.log")
        procs = [w1, fe]
        try:
            await wait_ready(tg, fe)
            tg.push_message("/gen кот играет на пианино --steps 8", user_id=USER_A)
            rows = await all_final(db, 1, *procs)
            await wait_for(lambda: videos(tg, USER_A), 10, "the video")
            await wait_for(lambda: not stored_previews(data), 10, "the preview row deleted")
        finally:
            stop_all(*procs)
    (row,) = rows
    assert row["status"] == "delivered" and row["worker_id"] == "w1"
    status_id = row["status_message_id"]
    pictures = [
        call
        for call in tg.calls_of("editMessageMedia", USER_A, ok=True)
        if call.params["media"]["type"] == "photo"
    ]
    made = {preview_jpeg(step) for step in range(2, 9)}
    assert pictures, "no worker preview reached the status photo"
    for call in pictures:
        upload = tg.media_upload(call)
        assert call.params["message_id"] == status_id
        assert upload is not None and upload.data in made
    assert videos(tg, USER_A) == tg.video_message_count(USER_A) == 1
    (video,) = [m for m in tg.sent(USER_A) if m.media == "video"]
    assert video.message_id == status_id and not tg.calls_of("sendVideo")
