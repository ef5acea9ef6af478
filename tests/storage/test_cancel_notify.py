"""PostgreSQL's cancel wake-up: ``PostgresJobStore.cancel`` notifies ``t2v_cancel`` for a running
job (never for a queued one), and a worker's :class:`CancelListener` hears it, also after the
server ended its session."""

from __future__ import annotations

import asyncio

from bot.storage import db
from bot.worker.cancels import APPLICATION_NAME, CancelListener
from tests.fakes.postgres import PostgresServer
from tests.reliability.harness import wait_for
from tests.storage.test_contract import new_job


async def test_cancel_of_a_running_job_wakes_the_listener(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    from bot.storage.jobs import job_store

    conn = await db.open_database("", postgres_url)
    heard: list[int] = []
    listener = CancelListener(postgres_url, heard.append, ping_interval=0.5)
    listener.start()
    try:
        store = job_store(conn)
        await asyncio.wait_for(listener.listening.wait(), 20)
        running = await new_job(store, user_id=1)
        assert (await store.claim("w1", 30)).id == running.id
        queued = await new_job(store, user_id=2)
        assert await store.cancel(queued.id) is not None
        assert await store.cancel(running.id) is not None
        # Delivered in order: the queued job's cancel would have come first.
        await wait_for(lambda: heard, 20, "notification")
        assert heard == [running.id]

        assert postgres_server.terminate(APPLICATION_NAME) == 1
        await wait_for(lambda: listener.connects == 2, 20, "LISTEN again")
        again = await new_job(store, user_id=3)
        assert (await store.claim("w1", 30)).id == again.id
        await store.cancel(again.id)
        await wait_for(lambda: len(heard) == 2, 20, "notification after reconnect")
        assert heard == [running.id, again.id]
    finally:
        await listener.stop()
        await conn.close()
