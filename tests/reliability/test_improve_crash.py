"""kill -9 around the prompt improver, restart, and check that nothing is lost or done twice.

The real entry point in forked processes (``botproc.py``) with a backend that has a prompt
improver (``REL_IMPROVE=1``, ``PROMPT_MODEL`` set) against the fake Bot API:

- ``ask``, killed while the improver writes the prompt (``REL_PAUSE_AT=improve``): the request's
  update was confirmed to Telegram and its draft is stored; the restarted bot replays the update,
  improves again and shows the improved prompt once; one press, one job, one video.
- ``ask``, killed after the press was taken (the draft is chosen) but before its job was written
  (``REL_HOLD_JOB_WRITE``): the replayed press queues the job; a second press queues nothing.
- ``always``, killed while the worker improves the prompt in the render thread: the job is
  requeued and delivered once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.texts import improve as texts
from tests.reliability.harness import (
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    db_rows,
    engine_env,
    wait_all_final,
    wait_for,
    wait_ready,
)

USER = 7101
IMPROVER = {"rel_improve": 1, "prompt_model": "Qwen/Qwen2.5-1.5B-Instruct"}


def drafts(db: Path | str) -> list[dict[str, Any]]:
    return db_rows(db, "SELECT * FROM prompt_drafts ORDER BY created_at")


def proposals(tg: FaultyTelegram) -> list[Any]:
    return [m for m in tg.sent(USER) if (m.text or "").startswith("✨")]


def button_data(message: Any) -> list[str]:
    return [b["callback_data"] for row in message.reply_markup["inline_keyboard"] for b in row]


async def test_kill9_while_improving_a_request_on_ask(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    db = database
    async with FaultyTelegram() as tg:
        first = fork_server.spawn(
            bot_env(tg, tmp_path, rel_pause_at="improve", **IMPROVER, **engine_env(db)),
            tmp_path / "bot-1.log",
        )
        try:
            await wait_ready(tg, first)
            tg.push_message("кот играет на пианино", user_id=USER)
            update_id = tg.last_update_id
            await wait_for(lambda: (tmp_path / "improve-1").exists(), 10, "improving")
            await wait_for(lambda: tg.confirmed_offset > update_id, 5, "update confirmed")
            assert [d["state"] for d in drafts(db)] == ["improving"]
        finally:
            assert await first.kill9() == -9
        assert not proposals(tg) and not db_jobs(db)

        second = fork_server.spawn(
            bot_env(tg, tmp_path, **IMPROVER, **engine_env(db)), tmp_path / "bot-2.log"
        )
        try:
            await wait_ready(tg, second)
            shown = (await wait_for(lambda: proposals(tg), 10, "improved prompt shown"))[0]
            assert "improved: " in shown.text
            improved, plain = button_data(shown)
            tg.push_callback(improved, user_id=USER, message_id=shown.message_id)
            rows = await wait_all_final(db, 1, second)
            again = tg.push_callback(plain, user_id=USER, message_id=shown.message_id)
            await wait_for(lambda: _answer(tg, again), 5, "second press answered")
            assert _answer(tg, again) == texts.already_chosen()
        finally:
            await second.terminate()
    assert [(r["status"], r["prompt_en"], r["improve"]) for r in rows] == [
        ("delivered", "improved: a request", 1)
    ]
    assert len(db_jobs(db)) == 1 and len(proposals(tg)) == 1
    assert [(d["state"], d["choice"], d["update_id"]) for d in drafts(db)] == [
        ("chosen", "improved", update_id)
    ]
    assert tg.videos_per_job() == {rows[0]["id"]: 1}


async def test_kill9_after_the_press_before_its_job_is_written(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    db = database
    async with FaultyTelegram() as tg:
        first = fork_server.spawn(
            bot_env(tg, tmp_path, rel_hold_job_write=1, **IMPROVER, **engine_env(db)),
            tmp_path / "bot-1.log",
        )
        try:
            await wait_ready(tg, first)
            tg.push_message("кот играет на пианино", user_id=USER)
            shown = (await wait_for(lambda: proposals(tg), 10, "improved prompt shown"))[0]
            _improved, plain = button_data(shown)
            tg.push_callback(plain, user_id=USER, message_id=shown.message_id)
            press_id = tg.last_update_id
            await wait_for(lambda: (tmp_path / "job-write-held").exists(), 5, "job write held")
            assert [d["state"] for d in drafts(db)] == ["chosen"] and not db_jobs(db)
        finally:
            assert await first.kill9() == -9

        second = fork_server.spawn(
            bot_env(tg, tmp_path, **IMPROVER, **engine_env(db)), tmp_path / "bot-2.log"
        )
        try:
            await wait_ready(tg, second)
            rows = await wait_all_final(db, 1, second)
            again = tg.push_callback(plain, user_id=USER, message_id=shown.message_id)
            await wait_for(lambda: _answer(tg, again), 5, "second press answered")
            assert _answer(tg, again) == texts.already_chosen()
        finally:
            await second.terminate()
    assert [(r["status"], r["update_id"], r["improve"]) for r in rows] == [
        ("delivered", press_id, 0)
    ]
    assert rows[0]["prompt_en"] == "english: кот играет на пианино"  # the plain translation
    assert len(db_jobs(db)) == 1 and len(proposals(tg)) == 1
    assert tg.videos_per_job() == {rows[0]["id"]: 1}


async def test_kill9_while_the_worker_improves_on_always(
    fork_server: ForkServer, tmp_path: Path, database: Path | str
) -> None:
    db = database
    async with FaultyTelegram() as tg:
        first = fork_server.spawn(
            bot_env(tg, tmp_path, rel_pause_at="improve", **IMPROVER, **engine_env(db)),
            tmp_path / "bot-1.log",
        )
        try:
            await wait_ready(tg, first)
            tg.push_message("/settings", user_id=USER)  # creates the user row
            await wait_for(lambda: tg.sent(USER), 10, "settings shown")
            settings = tg.sent(USER)[-1]
            always = next(d for d in button_data(settings) if d.endswith(":improve:always"))
            tg.push_callback(always, user_id=USER, message_id=settings.message_id)
            await wait_for(lambda: "always" in _settings_of(db), 5, "always saved")
            tg.push_message("кот играет на пианино", user_id=USER)
            await wait_for(lambda: (tmp_path / "improve-1").exists(), 10, "improving")
            assert [(r["status"], r["improve"]) for r in db_jobs(db)] == [("running", 1)]
        finally:
            assert await first.kill9() == -9

        second = fork_server.spawn(
            bot_env(tg, tmp_path, **IMPROVER, **engine_env(db)), tmp_path / "bot-2.log"
        )
        try:
            await wait_ready(tg, second)
            rows = await wait_all_final(db, 1, second)
        finally:
            await second.terminate()
    assert [(r["status"], r["prompt_en"], r["attempts"]) for r in rows] == [
        ("delivered", "improved: a request", 2)
    ]
    assert not proposals(tg) and not drafts(db)
    assert tg.videos_per_job() == {rows[0]["id"]: 1}


def _answer(tg: FaultyTelegram, callback_id: str) -> str | None:
    for call in tg.calls_of("answerCallbackQuery"):
        if call.params.get("callback_query_id") == callback_id:
            return call.params.get("text", "")
    return None


def _settings_of(db: Path | str) -> str:
    rows = db_rows(db, "SELECT settings FROM users WHERE user_id = ?", (USER,))
    return rows[0]["settings"] or "" if rows else ""
