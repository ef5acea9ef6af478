"""The reaper: takes back jobs whose worker's lease expired (the worker died, hangs, or lost the
database), every few seconds. It only changes rows (``JobStore.reap``: requeue, or fail after
``MAX_ATTEMPTS``); the front end's watcher tells the users (bot/notify/watcher.py). Idempotent,
so any number of processes may run it at once; the front end does. It also deletes the live
previews (``job_previews``) of attempts that no longer render, such as a killed worker's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.storage.jobs import JobStore, Reaped
    from bot.storage.previews import PreviewStore

log = logging.getLogger(__name__)


def reap_interval(lease_seconds: float) -> float:
    """How often to look: a third of the lease (at most 5 s), so a dead worker's job waits at
    most about ``LEASE_SECONDS`` plus a third."""
    return max(0.2, min(5.0, lease_seconds / 3))


class Reaper:
    def __init__(
        self,
        jobs: JobStore,
        max_attempts: int,
        interval: float,
        *,
        previews: PreviewStore | None = None,
    ) -> None:
        self.jobs = jobs
        self.previews = previews
        self.max_attempts = max_attempts
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def reap_once(self) -> Reaped:
        reaped = await self.jobs.reap(self.max_attempts)
        for job in reaped.requeued:
            log.warning(
                "job %s: lease of worker %s expired; requeued (attempt %d)",
                job.id,
                job.worker_id or "?",
                job.attempts,
            )
        for job in reaped.failed:
            log.warning("job %s: lease expired after %d attempts; failed", job.id, job.attempts)
        if self.previews is not None:
            await self.previews.forget_stale()
        return reaped

    async def _run(self) -> None:
        while True:
            try:
                await self.reap_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reaping expired leases failed")
            await asyncio.sleep(self.interval)
