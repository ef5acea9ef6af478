"""What the generation loop tells the rest of the bot about a job, as one small Protocol.

The loop itself knows nothing of Telegram: it claims, renders and writes the database, and
reports each turn of a job here. In the single process (``python -m bot``) the Telegram side
implements it (:class:`bot.notify.events.TelegramJobEvents`: status messages, delivery, final
words); tests pass a recorder.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bot.storage.jobs import Job
    from pipeline.progress import Progress

log = logging.getLogger(__name__)


class JobEvents(Protocol):
    async def started(self, job: Job) -> None:
        """``job`` was claimed and is about to render."""

    def progress(self, job: Job, progress: Progress) -> None:
        """A progress report (on the event loop, from the render thread); must not block."""

    async def generated(self, job: Job) -> None:
        """``job`` is ``generated``: its video waits to be delivered."""

    async def failed(self, job: Job, reason: str) -> None:
        """``job`` is ``failed`` with a ``FailReason`` code."""

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        """``job`` was cancelled while it rendered; ``announce``: nobody told the user yet."""

    def queue_moved(self) -> None:
        """The queue changed (a job started or ended): positions and ETAs moved."""


class JobEventsFanout:
    """One :class:`JobEvents` that tells several: the ``primary`` (the Telegram side) exactly as
    it would be told alone, and each observer (metrics, the health watch), whose errors are
    logged and never reach the loop. Observers hear of a start first (so the health watch sees a
    job whose first status edit hangs), of everything else after the primary."""

    def __init__(self, primary: JobEvents, *observers: JobEvents) -> None:
        self.primary = primary
        self.observers = observers

    async def _observe(self, name: str, *args: object, **kwargs: object) -> None:
        for observer in self.observers:
            try:
                await getattr(observer, name)(*args, **kwargs)
            except Exception:
                log.exception("job events observer %r failed in %s", observer, name)

    def _observe_now(self, name: str, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, name)(*args)
            except Exception:
                log.exception("job events observer %r failed in %s", observer, name)

    async def started(self, job: Job) -> None:
        await self._observe("started", job)
        await self.primary.started(job)

    def progress(self, job: Job, progress: Progress) -> None:
        self.primary.progress(job, progress)
        self._observe_now("progress", job, progress)

    async def generated(self, job: Job) -> None:
        await self.primary.generated(job)
        await self._observe("generated", job)

    async def failed(self, job: Job, reason: str) -> None:
        await self.primary.failed(job, reason)
        await self._observe("failed", job, reason)

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        await self.primary.cancelled(job, announce=announce)
        await self._observe("cancelled", job, announce=announce)

    def queue_moved(self) -> None:
        self.primary.queue_moved()
        self._observe_now("queue_moved")


class LogJobEvents:
    """:class:`JobEvents` of a standalone worker (``python -m bot.worker``): it never talks to
    Telegram, so each turn is only logged; the front end learns it from the database."""

    async def started(self, job: Job) -> None:
        log.info("job %s: rendering (attempt %d)", job.id, job.attempts)

    def progress(self, job: Job, progress: Progress) -> None:
        pass

    async def generated(self, job: Job) -> None:
        log.info("job %s: generated; the front end delivers it", job.id)

    async def failed(self, job: Job, reason: str) -> None:
        log.info("job %s: failed (%s)", job.id, reason)

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        log.info("job %s: cancelled while rendering", job.id)

    def queue_moved(self) -> None:
        pass
