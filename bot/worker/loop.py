"""The generation loop: one per GPU, claims queued jobs one by one and renders them off the event loop.

``backend.run`` blocks for seconds to minutes, so it runs in one dedicated worker thread
(``ThreadPoolExecutor(max_workers=1)``: GPU work is serial, and one thread keeps CUDA state in
one place); the event loop keeps answering users meanwhile. Progress reports cross back with
``call_soon_threadsafe``. Each running job has a ``threading.Event`` that the pipeline checks at
every denoising step: :meth:`GenerationLoop.cancel` sets it (``/cancel``), and so does a
graceful stop.

A finished video is marked ``generated`` and handed to :class:`bot.worker.delivery.Delivery` as
a separate task; the loop claims the next job at once, so uploading overlaps the next render.

On a graceful stop the running job is interrupted and *left* ``running`` in the database: the
next start requeues it (``JobStore.recover``), exactly as after a crash. Nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiogram.exceptions import TelegramAPIError
from aiogram.types import ReplyParameters

from bot import texts
from bot.logs import mask
from bot.pause import PauseState
from bot.worker.delivery import video_meta
from pipeline.errors import GenerationOOM, VideoTooLarge
from pipeline.progress import GenerationCancelled, Progress, Stage

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.backend import ConfiguredBackend, RunResultLike
    from bot.config import Settings
    from bot.jobs import Job, JobStore
    from bot.worker.delivery import Delivery
    from bot.worker.status import StatusHub

log = logging.getLogger(__name__)

IDLE_POLL = 5.0
"""Seconds between two looks at an empty queue when nobody woke the loop (a safety net)."""
PROGRESS_DB_INTERVAL = 1.0
"""Seconds between two writes of a running job's progress to the database."""


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA/MPS out-of-memory, whether the pipeline wrapped it or not."""
    if isinstance(error, (GenerationOOM, MemoryError)):
        return True
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


class GenerationLoop:
    """Claims, renders and hands over jobs until stopped. One instance per process."""

    def __init__(
        self,
        *,
        bot: Bot,
        jobs: JobStore,
        backend: ConfiguredBackend,
        settings: Settings,
        status: StatusHub,
        delivery: Delivery,
        pause: PauseState | None = None,
    ) -> None:
        self.bot = bot
        self.jobs = jobs
        self.backend = backend
        self.settings = settings
        self.status = status
        self.delivery = delivery
        self.current_job_id: int | None = None
        self.pause_state = pause if pause is not None else PauseState()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._wake = asyncio.Event()
        self._cancels: dict[int, threading.Event] = {}
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._last_progress_write = 0.0

    # ---------------------------------------------------------- control

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="generation-loop")

    def wake(self) -> None:
        """A job was queued: look at the queue now instead of at the next idle poll."""
        self._wake.set()

    def cancel(self, job_id: int) -> bool:
        """Stop ``job_id`` within one denoising step if it is rendering now; True if it was.

        The caller marks the job ``cancelled`` in the database first (``JobStore.cancel``), so
        it can never become ``generated`` even if rendering ends before the flag is seen.
        """
        self.status.silence(job_id)  # no progress edit may land after the canceller's text
        event = self._cancels.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    @property
    def paused(self) -> bool:
        return self.pause_state.paused

    def pause(self) -> bool:
        """Finish the running job, then claim nothing until :meth:`resume` (``/pause``)."""
        return self.pause_state.pause()

    def resume(self) -> bool:
        resumed = self.pause_state.resume()
        self.wake()
        return resumed

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def deliver(self, job_id: int) -> asyncio.Task[Any]:
        return self.spawn(self.delivery.deliver(job_id), name=f"deliver-{job_id}")

    async def stop(self, *, grace: float = 30.0, delivery_grace: float = 10.0) -> None:
        """Graceful stop: interrupt the running job (it stays ``running`` for the next start),
        let uploads in flight finish for ``delivery_grace`` seconds, then cancel the rest
        (their jobs stay ``generated`` and are sent at the next start)."""
        self._stopping = True
        for event in self._cancels.values():
            event.set()
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                log.warning("the running job did not stop within %.0f s; leaving it", grace)
                self._task.cancel()
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=delivery_grace)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
        await self.status.close()

    # ---------------------------------------------------------- recovery

    async def recover(self) -> None:
        """At start: requeue interrupted jobs (telling their users), fail the ones interrupted
        too often, and send videos that were generated but not delivered (no regeneration)."""
        recovery = await self.jobs.recover(max_attempts=self.settings.max_attempts)
        if recovery.requeued or recovery.failed or recovery.undelivered:
            log.info(
                "recovery: %d requeued, %d failed, %d to deliver",
                len(recovery.requeued),
                len(recovery.failed),
                len(recovery.undelivered),
            )
        for job in recovery.undelivered:
            self.deliver(job.id)
        if recovery.requeued or recovery.failed:
            self.spawn(
                self._notify_recovered(recovery.requeued, recovery.failed), "recovery-notify"
            )

    async def _notify_recovered(self, requeued: list[Job], failed: list[Job]) -> None:
        for job in failed:
            await self.status.finish(job.id, job.chat_id, texts.FAILED_ATTEMPTS)
        for job in requeued:
            await self._renew_status(job.id)

    async def _renew_status(self, job_id: int) -> None:
        """Tell the user of a requeued job that it continues, in a new status message (edits do
        not notify, and a restart deserves a notification); the old one is deleted.

        The new id is stored *before* the old message is deleted: a kill in between leaves the
        job pointing at a live message (at worst the old one lingers), never at a deleted one
        whose final edit — the failure notice — would go nowhere."""
        job = await self.jobs.get(job_id)
        if job is None or job.status not in ("queued", "running"):
            return  # finished meanwhile: its delivery or error said enough
        if job.status == "queued":
            text = f"{texts.RESUMED}\n{await self.status.queued_text(job.id)}"
        else:  # the loop claimed it again already
            text = f"{texts.RESUMED}\n{texts.STARTING}"
        try:
            message = await self.bot.send_message(
                chat_id=job.chat_id,
                text=text,
                reply_parameters=(
                    ReplyParameters(
                        message_id=job.request_message_id, allow_sending_without_reply=True
                    )
                    if job.request_message_id
                    else None
                ),
            )
        except TelegramAPIError as error:
            log.info("job %s: resume notice not sent: %s", job.id, error)
            return
        await self.jobs.set_status_message(job.id, message.message_id)
        self.status.remember(job.id, job.chat_id, text)
        self.status.attach(job.id)
        if job.status_message_id is not None and job.status_message_id != message.message_id:
            await self.status.delete(job.id, job.chat_id, message_id=job.status_message_id)

    # ---------------------------------------------------------- the loop

    async def _run(self) -> None:
        log.info("generation loop started on %s", self.backend.device_info())
        while not self._stopping:
            self._wake.clear()  # before the claim, so a wake during it is not lost
            if self.paused:  # /resume may flip the shared PauseState directly: look every second
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                continue
            job = None
            try:
                job = await self.jobs.claim_next()
            except Exception:
                log.exception("claiming a job failed")
            if job is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL)
                continue
            try:
                await self._generate(job)
            except Exception as error:
                log.exception("job %s: unexpected error in the loop", job.id)
                await self._fail_if_running(job, error)
            finally:
                self._cancels.pop(job.id, None)
                self.current_job_id = None
        log.info("generation loop stopped")

    async def _generate(self, job: Job) -> None:
        cancel = threading.Event()
        self._cancels[job.id] = cancel
        self.current_job_id = job.id
        # A /cancel that landed between the claim and the line above found no flag to set:
        # look once more now that any later cancel will reach the flag.
        current = await self.jobs.get(job.id)
        if current is None or current.status != "running":
            log.info("job %s: cancelled before rendering began", job.id)
            return
        log.info("job %s: started (attempt %d)", job.id, job.attempts)
        await self.status.begin_running(job)
        # The file name comes from the job id only, never from user text.
        output = Path(self.settings.video_dir) / f"job-{job.id}.mp4"
        event_loop = asyncio.get_running_loop()

        def on_progress(progress: Progress) -> None:  # called in the worker thread
            event_loop.call_soon_threadsafe(self._on_progress, job, progress)

        def run() -> RunResultLike:  # in the worker thread: a broken VIDEO_DIR fails this job only
            output.parent.mkdir(parents=True, exist_ok=True)
            return self.backend.run(
                job.options,
                output,
                translate=job.translate,
                on_progress=on_progress,
                cancel=cancel,
                max_bytes=self.settings.upload_limit_bytes,
                prompt_en=job.prompt_en,
            )

        started = time.monotonic()
        try:
            result = await event_loop.run_in_executor(self._executor, run)
        except GenerationCancelled:
            await self._interrupted(job)
            return
        except VideoTooLarge as error:
            await self._failed(job, error, texts.TOO_LARGE)
            return
        except Exception as error:
            if self._stopping:
                log.info("job %s: interrupted by shutdown (%s)", job.id, type(error).__name__)
                return
            log.exception("job %s: generation failed", job.id)
            hint = texts.FAILED_MEMORY if is_out_of_memory(error) else texts.FAILED
            await self._failed(job, error, hint)
            return
        finally:
            self._cancels.pop(job.id, None)
            self.current_job_id = None
        gen_seconds = time.monotonic() - started
        if result.prompt_en and result.prompt_en != job.prompt_en:
            await self.jobs.set_prompt_en(job.id, result.prompt_en)
        if not await self.jobs.mark_generated(
            job.id, str(result.video.path), video_meta(result, gen_seconds), gen_seconds
        ):
            log.info("job %s: finished rendering but was cancelled meanwhile", job.id)
            await self.status.finish(job.id, job.chat_id)
            self.status.queue_moved()
            return
        log.info("job %s: generated in %.1f s", job.id, gen_seconds)
        self.status.show(job.id, job.chat_id, texts.UPLOADING)
        self.deliver(job.id)
        await self.status.refresh_eta()

    def _on_progress(self, job: Job, progress: Progress) -> None:
        self.status.progress(job.id, progress)
        if progress.stage == Stage.TRANSLATE and progress.detail:
            self.spawn(self.jobs.set_prompt_en(job.id, progress.detail), f"prompt-en-{job.id}")
        now = time.monotonic()
        if (
            progress.stage == Stage.DENOISE
            and now - self._last_progress_write >= PROGRESS_DB_INTERVAL
        ):
            self._last_progress_write = now
            self.spawn(self.jobs.set_progress(job.id, progress.fraction), f"progress-{job.id}")

    async def _interrupted(self, job: Job) -> None:
        if self._stopping:
            log.info("job %s: interrupted by shutdown; it resumes at the next start", job.id)
            return
        # /cancel marked the row and wrote its own status text; a bare cancel flag did neither.
        marked_here = await self.jobs.cancel(job.id) is not None
        log.info("job %s: cancelled while rendering", job.id)
        await self.status.finish(job.id, job.chat_id, texts.CANCELLED if marked_here else None)
        self.status.queue_moved()

    async def _fail_if_running(self, job: Job, error: BaseException) -> None:
        """After an unexpected error, never leave the job ``running`` until the next restart
        (a ``generated`` one is left to its delivery)."""
        try:
            current = await self.jobs.get(job.id)
            if current is not None and current.status == "running" and not self._stopping:
                await self._failed(job, error, texts.FAILED)
        except Exception:
            log.exception("job %s: could not be marked failed", job.id)

    async def _failed(self, job: Job, error: BaseException, user_text: str) -> None:
        """Fail only this job: store the human text, free accelerator memory, tell the user."""
        log.warning("job %s: failed: %s", job.id, mask(f"{type(error).__name__}: {error}"))
        await self.jobs.mark_failed(job.id, user_text)
        try:
            free = getattr(self.backend, "free_memory", None)
            if free is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, free)
        except Exception:
            log.exception("freeing accelerator memory failed")
        await self.status.finish(job.id, job.chat_id, user_text)
        self.status.queue_moved()
