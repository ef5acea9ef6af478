"""Front-end failover: one leader polls and runs the background duties, the others stand by.

Any number of front ends (``python -m bot``, either role) may run against one database. The one
holding the leader lock (:mod:`bot.storage.leader`) is the **leader**:

- in long polling it is the only one that calls ``getUpdates`` (Telegram answers 409 Conflict to
  a second poller of a token);
- in both modes it alone runs what must not run twice: recovery at takeover (requeue, deliver
  videos left undelivered), the replay of updates stored but never finished, the job watcher
  (delivery of what workers rendered, progress, status refreshes), the embedded worker
  (``ROLE=all``), the reaper (idempotent; every worker runs one too) and the janitor.

The others are **hot standbys**: they have opened the database, loaded (or read) the model and
built the dispatcher, and try the lock every :data:`RETRY` seconds (``/healthz``: 200,
"standby"). When the leader dies (kill -9, a lost machine: the lock goes with its process or its
database session) a standby wins the lock within about a second and does what a restarted bot
does at start (recovery, replay of the inbox) before it polls. In webhook mode every front end
serves Telegram's calls from the start (each update is stored in the shared inbox before its
200, exactly once), and only the background duties wait for the lock.

Why delivery cannot happen twice: a generated job is delivered by the leader's watcher or by
recovery at takeover, and only one process holds the lock at a time. A leader whose PostgreSQL
lock connection ends notices it at its next check (every :data:`RETRY` seconds) and takes the
lock again on a new connection; if a standby holds it by then, the old leader stops the process
with an error (exit 1), so it neither polls nor delivers beside the new leader: run it under a
supervisor that restarts it (it comes back as a standby). Windows left: a delivery the old
leader had begun in the second before it noticed, and the documented one of any restart (a
video whose ``sendVideo`` was in flight when the leader died may be sent again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiogram import Bot

from bot.storage.leader import LeaderLock
from bot.telegram.updates import InboxDispatcher, Receiver, Stopped, until_stopped

log = logging.getLogger(__name__)

RETRY = 1.0
"""Seconds between two tries of a standby for the lock, and between two checks of a leader."""


class LeadershipLost(RuntimeError):
    """The leader lock's connection ended while this process led: it must not go on."""


class Leadership:
    """This process's side of the leader lock: standing by, leading, or lost."""

    def __init__(self, lock: LeaderLock, retry: float = RETRY) -> None:
        self.lock = lock
        self.retry = retry
        self.leading = False
        self.lost = False

    @property
    def state(self) -> str:
        return "leader" if self.leading else "standby"

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this process holds the lock (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            try:
                if await self.lock.try_acquire():
                    self.leading = True
                    log.info("leader: this front end holds %s", self.lock.description)
                    return True
            except Exception as error:  # the database away for a moment: try again
                log.warning("leader lock: could not be tried: %s", error)
            if not announced:
                log.info(
                    "standing by: another front end holds %s; trying every %.0f s",
                    self.lock.description,
                    self.retry,
                )
                announced = True
            try:
                await until_stopped(stop, asyncio.sleep(self.retry))
            except Stopped:
                break
        return False

    async def watch(self, stop: asyncio.Event) -> None:
        """While leading: check the lock every ``retry`` seconds. When its connection is gone,
        take it again on a new one (a database restart: nobody else could take it meanwhile);
        if another front end holds it now, set ``stop`` (this process must not lead beside it).
        While the database cannot be reached at all, keep trying (no one else can lead)."""
        while not stop.is_set():
            try:
                await until_stopped(stop, asyncio.sleep(self.retry))
            except Stopped:
                return
            if await self.lock.check():
                continue
            try:
                if await self.lock.try_acquire():
                    log.warning("leader lock taken again on a new connection: still leading")
                    continue
            except Exception as error:
                log.warning("leader lock: cannot be taken again yet: %s", error)
                continue
            log.error("leader lock held by another front end now: stopping")
            self.leading, self.lost = False, True
            stop.set()
            return

    async def release(self) -> None:
        if self.leading:
            self.leading = False
            with contextlib.suppress(Exception):
                await self.lock.release()


class LeaderReceiver:
    """A :class:`~bot.telegram.updates.Receiver` around polling or the webhook server: polling
    starts only once this process leads; a webhook serves at once. ``on_leader`` (the background
    duties, the replay) runs as soon as the lock is won, before any ``getUpdates``."""

    def __init__(
        self,
        inner: Receiver,
        leadership: Leadership,
        on_leader: Callable[[Bot], Awaitable[None]],
        *,
        serve_meanwhile: bool,
    ) -> None:
        self.inner = inner
        self.leadership = leadership
        self.on_leader = on_leader
        self.serve_meanwhile = serve_meanwhile

    @property
    def last_received(self) -> float | None:
        return self.inner.last_received

    async def receive(self, dp: InboxDispatcher, bot: Bot, stop: asyncio.Event) -> None:
        if self.serve_meanwhile:  # webhook: every front end serves, one leads
            lead = asyncio.create_task(self._lead(bot, stop), name="leadership")
            try:
                await self.inner.receive(dp, bot, stop)
            finally:
                stop.set()
                await lead
            return
        if await self._win(bot, stop):
            watch = asyncio.create_task(self.leadership.watch(stop), name="leader-watch")
            try:
                await self.inner.receive(dp, bot, stop)
            finally:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)

    async def _win(self, bot: Bot, stop: asyncio.Event) -> bool:
        if not await self.leadership.acquire(stop):
            return False
        await self.on_leader(bot)
        return True

    async def _lead(self, bot: Bot, stop: asyncio.Event) -> None:
        try:
            if await self._win(bot, stop):
                await self.leadership.watch(stop)
        except Exception:
            # A leader without its duties would hold the lock for nothing: stop (exit 1).
            log.exception("taking up the leader's duties failed: stopping")
            stop.set()
            raise
