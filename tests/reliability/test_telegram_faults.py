"""Telegram misbehaving: 429 storms, 5xx, dropped connections, slow uploads, one user who blocked
the bot, 400 on edits. The real entry point runs against the fake Bot API with several users at
once; after every storm the loop must still be alive (one more request is delivered) and every
other user's job delivered exactly once. Every test runs on SQLite and on PostgreSQL
(the ``database`` fixture)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability.harness import (
    ADMIN_ID,
    CYRILLIC,
    FIGURES,
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    engine_env,
    wait_all_final,
    wait_for,
    wait_ready,
)

USERS = tuple(range(8001, 8007))


@dataclass
class Outcome:
    tg: FaultyTelegram
    rows: list[dict[str, Any]]
    seconds: float
    faults_served: int
    log: str


async def scenario(
    fork_server: ForkServer,
    data: Path,
    database: Path | str,
    inject: Callable[[FaultyTelegram], None],
    *,
    users: tuple[int, ...] = USERS,
    timeout: float = 45.0,
    **env: Any,
) -> Outcome:
    """Start the bot, inject faults, let every user send one request, wait for all jobs to end;
    then clear the faults and prove the loop is alive with one more request."""
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(bot_env(tg, data, **engine_env(database), **env), data / "bot.log")
        try:
            await wait_ready(tg, proc)
            inject(tg)
            started = time.monotonic()
            for user in users:
                tg.push_message(f"кот номер {user} гуляет по крыше", user_id=user)
            rows = await wait_all_final(database, len(users), proc, timeout)
            seconds = time.monotonic() - started
            faults_served = sum(1 for c in tg.calls if c.status not in (200,))
            # The loop survived: a request after the storm is served normally.
            tg.faults.clear()
            tg.blocked.clear()
            tg.push_message("после бури", user_id=users[0])
            rows = await wait_all_final(database, len(users) + 1, proc, timeout)
            assert rows[-1]["status"] == "delivered", rows[-1]
            assert proc.alive()
        finally:
            code = await proc.terminate()
        assert code == 0, proc.output()[-3000:]
        return Outcome(tg, rows, seconds, faults_served, proc.output())


def assert_each_delivered_once(outcome: Outcome, except_users: tuple[int, ...] = ()) -> None:
    per_job = outcome.tg.videos_per_job()
    for row in outcome.rows:
        if row["user_id"] in except_users:
            continue
        assert row["status"] == "delivered", (row, outcome.log[-3000:])
        assert per_job[row["id"]] == 1, (row["id"], per_job)
    for message in outcome.tg.video_messages():
        assert message.chat_id not in except_users or message.chat_id == USERS[0]


def no_tracebacks(log: str) -> None:
    # Faults are logged as warnings with one line each, never as crashes of the loop.
    assert "unexpected error in the loop" not in log, log[-3000:]
    assert "delivery crashed" not in log, log[-3000:]


async def test_429_storm(fork_server: ForkServer, tmp_path: Path, database: Path | str) -> None:
    def inject(tg: FaultyTelegram) -> None:
        tg.fail("sendMessage", status=429, retry_after=1, times=8)
        tg.fail("editMessageText", status=429, retry_after=1, times=10)
        tg.fail("sendVideo", status=429, retry_after=1, times=4)
        tg.fail("sendChatAction", status=429, retry_after=2, times=3)

    outcome = await scenario(fork_server, tmp_path, database, inject, preview="off")
    assert_each_delivered_once(outcome)
    no_tracebacks(outcome.log)
    assert outcome.faults_served >= 15
    # Every 429 was waited out, never answered by an immediate resend.
    for user in USERS:
        calls = [c for c in outcome.tg.calls_of("sendVideo", user)]
        for before, after in itertools.pairwise(calls):
            if before.status == 429:
                assert after.time - before.time >= 0.9
    FIGURES["tg_429_storm"] = {
        "users": len(USERS),
        "429_served": outcome.faults_served,
        "seconds_to_all_delivered": round(outcome.seconds, 1),
    }


async def test_5xx_and_dropped_connections(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    def inject(tg: FaultyTelegram) -> None:
        # At most two failures per request (the session backs off 1 s, 2 s, 4 s…): spread over
        # users, so the test measures survival, not the backoff curve.
        tg.fail("sendMessage", status=502, times=2, chat_id=USERS[1])
        tg.fail("sendMessage", drop=True, times=1, chat_id=USERS[2])
        tg.fail("sendVideo", status=500, times=2, chat_id=USERS[3])
        tg.fail("sendVideo", drop=True, times=1, chat_id=USERS[4])
        tg.fail("editMessageText", status=503, times=3)
        tg.fail("getUpdates", drop=True, times=2)

    outcome = await scenario(fork_server, tmp_path, database, inject, preview="off")
    assert_each_delivered_once(outcome)
    no_tracebacks(outcome.log)
    FIGURES["tg_5xx_drops"] = {
        "users": len(USERS),
        "faults_served": outcome.faults_served,
        "seconds_to_all_delivered": round(outcome.seconds, 1),
    }


async def test_slow_upload_does_not_hold_others(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """One 4-second upload: the other users are answered at once and get their videos."""
    slow_user = USERS[0]

    def inject(tg: FaultyTelegram) -> None:
        tg.slow("sendVideo", 4.0, times=1)

    outcome = await scenario(fork_server, tmp_path, database, inject, preview="off")
    assert_each_delivered_once(outcome)
    tg = outcome.tg
    first_video = tg.calls_of("sendVideo")[0]
    slow_done = first_video.time + 4.0
    others = [c for c in tg.videos() if c is not first_video and c.time < slow_done and c.ok]
    assert others, "no other video was sent while the slow upload was in flight"
    # Requests were acknowledged quickly although an upload was stuck.
    for user in USERS:
        request_time = min(c.time for c in tg.calls if c.method == "getUpdates")
        replies = tg.calls_of("sendMessage", user, ok=True)
        assert replies and replies[0].time - request_time < 8
    FIGURES["tg_slow_upload"] = {
        "slow_seconds": 4.0,
        "other_videos_during_slow_upload": len(others),
        "slow_user": slow_user,
    }


async def test_one_blocked_user_among_many(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    blocked = USERS[2]

    def inject(tg: FaultyTelegram) -> None:
        tg.block(blocked)

    outcome = await scenario(fork_server, tmp_path, database, inject)
    assert_each_delivered_once(outcome, except_users=(blocked,))
    row = next(r for r in outcome.rows if r["user_id"] == blocked)
    assert row["status"] == "undeliverable", row
    assert not outcome.tg.videos(blocked)
    no_tracebacks(outcome.log)
    FIGURES["tg_403_one_user"] = {
        "users": len(USERS),
        "blocked": 1,
        "others_delivered": sum(r["status"] == "delivered" for r in outcome.rows) - 1,
    }


async def test_400_on_every_edit(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """Status edits all fail (message deleted by the user / not modified): videos still arrive."""

    def inject(tg: FaultyTelegram) -> None:
        tg.fail(
            "editMessageText",
            status=400,
            description="Bad Request: message to edit not found",
            times=None,
            chat_id=USERS[0],
        )
        tg.fail("editMessageText", status=400, times=None, chat_id=USERS[1])  # not modified
        tg.fail(
            "deleteMessage",
            status=400,
            description="Bad Request: message can't be deleted",
            times=None,
        )

    outcome = await scenario(
        fork_server, tmp_path, database, inject, rel_step_delay=0.15, preview="off"
    )
    assert_each_delivered_once(outcome)
    no_tracebacks(outcome.log)
    edits_refused = sum(1 for c in outcome.tg.calls_of("editMessageText") if c.status == 400)
    assert edits_refused >= 2
    FIGURES["tg_400_edits"] = {"edits_refused": edits_refused, "users": len(USERS)}


async def test_connection_dropped_after_accept(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """sendVideo reaches Telegram, the answer is lost on the way back (``PREVIEW=off``). The
    session retries the network error, so the user may get the video twice: measured, at most
    one duplicate. With the preview on, see the next test."""

    def inject(tg: FaultyTelegram) -> None:
        tg.hang_video = "drop_after"

    outcome = await scenario(
        fork_server, tmp_path, database, inject, users=USERS[:2], preview="off"
    )
    per_job = outcome.tg.videos_per_job()
    duplicates = sum(n - 1 for n in per_job.values())
    assert all(r["status"] == "delivered" for r in outcome.rows), outcome.rows
    assert duplicates <= 1, per_job
    FIGURES["tg_drop_after_accept"] = {"drops": 1, "duplicates": duplicates}


async def test_one_users_flood_wait_does_not_stall_admission(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """User A's "queued" reply gets a 429 with retry_after=3. Other users' requests must still be
    written (and answered) at once, not after A's flood wait."""
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(
            bot_env(tg, tmp_path, **engine_env(database)), tmp_path / "bot.log"
        )
        try:
            await wait_ready(tg, proc)
            tg.fail("sendMessage", status=429, retry_after=3, times=1, chat_id=USERS[0])
            tg.push_message("кот", user_id=USERS[0])
            await wait_for(lambda: tg.calls_of("sendMessage", USERS[0]), 5, "A's reply tried")
            started = time.monotonic()
            for user in USERS[1:]:
                tg.push_message("собака", user_id=user)
            await wait_for(lambda: len(db_jobs(database)) == len(USERS), 10, "all written")
            stalled = time.monotonic() - started
            FIGURES["admission_stall_behind_429_s"] = round(stalled, 2)
            assert stalled < 1.5, f"other users waited {stalled:.1f} s behind one user's 429"
        finally:
            await proc.terminate()


async def test_repeat_button_flood_wait_does_not_stall_admission(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """The same through the «🔁 Ещё вариант» button: its "queued" reply waits out a 429, and the
    other users' requests must not wait with it."""
    user = USERS[0]
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(
            bot_env(tg, tmp_path, **engine_env(database)), tmp_path / "bot.log"
        )
        try:
            await wait_ready(tg, proc)
            tg.push_message("кот", user_id=user)
            await wait_for(lambda: tg.video_messages(), 10, "first video")
            video = tg.video_messages()[0]
            tg.fail("sendMessage", status=429, retry_after=3, times=1, chat_id=user)
            tg.push_callback("rep:1", user_id=user, message_id=video.message_id)
            await wait_for(lambda: tg.calls_of("sendMessage", user, ok=False), 5, "429 served")
            started = time.monotonic()
            for other in USERS[1:]:
                tg.push_message("собака", user_id=other)
            await wait_for(lambda: len(db_jobs(database)) == len(USERS) + 1, 10, "all written")
            stalled = time.monotonic() - started
            FIGURES["admission_stall_behind_429_button_s"] = round(stalled, 2)
            assert stalled < 1.5, f"other users waited {stalled:.1f} s behind one button's 429"
        finally:
            await proc.terminate()


async def test_failure_notice_when_status_message_deleted(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    """The user deleted the bot's status message (or a restart left the job pointing at a
    deleted one); then the job fails. The failure must still reach the user, in a new message."""
    user = USERS[0]
    async with FaultyTelegram() as tg:
        proc = fork_server.spawn(
            bot_env(tg, tmp_path, rel_fail_mark="ошибка", **engine_env(database)),
            tmp_path / "bot.log",
        )
        try:
            await wait_ready(tg, proc)
            tg.push_message("/pause", user_id=ADMIN_ID)
            await wait_for(lambda: tg.sent(ADMIN_ID), 10, "/pause answered")
            tg.push_message("ошибка генерации", user_id=user)
            await wait_for(
                lambda: db_jobs(database) and db_jobs(database)[0]["status_message_id"],
                10,
                "status message stored",
            )
            status_id = db_jobs(database)[0]["status_message_id"]
            tg.messages[(user, status_id)].deleted = True  # the user deleted it
            tg.push_message("/resume", user_id=ADMIN_ID)
            rows = await wait_all_final(database, 1, proc)
            await asyncio.sleep(0.5)  # the final word is sent after the row is final
        finally:
            await proc.terminate()
    assert rows[0]["status"] == "failed"
    visible = [m.text or "" for m in tg.sent(user) if not m.deleted]
    assert any("😔" in text and CYRILLIC.search(text) for text in visible), visible


# ---------------------------------------------------------------- PREVIEW=on (status photo)


async def test_connection_dropped_after_accept_with_preview(
    fork_server: ForkServer, tmp_path: Path
) -> None:
    """The video is edited into the status photo; the answer to that edit is lost and the session
    retries: the retry edits the same message again, so the user has exactly one video."""

    def inject(tg: FaultyTelegram) -> None:
        tg.hang_video = "drop_after"

    outcome = await scenario(
        fork_server, tmp_path, tmp_path / "bot.sqlite3", inject, users=USERS[:2], rel_step_delay=0.1
    )
    per_job = outcome.tg.videos_per_job()
    assert all(r["status"] == "delivered" for r in outcome.rows), outcome.rows
    assert all(n == 1 for n in per_job.values()), per_job
    assert outcome.tg.held and outcome.tg.held[0].method == "editMessageMedia"
    assert not outcome.tg.calls_of("sendVideo")
    FIGURES["tg_drop_after_accept_preview"] = {
        "drops": 1,
        "duplicates": sum(n - 1 for n in per_job.values()),
    }


async def test_429_storm_with_preview(fork_server: ForkServer, tmp_path: Path) -> None:
    """429s on the status photo, its caption and media edits and the «done» replies: each is
    waited out (never resent at once), every user ends with exactly one video."""

    def inject(tg: FaultyTelegram) -> None:
        tg.fail("sendPhoto", status=429, retry_after=1, times=4)
        tg.fail("editMessageCaption", status=429, retry_after=1, times=6)
        tg.fail("editMessageMedia", status=429, retry_after=1, times=4)
        tg.fail("sendMessage", status=429, retry_after=1, times=3)

    outcome = await scenario(
        fork_server, tmp_path, tmp_path / "bot.sqlite3", inject, rel_step_delay=0.05
    )
    assert_each_delivered_once(outcome)
    no_tracebacks(outcome.log)
    assert outcome.faults_served >= 10
    for user in USERS:
        calls = outcome.tg.calls_of("editMessageMedia", user)
        for before, after in itertools.pairwise(calls):
            if before.status == 429:
                assert after.time - before.time >= 0.9
    FIGURES["tg_429_storm_preview"] = {
        "users": len(USERS),
        "429_served": outcome.faults_served,
        "seconds_to_all_delivered": round(outcome.seconds, 1),
    }


async def test_status_photo_gone_or_unmodified_with_preview(
    fork_server: ForkServer, tmp_path: Path
) -> None:
    """One user's status photo refuses every edit ("message to edit not found": deleted), another
    answers "not modified" to every caption edit: the first gets the video by sendVideo, the
    second in the status photo; one video each."""

    def inject(tg: FaultyTelegram) -> None:
        gone = "Bad Request: message to edit not found"
        for method in ("editMessageCaption", "editMessageMedia"):
            tg.fail(method, status=400, description=gone, times=None, chat_id=USERS[0])
        tg.fail("editMessageCaption", status=400, times=None, chat_id=USERS[1])  # not modified

    outcome = await scenario(
        fork_server, tmp_path, tmp_path / "bot.sqlite3", inject, users=USERS[:3], rel_step_delay=0.1
    )
    assert_each_delivered_once(outcome)
    no_tracebacks(outcome.log)
    tg = outcome.tg
    assert len(tg.videos(USERS[0])) == 1  # the fallback
    assert not tg.videos(USERS[1]) and not tg.videos(USERS[2])
    assert tg.video_message_count(USERS[1]) == 1 == tg.video_message_count(USERS[2])
