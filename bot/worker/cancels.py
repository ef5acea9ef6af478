"""The cancel wake-up hint on PostgreSQL: ``LISTEN t2v_cancel`` in a worker.

The ``jobs`` row is the durable cancel marker: every heartbeat reads it back, so a cancel always
arrives within a heartbeat interval even if no notification ever does. ``NOTIFY`` (sent by
:meth:`bot.storage.jobs.PostgresJobStore.cancel`) only makes it arrive at once: on a
notification for the job this worker renders, the cancel flag is set and rendering stops at the
next denoising step.

One dedicated connection, not a pooled one: ``LISTEN`` belongs to a session, and a pooled
connection goes back to the pool (and to other statements) between calls. A dead connection (a
database restart, a network partition) is noticed by its error or by a ping that does not come
back, and replaced with backoff; notifications sent while it was down are lost, which the
heartbeat covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bot.storage.jobs import CANCEL_CHANNEL

log = logging.getLogger(__name__)

APPLICATION_NAME = "t2v-cancel-listener"
"""The listener's ``application_name`` (``pg_stat_activity``): operators and tests find it."""
PING_INTERVAL = 5.0
"""Seconds without a notification after which the connection is pinged (a partition sends no
error: only a ping that does not come back reveals it)."""
PING_TIMEOUT = 5.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0


class CancelListener:
    """Calls ``on_cancel(job_id)`` for every ``NOTIFY t2v_cancel, '<job id>'``; reconnects."""

    def __init__(
        self,
        url: str,
        on_cancel: Callable[[int], object],
        *,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self.url = url
        self.on_cancel = on_cancel
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.connects = 0
        """Successful ``LISTEN``s so far (1 + reconnects): logs and tests."""
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cancel-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.listening.clear()
                log.warning(
                    "cancel listener: %s; reconnecting in %.1f s",
                    error or type(error).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_FIRST  # pragma: no cover - _listen only ends by raising

    async def _listen(self) -> None:
        import psycopg

        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                self.url, autocommit=True, application_name=APPLICATION_NAME
            ),
            self.ping_timeout,
        )
        try:
            await conn.execute(f"LISTEN {CANCEL_CHANNEL}".encode())
            self.connects += 1
            self.listening.set()
            log.info(
                "cancel listener: listening on %s (connection %d)", CANCEL_CHANNEL, self.connects
            )
            while True:
                async for note in conn.notifies(timeout=self.ping_interval):
                    self._notified(note.payload)
                await asyncio.wait_for(conn.execute(b"SELECT 1"), self.ping_timeout)
        finally:
            self.listening.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 1.0)

    def _notified(self, payload: str) -> None:
        try:
            job_id = int(payload)
        except ValueError:
            log.warning("cancel listener: ignored payload %r", payload)
            return
        if self.on_cancel(job_id):
            log.info("job %s: cancel notified: stopping at the next step", job_id)
