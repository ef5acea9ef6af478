"""The generation loop's events, told to the user in Telegram (status messages and delivery)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bot.i18n import use_locale
from bot.texts import status as status_texts

if TYPE_CHECKING:
    from bot.notify.delivery import Delivery
    from bot.notify.status import StatusHub
    from bot.storage.jobs import Job
    from pipeline.progress import Progress


class TelegramJobEvents:
    """:class:`bot.worker.events.JobEvents` for the in-process worker."""

    def __init__(self, status: StatusHub, delivery: Delivery) -> None:
        self.status = status
        self.delivery = delivery
        self._background: set[asyncio.Task[Any]] = set()

    async def started(self, job: Job) -> None:
        await self.status.begin_running(job)

    def progress(self, job: Job, progress: Progress) -> None:
        self.status.progress(job.id, progress)

    async def generated(self, job: Job) -> None:
        self.status.controls_off(job.id)  # nothing left to cancel: the button goes
        with use_locale(job.locale):
            self.status.show(job, status_texts.uploading())
        self.deliver(job.id)
        await self.status.refresh_eta()

    async def failed(self, job: Job, reason: str) -> None:
        with use_locale(job.locale):
            await self.status.finish(job, status_texts.failure(reason))
        self.status.queue_moved()

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        with use_locale(job.locale):
            await self.status.finish(job, status_texts.cancelled() if announce else None)
        self.status.queue_moved()

    def queue_moved(self) -> None:
        self.status.queue_moved()

    def deliver(self, job_id: int) -> asyncio.Task[None]:
        """Send a generated job's video in the background (the GPU goes on with the next job)."""
        task = asyncio.create_task(self.delivery.deliver(job_id), name=f"deliver-{job_id}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def drain(self, timeout: float) -> None:
        """Let uploads in flight finish for ``timeout`` seconds, then cancel the rest (their jobs
        stay ``generated`` and are sent at the next start)."""
        if not self._background:
            return
        _, pending = await asyncio.wait(set(self._background), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
