"""Load: 100 users × 3 requests at once against the real entry point and a fast fake generator.

The admin pauses the loop first, so no job can finish during the burst and the limits are exact:
``MAX_ACTIVE_JOBS_PER_USER=2`` and ``MAX_QUEUE=150`` — 300 requests must give exactly 150 queued
jobs, no user over 2, and 150 refusals that name their limit. Then ``/resume``: all 150 must be
delivered exactly once, the database ends consistent (nothing ``running``/``queued``/``generated``)
and the bot process's memory stays flat (RSS sampled every 0.1 s, peak reported; a second
wave of 150 unpaused requests must not grow it further).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path

from tests.reliability.harness import (
    ADMIN_ID,
    CYRILLIC,
    FIGURES,
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    wait_all_final,
    wait_for,
    wait_ready,
)

USERS = 100
PER_USER = 3
MAX_ACTIVE = 2
MAX_QUEUE = 150
FIRST_USER = 20_000


async def sample_rss(proc, samples: list[int], stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    while not stop.is_set():
        rss = proc.rss_bytes()
        if rss:
            samples.append(rss)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


def first_reply(tg: FaultyTelegram, chat_id: int, request_id: int) -> str | None:
    for message in tg.sent(chat_id):
        if message.reply_to == request_id:
            return message.text or message.caption or ""  # a status photo's caption
    return None


async def test_100_users_x_3_requests(fork_server: ForkServer, tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    async with FaultyTelegram() as tg:
        env = bot_env(
            tg,
            tmp_path,
            max_active_jobs_per_user=MAX_ACTIVE,
            max_queue=MAX_QUEUE,
            status_min_interval=1.0,
            queue_refresh_interval=1.0,
            log_level="WARNING",
        )
        proc = fork_server.spawn(env, tmp_path / "bot.log")
        samples: list[int] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(proc, samples, stop))
        try:
            await wait_ready(tg, proc)
            await asyncio.sleep(0.3)
            rss_start = proc.rss_bytes() or 0
            tg.push_message("/pause", user_id=ADMIN_ID)
            await wait_for(lambda: tg.sent(ADMIN_ID), 10, "/pause answered")

            started = time.monotonic()
            requests: list[tuple[int, int]] = []
            for user in range(FIRST_USER, FIRST_USER + USERS):
                for index in range(PER_USER):
                    message = tg.push_message(f"кот номер {index} у {user}", user_id=user)
                    requests.append((user, message["message_id"]))
            await wait_for(
                lambda: all(first_reply(tg, u, m) is not None for u, m in requests),
                60,
                "every request answered",
            )
            answered_in = time.monotonic() - started

            rows = db_jobs(db)
            per_user = Counter(r["user_id"] for r in rows)
            assert len(rows) == MAX_QUEUE, len(rows)  # the queue cap, exactly
            assert max(per_user.values()) == MAX_ACTIVE  # the per-user cap, exactly
            assert all(r["status"] == "queued" for r in rows)
            accepted = {(r["user_id"], r["request_message_id"]) for r in rows}
            kinds: Counter[str] = Counter()
            for user, message_id in requests:
                text = first_reply(tg, user, message_id) or ""
                assert CYRILLIC.search(text), text
                if (user, message_id) in accepted:
                    continue
                if str(MAX_QUEUE) in text:
                    kinds["queue_cap"] += 1
                elif str(MAX_ACTIVE) in text:
                    kinds["per_user_cap"] += 1
                else:
                    raise AssertionError(f"refusal without its limit: {text!r}")
            assert sum(kinds.values()) == USERS * PER_USER - MAX_QUEUE
            assert kinds["queue_cap"] and kinds["per_user_cap"], kinds

            resumed = time.monotonic()
            tg.push_message("/resume", user_id=ADMIN_ID)
            rows = await wait_all_final(db, MAX_QUEUE, proc, 120)
            drained_in = time.monotonic() - resumed
            await asyncio.sleep(0.5)
            rss_end = proc.rss_bytes() or 0
            # A second wave of 150 (unpaused): memory must not keep growing wave after wave.
            second_started = time.monotonic()
            for user in range(FIRST_USER + USERS, FIRST_USER + USERS + MAX_QUEUE // 2):
                for _ in range(2):
                    tg.push_message(f"вторая волна {user}", user_id=user)
            rows2 = await wait_all_final(db, 2 * MAX_QUEUE, proc, 120)
            second_wave_s = time.monotonic() - second_started
            await asyncio.sleep(0.5)
            rss_second = proc.rss_bytes() or 0
        finally:
            stop.set()
            await sampler
            code = await proc.terminate()
        assert code == 0, proc.output()[-3000:]

    assert Counter(r["status"] for r in rows2) == {"delivered": 2 * MAX_QUEUE}
    assert set(tg.videos_per_job().values()) == {1}
    statuses = Counter(r["status"] for r in rows)
    assert statuses == {"delivered": MAX_QUEUE}, statuses
    per_job = tg.videos_per_job()
    assert len(per_job) == 2 * MAX_QUEUE and set(per_job.values()) == {1}
    result_ids = [(r["chat_id"], r["result_message_id"]) for r in rows]
    assert len(set(result_ids)) == len(result_ids)
    assert "Traceback" not in proc.output(), proc.output()[-3000:]
    peak = max(samples) if samples else 0
    mib = 1024 * 1024
    # Flat: the burst and 150 deliveries grow the process by less than 60 MiB.
    assert rss_end - rss_start < 60 * mib, (rss_start, rss_end)
    assert rss_second - rss_end < 20 * mib, (rss_end, rss_second)
    FIGURES["load"] = {
        "requests": USERS * PER_USER,
        "queued": len(rows),
        "refused": dict(kinds),
        "all_answered_s": round(answered_in, 1),
        "drain_150_jobs_s": round(drained_in, 1),
        "rss_start_mib": round(rss_start / mib, 1),
        "rss_peak_mib": round(peak / mib, 1),
        "rss_end_mib": round(rss_end / mib, 1),
        "second_wave_150_jobs_s": round(second_wave_s, 1),
        "rss_after_second_wave_mib": round(rss_second / mib, 1),
        "telegram_calls": len(tg.calls),
    }
