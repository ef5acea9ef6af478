"""The one way a job is made: resolve the options, admit against the limits, write, announce.

Every entry point — ``/generate``, plain text, a group @mention, the repeat buttons — calls
:meth:`RequestService.submit` or :meth:`RequestService.repeat`. The order is the durability
contract: validate → write the job (``queued``, committed) → only then tell the user it is
queued (:meth:`bot.notify.status.StatusHub.announce`, which stores the status message id). The
worker may claim the job before that id is stored; the status reporter reads it at each edit.

Each job's GPU cost (``bot/services/cost.py``) is fixed here, checked against the budgets with the
other limits and stored with the job. A repeat is resolved again against today's limits, exactly
as a new request: a button of an old job can never queue what a new request may not.

The prompt improver (``PROMPT_MODEL``): a job may carry ``improve`` (its English prompt comes from
the improver — at render time, by the worker, when no ``prompt_en`` is given) and a ``prompt_en``
chosen in advance (the "ask" mode, ``bot/services/drafts.py``, which goes through :meth:`submit`
like every request). Without an explicit choice the user's /settings decide
(:func:`bot.services.preferences.improve_mode`): "always", and "ask" where no draft was shown (a
front end without the model), mark the job ``improve``.

Content policy (``bot/services/policy.py``): every request's prompt and the negative prompt its
user wrote are checked in :meth:`RequestService._admit`, the one step all entry points share, before
the limits; a match is refused with a neutral text (never quoting it), counted and logged, and
queues nothing.

Replays (``bot/telegram/updates.py``): a job carries the id of the update that asked for it. An
update handled again after a crash finds its job instead of being checked against the limits and
queued a second time; it is announced only if the first run died before announcing it.

Photo requests (:meth:`RequestService.submit_photo`, ``I2V_MODEL``) take the same path with the
image-to-video model's defaults and bounds. The photo is fetched only after everything that can
be refused without it was (a replay, no image-to-video model, bad options), validated and fitted
to the model (``pipeline.image``: the photo's aspect, about the pixels of the request's size), and
stored (``job_images``) in the transaction that writes the job: a crash before that commit leaves
nothing, the update is replayed and fetches the photo again; after it, the replay finds the job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Protocol

from bot.i18n import use_locale
from bot.services.cost import CostMeter
from bot.services.preferences import improve_mode, quality_options, to_personal
from bot.storage.db import transaction
from bot.storage.images import ImageStore, JobImage
from bot.storage.jobs import JobSource
from bot.storage.policy import PolicyKind
from bot.texts import photos as photo_texts
from bot.texts import policy as policy_texts
from bot.texts import requests as request_texts
from pipeline.image import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageError, prepare_image
from pipeline.options import (
    GenerationOptions,
    OptionError,
    OptionOverrides,
    parse_request,
    random_seed,
    resolve_options,
)

if TYPE_CHECKING:
    from bot.backend import ImageModelInfo, ModelInfo
    from bot.config import Settings
    from bot.context import Actor
    from bot.notify.status import StatusHub
    from bot.services.admission import Admission
    from bot.services.pause import PauseSwitch
    from bot.services.policy import PolicyService
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


PhotoFetch = Callable[[int], Awaitable[bytes]]
"""Downloads the photo of a request, given the most bytes it may have; raises
:class:`pipeline.image.ImageError` (``too_large``) for a larger one, before downloading it."""


class PhotoUnavailable(Exception):
    """Telegram could not hand over the photo (``getFile`` or the download failed)."""


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
        policy: PolicyService | None = None,
        images: ImageStore | None = None,
    ) -> None:
        self.policy = policy
        self.jobs = jobs
        self.users = users
        self.settings = settings
        self.model = model
        self.admission = admission
        self.status = status
        self.pause = pause
        self.worker = worker
        self.images = images if images is not None else ImageStore(jobs.conn)
        self.max_image_bytes = MAX_IMAGE_BYTES
        self.max_image_pixels = MAX_IMAGE_PIXELS

    async def submit_photo(
        self, actor: Actor, text: str, origin: Origin, fetch: PhotoFetch
    ) -> Admitted:
        """A photo request: ``text`` (the caption, or the words after ``/generate``) says what
        happens; ``fetch`` downloads the photo, called only once nothing else refuses it."""
        replayed = await self._replayed(origin.update_id)
        if replayed is not None:
            return Admitted(job=replayed, replayed=True)
        image_model = self.model.image_model
        if image_model is None:
            return Admitted(refusal=photo_texts.photo_unavailable())
        if not text.strip():
            return Admitted(refusal=photo_texts.photo_needs_caption())
        stored = await self.users.get_settings(actor.user_id)
        personal = to_personal(
            stored,
            image_model.defaults,
            image_model.limits,
            **quality_options(self.settings),
        )
        try:
            parsed = parse_request(text)
            overrides = parsed.overrides.merged_over(personal.overrides)
            # Options are checked at the model's own size first: a bad option costs no download.
            estimate = self._resolve(parsed.prompt, overrides, image_model)
        except OptionError as error:
            return Admitted(refusal=self._option_error(error, image_model))
        # Nor does a request the limits refuse anyway (checked again, under the lock, at the
        # insert: the fitted size has about the same area, so about the same cost).
        early = await self.admission.check(
            actor.user_id,
            is_admin=actor.is_admin,
            cost=self.cost_meter().cost(estimate),
            chat_id=origin.chat_id,
        )
        if early is not None:
            return Admitted(refusal=early.text())
        try:
            data = await fetch(self.max_image_bytes)
            width = overrides.width or image_model.defaults.width
            height = overrides.height or image_model.defaults.height
            fitted = await asyncio.to_thread(
                prepare_image,
                data,
                width * height,
                image_model.limits,
                max_bytes=self.max_image_bytes,
                max_pixels=self.max_image_pixels,
            )
        except ImageError as error:
            log.info("photo of user %s refused: %s (%s)", actor.user_id, error.code, error)
            return Admitted(refusal=self._image_error(error))
        except PhotoUnavailable as error:
            log.warning("photo of user %s not downloaded: %s", actor.user_id, error)
            return Admitted(refusal=photo_texts.photo_download_failed())
        try:
            options = self._resolve(
                parsed.prompt,
                replace(overrides, width=fitted.width, height=fitted.height),
                image_model,
            )
        except OptionError as error:
            return Admitted(refusal=self._option_error(error, image_model))
        image = JobImage(
            0,
            fitted.data,
            fitted.mime,
            fitted.width,
            fitted.height,
            fitted.source_width,
            fitted.source_height,
        )
        return await self._admit(
            actor, options, personal.translate, origin, JobSource.REQUEST, image
        )

    async def submit(
        self,
        actor: Actor,
        text: str,
        origin: Origin,
        *,
        prompt_en: str | None = None,
        improve: bool | None = None,
    ) -> Admitted:
        """A request written by ``actor``: options in ``text`` win over their /settings.

        ``prompt_en``: the English prompt chosen already (no translation then); ``improve``:
        whether the prompt improver writes it (None: as the user's settings say)."""
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
        if improve is None:
            configured = self.settings.prompt_model is not None
            improve = improve_mode(stored, configured) in ("always", "ask")
        return await self._admit(
            actor,
            options,
            personal.translate,
            origin,
            JobSource.REQUEST,
            prompt_en=prompt_en,
            improve=improve,
        )

    async def check(self, actor: Actor, text: str, chat_id: int) -> str | None:
        """Why ``text`` would be refused now (options, then the limits), else None; nothing is
        written. Lets the prompt improver spend no time on a request that cannot be queued."""
        stored = await self.users.get_settings(actor.user_id)
        personal = to_personal(
            stored, self.model.defaults, self.model.limits, **quality_options(self.settings)
        )
        try:
            parsed = parse_request(text)
            options = self._resolve(parsed.prompt, parsed.overrides.merged_over(personal.overrides))
        except OptionError as error:
            return self._option_error(error)
        refusal = await self.admission.check(
            actor.user_id,
            is_admin=actor.is_admin,
            cost=self.cost_meter().cost(options),
            chat_id=chat_id,
        )
        return refusal.text() if refusal is not None else None

    async def repeat(self, actor: Actor, source: Job, origin: Origin) -> Admitted:
        """The same request as ``source`` with a new seed, checked against today's limits (a
        photo job: the same photo, with the image-to-video model)."""
        replayed = await self._replayed(origin.update_id)
        if replayed is not None:
            return Admitted(job=replayed, replayed=True)
        overrides = source.options.with_seed(random_seed()).to_overrides()
        image = await self.images.get(source.id)
        image_model = self.model.image_model if image is not None else None
        if image is not None and image_model is None:
            return Admitted(refusal=photo_texts.photo_unavailable())
        try:
            options = self._resolve(source.prompt, overrides, image_model)
        except OptionError as error:
            return Admitted(refusal=self._option_error(error, image_model))
        # An improved prompt is kept: the new take shows the same scene.
        return await self._admit(
            actor,
            options,
            source.translate,
            origin,
            JobSource.REPEAT,
            image,
            prompt_en=source.prompt_en if source.improve else None,
            improve=source.improve,
        )

    async def remix(self, actor: Actor, source: Job, origin: Origin) -> Admitted:
        """A shared request (``/start <token>``) rendered for ``actor``: the same prompt and
        options as ``source`` (and its photo), seed included, as a new request of theirs — their
        limits, budgets and the content policy, checked against today's bounds exactly like
        :meth:`repeat`."""
        replayed = await self._replayed(origin.update_id)
        if replayed is not None:
            return Admitted(job=replayed, replayed=True)
        image = await self.images.get(source.id)
        image_model = self.model.image_model if image is not None else None
        if image is not None and image_model is None:
            return Admitted(refusal=photo_texts.photo_unavailable())
        try:
            options = self._resolve(source.prompt, source.options.to_overrides(), image_model)
        except OptionError as error:
            return Admitted(refusal=self._option_error(error, image_model))
        return await self._admit(actor, options, source.translate, origin, JobSource.SHARE, image)

    def user_negative(self, options: GenerationOptions) -> str:
        """The negative prompt a user wrote: the model's own default one is the operator's
        text, not the user's, and is never refused."""
        negative = options.negative_prompt or ""
        default = self.model.defaults.negative_prompt or ""
        return "" if negative.strip() == default.strip() else negative

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

    def _resolve(
        self, prompt: str, overrides: OptionOverrides, model: ImageModelInfo | None = None
    ) -> GenerationOptions:
        """Options against the text model, or against ``model`` (a photo job's)."""
        bounds = model if model is not None else self.model
        return resolve_options(
            prompt,
            overrides,
            bounds.defaults,
            bounds.limits,
            max_prompt_chars=self.settings.max_prompt_chars,
        )

    def _option_error(self, error: OptionError, model: ImageModelInfo | None = None) -> str:
        limits = model.limits if model is not None else self.model.limits
        return request_texts.option_error(error, limits, self.settings.max_prompt_chars)

    def _image_error(self, error: ImageError) -> str:
        return photo_texts.photo_error(
            error.code, self.max_image_bytes / 1024 / 1024, self.max_image_pixels / 1e6
        )

    async def _admit(
        self,
        actor: Actor,
        options: GenerationOptions,
        translate: bool,
        origin: Origin,
        source: str,
        image: JobImage | None = None,
        *,
        prompt_en: str | None = None,
        improve: bool = False,
    ) -> Admitted:
        if self.policy is not None:
            verdict = await self.policy.screen(
                actor.user_id,
                (options.prompt, self.user_negative(options)),
                kind=PolicyKind.PROMPT,
            )
            if verdict.blocked:
                return Admitted(refusal=policy_texts.refused())
        # Only the check and the insert hold the lock: a slow reply (a 429 wait) must not hold
        # up other users' requests. A photo job's cost is its options' on the cost model: a
        # photo model's larger default size or frame count costs more.
        cost = self.cost_meter().cost(options)
        async with self.admission.lock:
            refusal = await self.admission.check(
                actor.user_id, is_admin=actor.is_admin, cost=cost, chat_id=origin.chat_id
            )
            if refusal is not None:
                return Admitted(refusal=refusal.text())
            create = partial(
                self._create, actor, options, translate, origin, source, cost, prompt_en, improve
            )
            if image is None:
                job = await create()
            else:  # the photo commits with its job, or neither does
                async with transaction(self.jobs.conn):
                    job = await create()
                    await self.images.put(replace(image, job_id=job.id))
        kind = "photo " if image is not None else ""
        log.info(
            "job %s: %squeued for user %s (%s, cost %.2f)",
            job.id,
            kind,
            actor.user_id,
            source,
            cost,
        )
        self.status.expect_announce(job.id)  # its video waits for the status photo, not beside it
        self.worker.wake()
        await self._announce(job)
        # In the fair queue a newcomer may go ahead of jobs already waiting: move them down.
        self.status.queue_moved()
        return Admitted(job=job)

    async def _create(
        self,
        actor: Actor,
        options: GenerationOptions,
        translate: bool,
        origin: Origin,
        source: str,
        cost: float,
        prompt_en: str | None,
        improve: bool,
    ) -> Job:
        return await self.jobs.create(
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
            prompt_en=prompt_en,
            improve=improve,
        )

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
