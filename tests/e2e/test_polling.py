"""The durable update inbox (bot/telegram/updates.py, bot/telegram/polling.py): store before
confirm, replay once, prune.

The real wiring (``build_app``) receives from the fake Bot API in-process; the replay tests run
in both modes (long polling and webhook), the offset tests in polling (the webhook's own are in
test_webhook.py). A "kill" is simulated by putting the database in the state a kill -9 leaves (a
stored update with ``done = 0``, a job without its status message); the true kill -9 is in
tests/reliability/test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import Update

from bot.storage import db
from bot.storage.inbox import PRUNE_AFTER, UpdateInbox
from tests.e2e.harness import all_delivered, query, running_bot, until
from tests.fakes.telegram import MODES, Call, FakeTelegram

ALICE, BOB = 1001, 1002
GROUP = -100500
BOTH_MODES = pytest.mark.parametrize("mode", MODES)


def queued_replies(tg: FakeTelegram, chat_id: int) -> list[Call]:
    return tg.calls_of("sendMessage", chat_id, ok=True)


async def stored_unconfirmed(tg: FakeTelegram, data_dir: Path, update: dict[str, Any]) -> None:
    """Write ``update`` to the inbox as polling would have before the bot died."""
    conn = await db.connect(data_dir / "bot.sqlite3")
    try:
        await db.migrate(conn)
        await UpdateInbox(conn).store([Update.model_validate(update)])
    finally:
        await conn.close()


async def test_a_batch_is_stored_before_the_offset_confirming_it_is_sent(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    pushed: list[int] = []
    violations: list[tuple[int, list[int]]] = []

    def check(call: Call) -> None:
        offset = int(call.params.get("offset") or 0)
        if not offset:
            return
        stored = {row[0] for row in query(tmp_path, "SELECT update_id FROM update_inbox")}
        missing = [uid for uid in pushed if uid < offset and uid not in stored]
        if missing:
            violations.append((offset, missing))

    tg.hooks["getUpdates"] = check
    async with running_bot(tg, tmp_path) as app:
        for user, text in ((ALICE, "кот"), (BOB, "собака"), (ALICE + 10, "/help")):
            tg.push_message(text, user_id=user)
            pushed.append(tg.last_update_id)
        await until(lambda: tg.confirmed_offset > max(pushed))
        await all_delivered(tmp_path, 2)
        await until(
            lambda: query(tmp_path, "SELECT COUNT(*) FROM update_inbox WHERE done = 1")[0][0] == 3
        )
        jobs = [await app.jobs.get(job_id) for job_id in (1, 2)]
    assert not violations
    assert sorted(job.update_id for job in jobs if job) == pushed[:2]


async def test_a_failed_inbox_write_leaves_the_batch_unconfirmed(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    offsets: list[int] = []
    tg.hooks["getUpdates"] = lambda call: offsets.append(int(call.params.get("offset") or 0))
    async with running_bot(tg, tmp_path) as app:
        inbox = app.dp.inbox
        real_store, failures = inbox.store, []

        async def flaky_store(updates: Any) -> set[int]:
            if updates and not failures:
                failures.append([u.update_id for u in updates])
                raise sqlite3.OperationalError("database is locked")
            return await real_store(updates)

        inbox.store = flaky_store
        tg.push_message("кот", user_id=ALICE)
        update_id = tg.last_update_id
        await all_delivered(tmp_path, 1)
        await until(lambda: tg.confirmed_offset > update_id)
    assert failures == [[update_id]]
    # Fetched again with the same offset after the failure; confirmed only after the write.
    first_confirm = next(i for i, offset in enumerate(offsets) if offset > update_id)
    assert offsets[first_confirm - 1] <= update_id
    assert len(queued_replies(tg, ALICE)) == 1


@BOTH_MODES
async def test_replay_after_restart_creates_one_job_and_one_answer(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    # Alice's update was stored and confirmed, then the bot died before its job was written.
    tg.push_message("кот на луне", user_id=ALICE)
    confirmed = tg.confirm(tg.last_update_id)
    await stored_unconfirmed(tg, tmp_path, confirmed)
    # Bob's was stored but never confirmed: Telegram sends it again after the restart.
    tg.push_message("собака в космосе", user_id=BOB)
    (unconfirmed,) = tg.pending_updates()
    await stored_unconfirmed(tg, tmp_path, unconfirmed)

    async with running_bot(tg, tmp_path):
        await until(lambda: tg.confirmed_offset > unconfirmed["update_id"])
        await all_delivered(tmp_path, 2)
        await asyncio.sleep(0.3)  # room for a second job or answer to show up
    rows = query(tmp_path, "SELECT user_id, update_id FROM jobs ORDER BY id")
    assert rows == [(ALICE, confirmed["update_id"]), (BOB, unconfirmed["update_id"])]
    assert len(queued_replies(tg, ALICE)) == 1 and len(queued_replies(tg, BOB)) == 1
    assert len(tg.videos(ALICE)) == 1 and len(tg.videos(BOB)) == 1
    assert query(tmp_path, "SELECT COUNT(*) FROM update_inbox WHERE done = 0") == [(0,)]


@BOTH_MODES
async def test_replay_of_an_update_already_handled_does_nothing(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running_bot(tg, tmp_path):
        tg.push_message("/gen кот --steps 2", user_id=ALICE)
        await all_delivered(tmp_path, 1)
        video = tg.videos(ALICE)[0].result["message_id"]
        tg.push_callback("rep:1", user_id=ALICE, message_id=video)  # «🔁 Ещё вариант»
        await all_delivered(tmp_path, 2)
        await until(
            lambda: query(tmp_path, "SELECT COUNT(*) FROM update_inbox WHERE done = 0") == [(0,)]
        )
    calls_before = len(tg.calls)
    # A kill after both handlers finished but before either was marked done.
    query(tmp_path, "UPDATE update_inbox SET done = 0")

    async with running_bot(tg, tmp_path):
        await asyncio.sleep(0.5)
    assert query(tmp_path, "SELECT COUNT(*) FROM jobs") == [(2,)]
    after = [c.method for c in tg.calls[calls_before:]]
    assert not {"sendMessage", "sendVideo", "answerCallbackQuery", "editMessageText"} & set(after)
    assert len(queued_replies(tg, ALICE)) == 2 and len(tg.videos(ALICE)) == 2
    assert query(tmp_path, "SELECT COUNT(*) FROM update_inbox WHERE done = 0") == [(0,)]


@BOTH_MODES
async def test_replay_announces_a_job_whose_reply_was_never_sent(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    async with running_bot(tg, tmp_path) as app:
        await app.context.pause.pause()  # keep the job queued
        tg.push_message("кот", user_id=ALICE)
        await until(
            lambda: query(tmp_path, "SELECT status_message_id FROM jobs") not in ([], [(None,)])
        )
    # As a kill between the job's commit and its "queued" reply leaves it.
    query(tmp_path, "UPDATE jobs SET status_message_id = NULL")
    query(tmp_path, "UPDATE update_inbox SET done = 0")
    before = len(queued_replies(tg, ALICE))

    async with running_bot(tg, tmp_path) as app:
        assert await app.context.pause.resume()  # the pause outlived the restart
        await all_delivered(tmp_path, 1)
    assert query(tmp_path, "SELECT COUNT(*) FROM jobs") == [(1,)]
    assert len(queued_replies(tg, ALICE)) == before + 1
    assert len(tg.videos(ALICE)) == 1


async def test_handled_updates_older_than_a_day_are_pruned(tmp_path: Path) -> None:
    now = [1_000_000.0]
    conn = await db.connect(tmp_path / "bot.sqlite3")
    try:
        await db.migrate(conn)
        inbox = UpdateInbox(conn, clock=lambda: now[0])

        def update(update_id: int) -> Update:
            return Update.model_validate({"update_id": update_id})

        assert await inbox.store([update(1), update(2)]) == {1, 2}
        assert await inbox.store([update(2), update(3)]) == {3}  # 2 is already stored
        await inbox.mark_done(1)
        await inbox.mark_done(3)
        now[0] += PRUNE_AFTER - 1
        assert await inbox.prune() == 0  # not a day old yet
        now[0] += 2
        assert await inbox.prune() == 2  # 1 and 3: handled and old
        assert await inbox.pending() == [
            (2, '{"update_id":2}')
        ]  # unfinished: kept, whatever its age
    finally:
        await conn.close()


async def test_prune_runs_at_start(tg: FakeTelegram, tmp_path: Path) -> None:
    conn = await db.connect(tmp_path / "bot.sqlite3")
    try:
        await db.migrate(conn)
        await conn.execute(
            "INSERT INTO update_inbox (update_id, payload, received_at, done)"
            " VALUES (1, '{\"update_id\":1}', 0, 1)"
        )
    finally:
        await conn.close()
    async with running_bot(tg, tmp_path):
        pass
    assert query(tmp_path, "SELECT COUNT(*) FROM update_inbox") == [(0,)]


@BOTH_MODES
async def test_a_replayed_group_mention_queues_exactly_one_job(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    """Issue 11: a group @mention carries its update id into the job like /generate does, so
    the update replayed after a crash (handled, not yet marked done) finds its job, and Telegram
    sending it once more changes nothing either."""
    mention = f"@{tg.username}"
    async with running_bot(tg, tmp_path) as app:
        await app.context.pause.pause()  # the job stays queued: a replay would see it unfinished
        message = tg.push_message(
            f"{mention} кот на луне",
            user_id=ALICE,
            chat_id=GROUP,
            chat_type="supergroup",
            entities=[{"type": "mention", "offset": 0, "length": len(mention)}],
        )
        update = {"update_id": tg.last_update_id, "message": message}
        await until(
            lambda: query(tmp_path, "SELECT status_message_id FROM jobs") not in ([], [(None,)])
        )
    assert query(tmp_path, "SELECT chat_id, update_id FROM jobs") == [(GROUP, update["update_id"])]
    replies = len(queued_replies(tg, GROUP))
    # As a kill after the handler wrote the job but before the update was marked done leaves it.
    query(tmp_path, "UPDATE update_inbox SET done = 0")

    async with running_bot(tg, tmp_path) as app:
        await until(
            lambda: query(tmp_path, "SELECT COUNT(*) FROM update_inbox WHERE done = 0") == [(0,)]
        )
        tg.resend(update)  # and Telegram sends it once more (its confirmation was lost)
        await until(lambda: tg.confirmed_offset > update["update_id"] and not tg.pending_updates())
        assert await app.context.pause.resume()
        await all_delivered(tmp_path, 1)
        await asyncio.sleep(0.3)  # room for a second job or answer to show up
    assert query(tmp_path, "SELECT COUNT(*) FROM jobs") == [(1,)]
    assert len(queued_replies(tg, GROUP)) == replies
    assert len(tg.videos(GROUP)) == 1
