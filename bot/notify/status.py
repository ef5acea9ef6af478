"""Live status messages: one per job, edited on a cadence, never to the same text twice.

Telegram allows about one message per second per chat and answers 400 "message is not
modified" to an identical edit, so each job has a :class:`StatusReporter` that coalesces updates:
``show(text)`` only records the newest text, and one flush task edits at most once per
``min_interval`` seconds (only the latest text survives a burst of progress reports).

The status message id is read from the database at every edit: it is stored only after the reply
was sent (:meth:`StatusHub.announce`), and the generation loop may already have claimed the job
by then. Until the id exists an update simply waits; ``announce`` flushes it once the id is stored.

:class:`StatusHub` owns the reporters, the queue-position refresh (throttled, when the queue
moves) and the ETA figures (``bot/eta.py``: each job costs its tier's transformer passes, at the
pace learned from the recent generated jobs, medians throughout). A queued job's ETA is what is left
of the running job plus the estimate of each job ahead of it and its own; the running job's
remainder comes from its own step rate. Until a job has been measured no ETA is shown. Texts are
written in the job's own locale (``jobs.locale``), whoever triggers the edit.

A job's last word (failed, cancelled…) always reaches the user: when its status message is gone
(the user deleted it, or it is too old to edit), it is sent as a new message replying to the
request instead of being dropped with the refused edit.

**Live preview** (``PREVIEW=on``, docs/architecture.md "Live preview"): the status message is a
*photo* from the start (a placeholder of the video's aspect, ``bot/notify/placeholder.py``) with
the status text as its caption (≤ 1024 characters). The worker's preview JPEGs
(``Progress.preview``) ride the same throttle as the text: one flush edits the caption alone
(``editMessageCaption``) or the picture and the caption together (``editMessageMedia``), at most
once per ``min_interval``; only the newest preview survives a burst. The kind of message is stored
with the job (``jobs.status_media``), so every edit after a restart uses the method that fits it,
and delivery can put the finished video into the same message (``bot/notify/delivery.py``).
``PREVIEW=off`` keeps a plain text status message.

**Cancel button**: while a job is queued or running its status message carries «✖ Cancel»
(``CancelCb``); every edit sends it again (an edit without a keyboard removes it), and the last
word — failed, cancelled, the video — comes without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, InputMediaPhoto

from bot.eta import JobClock, estimate_seconds, remaining_seconds
from bot.i18n import use_locale
from bot.notify.placeholder import placeholder_jpeg
from bot.services.cost import shown_cost
from bot.storage.jobs import JobStatus
from bot.telegram.keyboards import cancel_keyboard
from bot.telegram.replies import reply_to
from bot.texts import CAPTION_LIMIT, MESSAGE_LIMIT, shorten
from bot.texts import status as status_texts
from pipeline.progress import Progress, Stage
from pipeline.quality import TierSupport

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.storage.jobs import Job, JobStore

log = logging.getLogger(__name__)

EditResult = Literal["ok", "no_message", "missing", "uneditable", "gone", "error", "no_preview"]
PHOTO = "photo"
"""``jobs.status_media`` of a status message sent as a photo (the live preview)."""


def is_not_modified(error: TelegramBadRequest) -> bool:
    return "not modified" in str(error).lower()


@dataclass
class RunState:
    """What the reporter knows about a running job, to draw the bar and the ETA."""

    prompt: str = ""
    job_id: int | None = None
    """The number the requester knows the job by (``Job.number``)."""
    started: float = field(default_factory=time.monotonic)
    prompt_en: str | None = None
    stage: Stage | None = None
    step: int = 0
    total: int = 0
    denoise_t0: float | None = None
    denoise_s0: int = 0
    seconds_per_step: float | None = None
    expected: float | None = None
    """Typical seconds of this job (its tier's cost at the measured pace); None until measured."""

    def update(self, progress: Progress) -> None:
        self.stage = progress.stage
        # The English prompt is shown only when it is a translation, not the user's words echoed.
        detail = progress.detail
        if progress.stage == Stage.TRANSLATE and detail and detail.strip() != self.prompt.strip():
            self.prompt_en = detail
        if progress.stage != Stage.DENOISE:
            return
        self.step, self.total = progress.step, progress.total
        if self.denoise_t0 is None:
            self.denoise_t0, self.denoise_s0 = progress.elapsed, progress.step
        elif progress.step > self.denoise_s0:
            self.seconds_per_step = (progress.elapsed - self.denoise_t0) / (
                progress.step - self.denoise_s0
            )

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0

    def remaining(self) -> float | None:
        """Seconds left: from this run's own step rate once known, else its expected duration."""
        if self.seconds_per_step is not None and self.total:
            return self.seconds_per_step * (self.total - self.step)
        if self.expected is None:
            return None
        return remaining_seconds(self.fraction, time.monotonic() - self.started, self.expected)

    def text(self) -> str:
        if self.stage == Stage.DENOISE and self.total:
            return status_texts.running(
                self.prompt_en,
                self.stage,
                fraction=self.fraction,
                step=self.step,
                total=self.total,
                eta_seconds=self.remaining(),
                job_id=self.job_id,
            )
        return status_texts.running(self.prompt_en, self.stage, job_id=self.job_id)


class StatusReporter:
    """Throttled editor of one job's status message."""

    def __init__(self, hub: StatusHub, job_id: int, chat_id: int, locale: str | None) -> None:
        self.hub = hub
        self.job_id = job_id
        self.chat_id = chat_id
        self.locale = locale
        self.last_text: str | None = None
        self.last_edit = float("-inf")
        self.pending: str | None = None
        self.pending_preview: bytes | None = None
        self.previews = True
        """False once Telegram refused a preview image: the caption goes on alone."""
        self.cancellable = True
        """Whether edits carry the «✖ Cancel» button (until the job is generated or ends)."""
        self.closed = False
        self.run: RunState | None = None
        self._task: asyncio.Task[None] | None = None
        self._editing = False

    def show(self, text: str) -> None:
        """Make ``text`` the status as soon as the throttle allows (a newer text replaces it)."""
        if self.closed:
            return
        if text == self.last_text:
            self.pending = None
            return
        self.pending = text
        self.flush_soon()

    def show_preview(self, jpeg: bytes) -> None:
        """Make ``jpeg`` the status picture as soon as the throttle allows (newest wins)."""
        if self.closed or not self.previews:
            return
        self.pending_preview = jpeg
        self.flush_soon()

    def markup(self) -> InlineKeyboardMarkup | None:
        """The keyboard every edit carries: «✖ Cancel» while the job can be cancelled."""
        if not self.cancellable:
            return None
        with use_locale(self.locale):
            return cancel_keyboard(self.job_id)

    def _waiting(self) -> bool:
        return self.pending is not None or self.pending_preview is not None

    def sent(self, text: str) -> None:
        """``text`` was just sent as the status message: never edit to it again."""
        self.last_text = text
        self.last_edit = time.monotonic()
        if self.pending == text:
            self.pending = None

    def flush_soon(self) -> None:
        """Start the flush task if a text or a preview waits and none runs."""
        if self._waiting() and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._flush(), name=f"status-{self.job_id}")

    def stop(self) -> None:
        """Stop editing at once (someone else writes the last word, or shutdown)."""
        self.closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _flush(self) -> None:
        while self._waiting() and not self.closed:
            wait = self.last_edit + self.hub.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue  # the text may have changed while we slept
            text = self.pending if self.pending is not None else self.last_text
            if text is None:
                return  # nothing sent yet: announce() flushes once the message exists
            preview = self.pending_preview
            self._editing = True
            try:
                result = await self.hub.edit(
                    self.job_id, self.chat_id, text, preview=preview, markup=self.markup()
                )
            finally:
                self._editing = False
            if result == "no_message":
                return  # keep ``pending``: announce() flushes it once the message id is stored
            self.last_edit = time.monotonic()
            if result == "no_preview":  # the picture was refused: captions only from now on
                self.previews = False
                self.pending_preview = None
                continue
            if self.pending == text:
                self.pending = None
            if self.pending_preview is preview:
                self.pending_preview = None
            if result == "ok":
                self.last_text = text
            elif result in ("gone", "uneditable"):
                self.closed = True

    async def quiesce(self) -> None:
        """Stop editing, but let an edit in flight land and put a waiting text up at once (no
        throttle; without the cancel button): the caller replaces the message next (the video),
        and no late edit may overwrite it."""
        task = self._task
        self.closed = True
        self.cancellable = False
        if task is not None and not task.done():
            if self._editing:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        text = self.pending
        self.pending = self.pending_preview = None
        if text is not None and text != self.last_text:
            result = await self.hub.edit(self.job_id, self.chat_id, text, markup=None)
            if result == "ok":
                self.last_text = text
            self.last_edit = time.monotonic()

    async def close(
        self, final_text: str | None = None, *, delete: bool = False, resend: bool = True
    ) -> None:
        """Stop updating; then edit to ``final_text`` (throttle respected) or delete the message.

        If there is no status message to edit (never stored, deleted by the user, too old to
        edit), ``final_text`` is sent as a new message instead — unless ``resend`` is False (the
        caller already answered the user, e.g. ``/cancel``)."""
        task = self._task
        self.stop()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if delete:
            await self.hub.delete(self.job_id, self.chat_id)
        elif final_text is not None and final_text != self.last_text:
            wait = self.last_edit + self.hub.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            result = await self.hub.edit(self.job_id, self.chat_id, final_text, markup=None)
            if result == "no_message" and self.hub.announcing(self.job_id):
                # Its status message is being sent (a photo takes a moment): the last word goes
                # there, not into a second message beside it.
                await self.hub.wait_announced(self.job_id)
                result = await self.hub.edit(self.job_id, self.chat_id, final_text, markup=None)
            if resend and result in ("no_message", "missing", "uneditable"):
                await self.hub.send(self.job_id, self.chat_id, final_text)
            self.last_edit = time.monotonic()
            self.last_text = final_text


class StatusHub:
    """All status reporters, the queue refresh and the ETA figures."""

    def __init__(
        self,
        bot: Bot,
        jobs: JobStore,
        *,
        min_interval: float = 3.0,
        queue_refresh_interval: float = 10.0,
        tiers: TierSupport | None = None,
        preview: bool = False,
    ) -> None:
        """``tiers``: the loaded model's ``TierSupport`` (``ModelInfo.tiers``), by which each
        job's cost is counted; without it every tier counts its steps as best does.
        ``preview``: status messages are photos showing the live preview (``PREVIEW``)."""
        self.bot = bot
        self.preview = preview
        self.jobs = jobs
        self.tiers = tiers or TierSupport()
        self.min_interval = min_interval
        self.queue_refresh_interval = queue_refresh_interval
        self._reporters: dict[int, StatusReporter] = {}
        self._announcing: dict[int, asyncio.Event] = {}
        self._running_id: int | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._last_refresh = float("-inf")
        self._per_job: float | None = None
        self._clock: JobClock | None = None

    # ---------------------------------------------------------- reporters

    def reporter(self, job: Job) -> StatusReporter:
        found = self._reporters.get(job.id)
        if found is None:
            found = self._reporters[job.id] = StatusReporter(self, job.id, job.chat_id, job.locale)
        return found

    async def announce(self, job: Job, text: str, *, prefix: str | None = None) -> bool:
        """Send ``text`` as the job's status message (a reply to the request), store its id, and
        hand the job's reporter what waited for it. The one status-message handshake.

        ``prefix`` (the restart notice) goes before the text. The id is stored *before* an
        earlier status message is deleted: a kill in between leaves the job pointing at a live
        message (at worst the old one lingers), never at a deleted one whose final edit — the
        failure notice — would go nowhere. Returns False if the message could not be sent (the
        job stands; its video is still delivered)."""
        announced = self._announcing.setdefault(job.id, asyncio.Event())
        try:
            return await self._announce(job, text, prefix)
        finally:
            announced.set()
            if self._announcing.get(job.id) is announced:
                del self._announcing[job.id]

    def expect_announce(self, job_id: int) -> None:
        """The status message of ``job_id`` is about to be sent (:meth:`wait_announced` waits
        for it from now on, even before :meth:`announce` starts)."""
        self._announcing.setdefault(job_id, asyncio.Event())

    def announcing(self, job_id: int) -> bool:
        """The status message of ``job_id`` is being sent now (or is about to be)."""
        return job_id in self._announcing

    async def wait_announced(self, job_id: int, timeout: float = 10.0) -> None:
        """Until the status message of ``job_id`` being sent now is stored (at most ``timeout``
        seconds): a video rendered faster than its status photo was sent goes into that photo
        rather than beside it."""
        announced = self._announcing.get(job_id)
        if announced is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(announced.wait(), timeout)

    async def _announce(self, job: Job, text: str, prefix: str | None) -> bool:
        full = f"{prefix}\n{text}" if prefix else text
        markup = None
        if job.status in JobStatus.ACTIVE:
            with use_locale(job.locale):
                markup = cancel_keyboard(job.id)
        media = PHOTO if self.preview else None
        try:
            if media == PHOTO:
                size = (job.options.width, job.options.height)
                reply = await self.bot.send_photo(
                    chat_id=job.chat_id,
                    photo=BufferedInputFile(placeholder_jpeg(*size), filename="preview.jpg"),
                    caption=shorten(full, CAPTION_LIMIT),
                    reply_parameters=reply_to(job.request_message_id),
                    reply_markup=markup,
                )
            else:
                reply = await self.bot.send_message(
                    chat_id=job.chat_id,
                    text=shorten(full, MESSAGE_LIMIT),
                    reply_parameters=reply_to(job.request_message_id),
                    reply_markup=markup,
                )
        except TelegramAPIError as error:
            log.warning("job %s: status message not sent: %s", job.id, error)
            return False
        await self.jobs.set_status_message(job.id, reply.message_id, media)
        current = await self.jobs.get(job.id)
        if current is None:
            return True
        if current.status in (*JobStatus.ACTIVE, JobStatus.GENERATED):
            reporter = self.reporter(current)
            reporter.cancellable = current.status in JobStatus.ACTIVE
            reporter.sent(full)
            reporter.flush_soon()
        else:  # it ended before its status message existed: give it its last word now
            await self.settle(current)
        old = job.status_message_id
        if old is not None and old != reply.message_id:
            await self.delete(job.id, job.chat_id, message_id=old)
        return True

    async def finish(
        self,
        job: Job,
        final_text: str | None = None,
        *,
        delete: bool = False,
        resend: bool = True,
    ) -> None:
        """The job ended: last edit (or delete) and forget its reporter (``resend``: see
        :meth:`StatusReporter.close`)."""
        reporter = self._reporters.pop(job.id, None) or StatusReporter(
            self, job.id, job.chat_id, job.locale
        )
        if self._running_id == job.id:
            self._running_id = None
        await reporter.close(final_text, delete=delete, resend=resend)

    async def settle(self, job: Job) -> None:
        """``job`` ended before its status message id was stored: give that message its last
        word now (the error or «cancelled»), or delete it if the video was sent."""
        with use_locale(job.locale):
            if job.status == JobStatus.FAILED:
                await self.finish(job, status_texts.failure(job.error))
            elif job.status == JobStatus.CANCELLED:
                await self.finish(job, status_texts.cancelled())
            else:
                await self.finish(job, delete=True)

    async def quiesce(self, job: Job) -> None:
        """Delivery is about to put the video into the status message: let the last edit land,
        then edit no more (:meth:`StatusReporter.quiesce`)."""
        reporter = self._reporters.get(job.id)
        if reporter is not None:
            await reporter.quiesce()

    def controls_off(self, job_id: int) -> None:
        """The job can no longer be cancelled (its video is made): edits drop the button."""
        reporter = self._reporters.get(job_id)
        if reporter is not None:
            reporter.cancellable = False

    def silence(self, job_id: int) -> None:
        """Stop editing ``job_id`` at once (someone else writes its last word, e.g. /cancel)."""
        reporter = self._reporters.get(job_id)
        if reporter is not None:
            reporter.stop()

    # ---------------------------------------------------------- running job

    async def begin_running(self, job: Job) -> None:
        """The loop claimed ``job``: show that it started, and move everyone else up."""
        reporter = self.reporter(job)
        reporter.closed = False
        prompt_en = job.prompt_en if job.prompt_en and job.prompt_en != job.prompt else None
        reporter.run = RunState(prompt=job.prompt, job_id=job.number, prompt_en=prompt_en)
        self._running_id = job.id
        clock = await self.job_clock(refresh=True)
        if clock.measured:
            reporter.run.expected = clock.seconds(job.options)
        with use_locale(job.locale):
            reporter.show(reporter.run.text())
        self.queue_moved()

    def progress(self, job_id: int, progress: Progress) -> None:
        """A progress report from the worker thread (already moved onto the event loop)."""
        reporter = self._reporters.get(job_id)
        if reporter is None or reporter.run is None:
            return
        reporter.run.update(progress)
        if progress.preview is not None and self.preview:
            reporter.show_preview(progress.preview.jpeg)
        with use_locale(reporter.locale):
            reporter.show(reporter.run.text())

    def show(self, job: Job, text: str) -> None:
        self.reporter(job).show(text)

    # ---------------------------------------------------------- queue

    async def refresh_eta(self) -> float | None:
        """Learn the pace of each tier again from the recent generated jobs (:meth:`job_clock`);
        returns their median duration, None until a job has been measured."""
        runs = await self.jobs.recent_runs()
        self._clock = JobClock.learn(runs, self.tiers)
        self._per_job = estimate_seconds((run.seconds for run in runs), 0.0) or None
        return self._per_job

    async def job_clock(self, *, refresh: bool = False) -> JobClock:
        """What a job costs here (``bot/eta.py``), learned at the last :meth:`refresh_eta` (again
        while nothing was measured, so the first measured job counts at once)."""
        if refresh or self._clock is None or not self._clock.measured:
            await self.refresh_eta()
        assert self._clock is not None
        return self._clock

    def running_remaining(self) -> float:
        reporter = self._reporters.get(self._running_id) if self._running_id else None
        if reporter is None or reporter.run is None:
            return 0.0
        return reporter.run.remaining() or 0.0

    async def queued_etas(self) -> dict[int, tuple[Job, int, float | None]]:
        """Every queued job with its place (1 = next) and, once measured, its ETA: the rest of
        the running job, then each job ahead at its own tier's cost, then its own. One read of
        the queue for all of them."""
        clock = await self.job_clock()
        queued = [job for job in await self.jobs.all_active() if job.status == JobStatus.QUEUED]
        etas: list[float | None] = [None] * len(queued)
        if clock.measured:
            etas = list(clock.queue_etas([job.options for job in queued], self.running_remaining()))
        return {
            job.id: (job, i + 1, eta) for i, (job, eta) in enumerate(zip(queued, etas, strict=True))
        }

    async def queued_text(self, job: Job) -> str:
        """The status text of a queued job in its locale: position (in the fair queue's order,
        ``JobStore.queue_order``), once measured the ETA, and the cost of a costly request."""
        _, position, eta = (await self.queued_etas()).get(job.id, (job, None, None))
        with use_locale(job.locale):
            return status_texts.queued(job.number, position, eta, shown_cost(job.cost))

    def queue_moved(self) -> None:
        """The queue changed (a job claimed, cancelled, finished): refresh positions, throttled."""
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.create_task(self._refresh_queue(), name="queue-refresh")

    async def _refresh_queue(self) -> None:
        wait = self._last_refresh + self.queue_refresh_interval - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_refresh = time.monotonic()
        try:
            await self.refresh_eta()
            for job, position, eta in (await self.queued_etas()).values():
                with use_locale(job.locale):
                    self.show(job, status_texts.queued(job.number, position, eta))
        except Exception:
            log.exception("queue refresh failed")

    async def close(self) -> None:
        """Stop every pending edit (shutdown); messages keep their last text."""
        if self._refresh_task is not None:
            self._refresh_task.cancel()
        for reporter in list(self._reporters.values()):
            reporter.stop()
        self._reporters.clear()

    # ---------------------------------------------------------- Telegram calls

    async def _message_id(self, job_id: int) -> int | None:
        job = await self.jobs.get(job_id)
        return job.status_message_id if job is not None else None

    async def edit(
        self,
        job_id: int,
        chat_id: int,
        text: str,
        *,
        preview: bytes | None = None,
        markup: InlineKeyboardMarkup | None = None,
    ) -> EditResult:
        """Edit the status message: its text, or for a photo its caption and (with ``preview``)
        its picture; ``markup`` is the keyboard it keeps (None removes it). ``ok``;
        ``no_message`` (id not stored yet); ``missing`` ("message to edit not found": deleted by
        the user, or just replaced by a restart notice — the id is looked up again next time);
        ``uneditable`` ("message can't be edited": too old, stop editing); ``no_preview`` (the
        picture was refused, not the message); ``gone`` (any other refusal, or the user blocked
        the bot: stop editing); ``error`` (try again later)."""
        job = await self.jobs.get(job_id)
        message_id = job.status_message_id if job is not None else None
        if job is None or message_id is None:
            return "no_message"
        try:
            if job.status_media == PHOTO and preview is not None:
                await self.bot.edit_message_media(
                    media=InputMediaPhoto(
                        media=BufferedInputFile(preview, filename="preview.jpg"),
                        caption=shorten(text, CAPTION_LIMIT),
                    ),
                    chat_id=chat_id,
                    message_id=message_id,
                    reply_markup=markup,
                )
            elif job.status_media == PHOTO:
                await self.bot.edit_message_caption(
                    caption=shorten(text, CAPTION_LIMIT),
                    chat_id=chat_id,
                    message_id=message_id,
                    reply_markup=markup,
                )
            else:
                await self.bot.edit_message_text(
                    text=shorten(text, MESSAGE_LIMIT),
                    chat_id=chat_id,
                    message_id=message_id,
                    reply_markup=markup,
                )
        except TelegramBadRequest as error:
            if is_not_modified(error):
                return "ok"
            log.info("job %s: status edit refused: %s", job_id, error)
            description = str(error).lower()
            if "not found" in description:
                return "missing"
            if "can't be edited" in description:
                return "uneditable"
            return "no_preview" if preview is not None else "gone"
        except (TelegramForbiddenError, TelegramNotFound) as error:
            log.info("job %s: status edit impossible: %s", job_id, error)
            return "gone"
        except TelegramAPIError as error:
            log.warning("job %s: status edit failed: %s", job_id, error)
            return "error"
        return "ok"

    async def delete(self, job_id: int, chat_id: int, *, message_id: int | None = None) -> None:
        """Delete the job's status message (or the given one of its messages), if it can be."""
        if message_id is None:
            message_id = await self._message_id(job_id)
        if message_id is None:
            return
        try:
            await self.bot.delete_message(chat_id=chat_id, message_id=message_id)
        except TelegramAPIError as error:  # too old to delete, already gone: harmless
            log.info("job %s: status message not deleted: %s", job_id, error)

    async def send(self, job_id: int, chat_id: int, text: str) -> None:
        """A final word for a job without a status message to edit: a reply to the request."""
        job = await self.jobs.get(job_id)
        try:
            await self.bot.send_message(
                chat_id=chat_id,
                text=shorten(text, MESSAGE_LIMIT),
                reply_parameters=reply_to(job.request_message_id if job else None),
            )
        except TelegramAPIError as error:
            log.info("job %s: final status not sent: %s", job_id, error)
