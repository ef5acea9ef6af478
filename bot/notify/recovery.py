"""At start, after a crash or a restart: tell the users whose jobs were interrupted.

``JobStore.recover`` requeues interrupted jobs (or fails those interrupted too often) and lists
generated jobs whose video was never sent; this module sends those videos again (no
regeneration) and tells each user what became of their request, in a *new* status message
(edits do not notify, and a restart deserves a notification).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.i18n import use_locale
from bot.storage.jobs import FailReason, JobStatus
from bot.texts import status as status_texts

if TYPE_CHECKING:
    from bot.notify.events import TelegramJobEvents
    from bot.notify.status import StatusHub
    from bot.storage.jobs import Job, JobStore

log = logging.getLogger(__name__)


async def recover(
    jobs: JobStore, events: TelegramJobEvents, max_attempts: int, worker_id: str | None = None
) -> list[Job]:
    """Recover the queue (this process's own interrupted jobs: ``JobStore.recover`` with the
    embedded worker's ``worker_id``) and start delivering undelivered videos; return the jobs
    whose users must be told (pass them to :func:`notify_recovered`, which may take a while)."""
    recovery = await jobs.recover(max_attempts=max_attempts, worker_id=worker_id)
    if recovery.requeued or recovery.failed or recovery.undelivered:
        log.info(
            "recovery: %d requeued, %d failed, %d to deliver",
            len(recovery.requeued),
            len(recovery.failed),
            len(recovery.undelivered),
        )
    for job in recovery.undelivered:
        events.deliver(job.id)
    return [*recovery.failed, *recovery.requeued]


async def notify_recovered(jobs: JobStore, status: StatusHub, recovered: list[Job]) -> None:
    for job in recovered:
        if job.status == JobStatus.FAILED:
            with use_locale(job.locale):
                await status.finish(job, status_texts.failure(FailReason.INTERRUPTED))
        else:
            await renew_status(jobs, status, job.id)


async def renew_status(
    jobs: JobStore, status: StatusHub, job_id: int, *, worker_stopped: bool = False
) -> None:
    """A requeued job's user gets a new status message saying the request continues
    (``worker_stopped``: its worker, not this bot, stopped — ``bot/notify/watcher.py``)."""
    job = await jobs.get(job_id)
    if job is None or job.status not in JobStatus.ACTIVE:
        return  # finished meanwhile: its delivery or error said enough
    if job.status == JobStatus.QUEUED:
        text = await status.queued_text(job)
    else:  # the loop claimed it again already
        with use_locale(job.locale):
            text = status_texts.starting()
    with use_locale(job.locale):
        prefix = status_texts.resumed_elsewhere() if worker_stopped else status_texts.resumed()
    await status.announce(job, text, prefix=prefix)
