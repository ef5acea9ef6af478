"""The one way a job is made: resolve the options, admit against the limits, write, announce.

Every entry point — ``/generate``, plain text, a group @mention, the repeat buttons — calls
:meth:`RequestService.submit` or :meth:`RequestService.repeat`. The order is the durability
contract: validate → write the job (``queued``, committed) → only then tell the user it is
queued (:meth:`bot.notify.status.StatusHub.announce`, which stores the status message id). The
worker may claim the job before that id is stored; the status reporter reads it at each edit.

Each job's GPU cost (``bot/services/cost.py``) is fixed here, checked against the budgets with the
other limits and stored with the job. A repeat is resolved again against today's limits, exactly
as a new request: a button of an old job can never queue what a new request may not.

Replays (``bot/telegram/updates.py``): a job carries the id of the update that asked for it. An
update handled again after a crash finds its job instead of being checked against the limits and
queued a second time; it is announced only if the first run died before announcing it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.i18n import use_locale
from bot.services.cost import CostMeter
from bot.services.preferences import quality_options, to_personal
from bot.storage.jobs import JobSource
from bot.texts import requests as request_texts
from pipeline.options import (
    GenerationOptions,
    OptionError,
    OptionOverrides,
    parse_request,
    random_seed,
    resolve_options,
)

if TYPE_CHECKING:
    from bot.backend import ModelInfo
    from bot.config import Settings
    from bot.context import Actor
    from bot.notify.status import StatusHub
    from bot.services.admission import Admission
    from bot.services.pause import PauseSwitch
    from bot.storage.jobs import Job, JobStore
    from bot.storage.users import UserStore

log = logging.getLogger(__name__)


class WorkerControl(Protocol):
    """What the Telegram side may ask of the worker that renders jobs."""

    def wake(self) -> None:
        """A job was queued: look at the queue now."""

    def cancel(self, job_id: int) -> bool:
        """Stop ``job_id`` within one step if it renders here now; True if it did."""


@dataclass(frozen=True)
class Admitted:
    """The outcome of a request: the job (new, or the one a replayed update made) or the text
    telling the user why nothing was queued (in the requester's language)."""

    job: Job | None = None
    refusal: str | None = None
    replayed: bool = False
    """The update was handled before a crash: its job exists, nothing more is to be said."""


@dataclass(frozen=True)
class Origin:
    """Where a request came from and where its answers go."""

    chat_id: int
    request_message_id: int | None
    """The message the status and the video reply to."""
    update_id: int | None = None
    """The update that carried it: a replay of the same update finds the same job."""


class RequestService:
    def __init__(
        self,
        *,
        jobs: JobStore,
        users: UserStore,
        settings: Settings,
        model: ModelInfo,
        admission: Admission,
        status: StatusHub,
        pause: PauseSwitch,
        worker: WorkerControl,
    ) -> None:
        self.jobs = jobs
        self.users = users
        self.settings = settings
        self.model = model
        self.admission = admission
        self.status = status
        self.pause = pause
        self.worker = worker

    async def submit(self, actor: Actor, text: str, origin: Origin) -> Admitted:
        """A request written by ``actor``: options in ``text`` win over their /settings."""
        replayed = await self._replayed(origin.update_id)
        if replayed is not None:
            return Admitted(job=replayed, replayed=True)
        stored = await self.users.get_settings(actor.user_id)
        model = self.model
        personal = to_personal(
            stored, model.defaults, model.limits, **quality_options(self.settings)
        )
        try:
            parsed = parse_request(text)
            options = self._resolve(parsed.prompt, parsed.overrides.merged_over(personal.overrides))
        except OptionError as error:
            return Admitted(refusal=self._option_error(error))
        return await self._admit(actor, options, personal.translate, origin, JobSource.REQUEST)

    async def repeat(self, actor: Actor, source: Job, origin: Origin) -> Admitted:
        """The same request as ``source`` with a new seed, checked against today's limits."""
        replayed = await self._replayed(origin.update_id)
        if replayed is not None:
            return Admitted(job=replayed, replayed=True)
        overrides = source.options.with_seed(random_seed()).to_overrides()
        try:
            options = self._resolve(source.prompt, overrides)
        except OptionError as error:
            return Admitted(refusal=self._option_error(error))
        return await self._admit(actor, options, source.translate, origin, JobSource.REPEAT)

    def cost_meter(self) -> CostMeter:
        """Costs in ordinary videos on the loaded model (its default job in
        ``DEFAULT_QUALITY`` = 1)."""
        model = self.model
        return CostMeter(
            model.defaults,
            model.limits,
            model.tiers,
            self.settings.default_quality,
        )

    # ------------------------------------------------------------ steps

    def _resolve(self, prompt: str, overrides: OptionOverrides) -> GenerationOptions:
        return resolve_options(
            prompt,
            overrides,
            self.model.defaults,
            self.model.limits,
            max_prompt_chars=self.settings.max_prompt_chars,
        )

    def _option_error(self, error: OptionError) -> str:
        return request_texts.option_error(error, self.model.limits, self.settings.max_prompt_chars)

    async def _admit(
        self,
        actor: Actor,
        options: GenerationOptions,
        translate: bool,
        origin: Origin,
        source: str,
    ) -> Admitted:
        # Only the check and the insert hold the lock: a slow reply (a 429 wait) must not hold
        # up other users' requests.
        cost = self.cost_meter().cost(options)
        async with self.admission.lock:
            refusal = await self.admission.check(
                actor.user_id, is_admin=actor.is_admin, cost=cost, chat_id=origin.chat_id
            )
            if refusal is not None:
                return Admitted(refusal=refusal.text())
            job = await self.jobs.create(
                actor.user_id,
                origin.chat_id,
                origin.request_message_id,
                options.prompt,
                options,
                translate,
                source,
                update_id=origin.update_id,
                locale=actor.locale,
                cost=cost,
            )
        log.info("job %s: queued for user %s (%s, cost %.2f)", job.id, actor.user_id, source, cost)
        self.status.expect_announce(job.id)  # its video waits for the status photo, not beside it
        self.worker.wake()
        await self._announce(job)
        # In the fair queue a newcomer may go ahead of jobs already waiting: move them down.
        self.status.queue_moved()
        return Admitted(job=job)

    async def _replayed(self, update_id: int | None) -> Job | None:
        """The job update ``update_id`` created before (a replay after a crash), announced now if
        the first run died before announcing it."""
        if update_id is None:
            return None
        job = await self.jobs.by_update_id(update_id)
        if job is None:
            return None
        if job.status_message_id is None:
            log.info("job %s: replayed update %s, announcing it", job.id, update_id)
            await self._announce(job)
        else:
            log.info("job %s: replayed update %s, already announced", job.id, update_id)
        return job

    async def _announce(self, job: Job) -> None:
        text = await self.status.queued_text(job)
        if await self.pause.is_paused():
            with use_locale(job.locale):
                text += "\n\n" + request_texts.paused_note()
        await self.status.announce(job, text)
