"""/queue and /cancel through the real Dispatcher, a real SQLite file and a recording bot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.texts import queue as queue_texts
from tests.handlers.harness import FeatureEnv, open_feature_env

ADMIN, ALICE, BOB = 1, 10, 20


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[FeatureEnv]:
    env = await open_feature_env(tmp_path / "bot.sqlite3", admin_ids=[ADMIN])
    yield env
    await env.close()


async def test_queue_empty(env: FeatureEnv) -> None:
    session = await env.send(ALICE, "/queue")
    assert session.last_text() == queue_texts.queue_empty()


async def test_queue_shows_own_jobs_with_positions_and_eta_not_others(env: FeatureEnv) -> None:
    measured = await env.add_job(BOB, "давний чужой", status="delivered")
    await env.conn.execute("UPDATE jobs SET gen_seconds = 30 WHERE id = ?", (measured.id,))
    running = await env.add_job(BOB, "чужой секретный запрос", status="running")
    mine_1 = await env.add_job(ALICE, "кот на пианино")
    await env.add_job(BOB, "ещё один чужой")
    mine_2 = await env.add_job(ALICE, "собака на пляже")
    text = (await env.send(ALICE, "/queue")).last_text()
    lines = text.splitlines()
    # Alice's own numbers: her first and second job, whatever the global ids.
    assert (mine_1.number, mine_2.number) == (1, 2) and mine_2.id == 5
    line_1 = next(x for x in lines if f"#{mine_1.number}" in x)
    line_2 = next(x for x in lines if f"#{mine_2.number}" in x)
    # 30 s per job measured: the running one first, then each job ahead, then its own.
    assert "место 1" in line_1 and "≈ 1 мин" in line_1
    assert "место 3" in line_2 and "≈ 2 мин" in line_2  # Bob's queued job sits between them
    assert "чужой" not in text and running.status == "running"
    assert len([x for x in lines if x.startswith(("⏳", "🎬"))]) == 2  # only her two jobs


async def test_queue_shows_no_made_up_eta_before_anything_was_measured(env: FeatureEnv) -> None:
    await env.add_job(ALICE)
    text = (await env.send(ALICE, "/queue")).last_text()
    assert "место 1" in text and "≈" not in text


async def test_queue_shows_running_progress(env: FeatureEnv) -> None:
    job = await env.add_job(ALICE, "кот", status="running")
    await env.jobs.set_progress(job.id, 0.42)
    text = (await env.send(ALICE, "/queue")).last_text()
    assert f"#{job.id}" in text and "генерируется" in text and "42%" in text


async def test_admin_queue_lists_every_job(env: FeatureEnv) -> None:
    await env.users.touch(BOB, "bobby", "Боб")
    a = await env.add_job(ALICE, "кот", status="running")
    b = await env.add_job(BOB, "пёс")
    text = (await env.send(ADMIN, "/queue")).last_text()
    assert f"#{a.id}" in text and f"#{b.id}" in text
    assert str(ALICE) in text and "@bobby" in text
    assert "генерируется" in text and "в очереди" in text and "назад" in text and "%" in text


async def test_queue_mentions_pause(env: FeatureEnv) -> None:
    await env.add_job(ALICE)
    await env.pause.pause()
    assert queue_texts.queue_paused() in (await env.send(ALICE, "/queue")).last_text()


async def test_cancel_own_queued_job(env: FeatureEnv) -> None:
    job = await env.add_job(ALICE)
    session = await env.send(ALICE, f"/cancel {job.id}")
    assert session.last_text() == queue_texts.cancelled_queued(job.id)
    assert (await env.jobs.get(job.id)).status == "cancelled"
    assert env.loop.cancelled == []  # nothing was running
    edit = session.edits()[-1]
    assert edit.message_id == job.status_message_id and edit.text == queue_texts.cancelled_status(
        job.id
    )


async def test_cancel_own_running_job_stops_the_loop(env: FeatureEnv) -> None:
    job = await env.add_job(ALICE, status="running")
    session = await env.send(ALICE, f"/cancel {job.id}")
    assert session.last_text() == queue_texts.cancelled_running(job.id)
    assert (await env.jobs.get(job.id)).status == "cancelled"
    assert env.loop.cancelled == [job.id]


async def test_cancel_without_id_takes_latest_active(env: FeatureEnv) -> None:
    older = await env.add_job(ALICE, "первый")
    newer = await env.add_job(ALICE, "второй")
    await env.send(ALICE, "/cancel")
    assert (await env.jobs.get(newer.id)).status == "cancelled"
    assert (await env.jobs.get(older.id)).status == "queued"


async def test_cancel_with_nothing_active(env: FeatureEnv) -> None:
    assert (await env.send(ALICE, "/cancel")).last_text() == queue_texts.cancel_nothing()


async def test_cancel_of_someone_elses_job_leaks_nothing(env: FeatureEnv) -> None:
    theirs = await env.add_job(BOB, "секрет Боба")
    text_theirs = (await env.send(ALICE, f"/cancel {theirs.id}")).last_text()
    text_missing = (await env.send(ALICE, "/cancel 999999")).last_text()
    # Same words as for an id that does not exist: no way to tell the job is there.
    assert text_theirs == queue_texts.cancel_not_found(theirs.id)
    assert text_missing == queue_texts.cancel_not_found(999999)
    assert "секрет" not in text_theirs and str(BOB) not in text_theirs
    assert (await env.jobs.get(theirs.id)).status == "queued"
    assert env.session.edits() == []


async def test_admin_cancels_any_job(env: FeatureEnv) -> None:
    theirs = await env.add_job(BOB, status="running")
    session = await env.send(ADMIN, f"/cancel {theirs.id}")
    assert session.last_text() == queue_texts.cancelled_running(theirs.id)
    assert (await env.jobs.get(theirs.id)).status == "cancelled"
    assert env.loop.cancelled == [theirs.id]
    assert session.edits()[-1].text == queue_texts.cancelled_by_admin_status(theirs.id)


async def test_cancel_bad_id_and_finished_job(env: FeatureEnv) -> None:
    for bad in ("abc", "²", "-5", "1" * 30):
        assert (await env.send(ALICE, f"/cancel {bad}")).last_text() == queue_texts.cancel_bad_id()
    job = await env.add_job(ALICE, status="delivered")
    text = (await env.send(ALICE, f"/cancel #{job.id}")).last_text()
    assert text == queue_texts.cancel_already_final(job.id, "delivered")
    assert (await env.jobs.get(job.id)).status == "delivered"


async def test_queue_and_cancel_are_silent_in_groups(env: FeatureEnv) -> None:
    job = await env.add_job(ALICE)
    await env.send(ALICE, "/queue", chat_id=-100)
    await env.send(ALICE, f"/cancel {job.id}", chat_id=-100)
    assert env.session.calls == []
    assert (await env.jobs.get(job.id)).status == "queued"


async def test_admin_queue_of_a_long_queue_fits_one_message(env: FeatureEnv) -> None:
    for user in range(100, 140):
        await env.users.touch(user, "u" * 32, "Имя")
        await env.add_job(user, "очень длинный запрос " * 20)
    text = (await env.send(ADMIN, "/queue")).last_text()
    assert len(text) <= 4096
    assert queue_texts.admin_queue_more(10) in text


async def test_job_numbers_count_each_users_own_jobs(env: FeatureEnv) -> None:
    """Users see their own numbers (#1 is their first job), never a global counter that shows
    how busy the bot is; /cancel takes their number."""
    for _ in range(3):
        await env.add_job(BOB, "чужой")
    env.session.clear()
    status = (await env.send(ALICE, "кот на луне")).last_text()
    assert status.startswith("⏳ Запрос #1 принят.")
    (mine,) = await env.jobs.user_jobs(ALICE, limit=5)
    assert (mine.number, mine.id) == (1, 4)
    reply = (await env.send(ALICE, "/cancel 1")).last_text()
    assert reply == queue_texts.cancelled_queued(1)
    assert (await env.jobs.get(mine.id)).status == "cancelled"  # type: ignore[union-attr]
    assert (await env.jobs.get(1)).status == "queued"  # type: ignore[union-attr]  # Bob's #1
    # The next request of hers is #2; an admin cancels Bob's job by the id of the admin list.
    assert (await env.send(ALICE, "пёс")).last_text().startswith("⏳ Запрос #2 принят.")
    admin_list = (await env.send(ADMIN, "/queue")).last_text()
    assert "#3 · 20" in admin_list
    await env.send(ADMIN, "/cancel 3")
    assert (await env.jobs.get(3)).status == "cancelled"  # type: ignore[union-attr]


# ------------------------------------------------------------------ the «✖ Cancel» button


async def test_cancel_button_of_a_queued_job_by_its_owner(env: FeatureEnv) -> None:
    from bot.telegram.keyboards import CancelCb

    job = await env.add_job(ALICE, "кот")
    session = await env.press(ALICE, CancelCb(job_id=job.id).pack(), message_id=900 + job.id)
    (answer,) = session.answers()
    assert answer.text == queue_texts.cancelled_queued(job.number) and answer.show_alert
    assert (await env.jobs.get(job.id)).status == "cancelled"  # type: ignore[union-attr]
    # The status message's last word carries no keyboard: the button is gone.
    (edit,) = [e for e in session.edits() if e.message_id == 900 + job.id]
    assert edit.reply_markup is None and f"#{job.number}" in edit.text


async def test_cancel_button_of_a_running_job_by_an_admin(env: FeatureEnv) -> None:
    from bot.telegram.keyboards import CancelCb

    job = await env.add_job(ALICE, "кот", status="running")
    session = await env.press(ADMIN, CancelCb(job_id=job.id).pack(), chat_id=ALICE)
    (answer,) = session.answers()
    assert answer.text == queue_texts.cancelled_running(job.id)  # admins know jobs by id
    assert (await env.jobs.get(job.id)).status == "cancelled"  # type: ignore[union-attr]
    assert env.loop.cancelled == [job.id]  # the worker's flag: it stops within one step


@pytest.mark.parametrize("data", ["cxl:{id}", "cxl:999999", "cxl:0", "cxl:-1", "cxl:x", "cxl:"])
async def test_cancel_button_forged_or_foreign_changes_nothing(env: FeatureEnv, data: str) -> None:
    job = await env.add_job(ALICE, "кот", status="running")
    session = await env.press(BOB, data.format(id=job.id))
    (answer,) = session.answers()
    assert answer.text in (queue_texts.button_foreign(), queue_texts.button_broken())
    assert (await env.jobs.get(job.id)).status == "running"  # type: ignore[union-attr]
    assert env.loop.cancelled == [] and not session.edits()


async def test_cancel_button_after_the_job_ended(env: FeatureEnv) -> None:
    from bot.telegram.keyboards import CancelCb

    job = await env.add_job(ALICE, "кот", status="delivered")
    session = await env.press(ALICE, CancelCb(job_id=job.id).pack())
    (answer,) = session.answers()
    assert answer.text == queue_texts.cancel_already_final(job.number, "delivered")
    assert (await env.jobs.get(job.id)).status == "delivered"  # type: ignore[union-attr]
