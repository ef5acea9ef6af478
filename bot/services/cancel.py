"""Cancelling jobs: ``/cancel``, the «✖ Cancel» button, and the queued jobs of a banned user.

A user cancels only their own jobs; an admin may cancel any. Someone else's job id gets exactly
the answer a non-existent id gets, so ids leak nothing. Cancelling a running job flips its row to
``cancelled`` first (so the worker can never mark it generated or deliver it) and then raises
the worker's cancel flag, which the pipeline checks at every denoising step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.i18n import use_locale
from bot.storage.jobs import JobStatus
from bot.texts import queue as queue_texts

if TYPE_CHECKING:
    from bot.context import Actor
    from bot.notify.status import StatusHub
    from bot.services.requests import WorkerControl
    from bot.storage.jobs import Job, JobStore

log = logging.getLogger(__name__)

Answer = Callable[[str], Awaitable[Any]]
"""How the entry point answers the person who cancelled (a reply, a button's alert)."""


class CancelService:
    def __init__(self, jobs: JobStore, status: StatusHub, worker: WorkerControl) -> None:
        self.jobs = jobs
        self.status = status
        self.worker = worker

    async def cancel(self, actor: Actor, number: int | None, answer: Answer) -> Job | None:
        """Cancel the actor's job ``#number`` (None: their newest active job); an admin's number
        that names no job of theirs is a job id from the admin list of /queue. ``answer`` tells
        the actor the outcome at once (before the status message's throttled last edit);
        returns the job if it was cancelled now."""
        if number is None:
            job = await self.jobs.latest_active(actor.user_id)
            if job is None:
                await answer(queue_texts.cancel_nothing())
                return None
        else:
            job = await self.jobs.by_number(actor.user_id, number)
            if job is None and actor.is_admin:
                job = await self.jobs.get(number)
            if job is None:
                await answer(queue_texts.cancel_not_found(number))
                return None
        return await self._cancel(actor, job, answer)

    async def cancel_by_button(self, actor: Actor, job_id: int, answer: Answer) -> Job | None:
        """The «✖ Cancel» button of job ``job_id`` (its row id, from callback data that may be
        forged): the owner's or an admin's press cancels it as ``/cancel`` would; anyone else's —
        or a job that does not exist — changes nothing and gets the same answer."""
        job = await self.jobs.get(job_id)
        if job is None or (job.user_id != actor.user_id and not actor.is_admin):
            await answer(queue_texts.button_foreign())
            return None
        return await self._cancel(actor, job, answer)

    async def _cancel(self, actor: Actor, job: Job, answer: Answer) -> Job | None:
        shown = job.number if job.user_id == actor.user_id else job.id
        before = await self.jobs.cancel(job.id)
        if before is None:  # it finished (or was cancelled) since it was read
            current = await self.jobs.get(job.id)
            await answer(queue_texts.cancel_already_final(shown, (current or job).status))
            return None
        self.status.silence(job.id)  # no progress edit may land after the last word
        was_running = before.status == JobStatus.RUNNING
        if was_running:
            self.worker.cancel(job.id)
        await answer(
            queue_texts.cancelled_running(shown)
            if was_running
            else queue_texts.cancelled_queued(shown)
        )
        by_admin = job.user_id != actor.user_id
        # The owner was just answered: only an admin's cancel must reach the owner through the
        # status message (sent anew if it is gone).
        await self._last_word(job, by_admin=by_admin, resend=by_admin)
        return job

    async def cancel_queued_of(self, user_id: int) -> list[Job]:
        """Cancel every queued job of ``user_id`` (a ban); their status messages say so."""
        cancelled = await self.jobs.cancel_user_queued(user_id)
        for job in cancelled:
            await self._last_word(job, by_admin=True, resend=True)
        return cancelled

    async def _last_word(self, job: Job, *, by_admin: bool, resend: bool) -> None:
        """The cancelled job's status message stops showing a queue place or a bar."""
        with use_locale(job.locale):
            text = (
                queue_texts.cancelled_by_admin_status(job.number)
                if by_admin
                else queue_texts.cancelled_status(job.number)
            )
            await self.status.finish(job, text, resend=resend)
        self.status.queue_moved()
