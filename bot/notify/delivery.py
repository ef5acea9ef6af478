"""Sending a finished video: a reply to the request, with its facts and the result buttons.

Two ways, one rule. When the job's status message is a photo (``PREVIEW=on``: the live preview),
the video *replaces* it: ``editMessageMedia`` of that message with the MP4, its thumbnail,
``supports_streaming``, the caption and the result keyboard; then a short «done» reply, because
an edit does not notify. An edit repeated after a crash (Telegram accepted the first one, its
answer was lost) edits the same message again: it can never make a second video, which closes the
accept→commit window of docs/reliability.md. When the status message is gone (deleted, too old,
the edit refused) or is text (``PREVIEW=off``, jobs from before), ``sendVideo`` replies to the
request, as it always did.

Runs as its own task, so the GPU starts the next job while this one uploads. The job row is the
source of truth: a job is sent only while it is ``generated``, and ``mark_delivered`` is the
conditional ``generated → delivered`` step, so a delivered job is never sent again (at start,
:meth:`bot.jobs.JobStore.recover` lists ``generated`` jobs, which are sent from the stored file
without regenerating).

Failure rules: 403 (the user blocked the bot) → ``undeliverable``; a 400/413 that re-sending will
not fix → ``failed`` with a message; anything else (network, 5xx after the session's own
retries) → a few more rounds after a pause, then ``failed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
)
from aiogram.types import FSInputFile, InputMediaVideo, Message
from aiogram.utils.chat_action import ChatActionSender

from bot.i18n import use_locale
from bot.logs import mask
from bot.storage.jobs import FailReason, JobStatus
from bot.storage.videos import LocalVideoStore, VideoMissing, VideoStore, VideoStoreError
from bot.telegram.keyboards import result_keyboard
from bot.telegram.replies import reply_to
from bot.telegram.session import upload_timeout
from bot.texts import status as status_texts

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.config import Settings
    from bot.notify.status import StatusHub
    from bot.storage.jobs import Job, JobStore

log = logging.getLogger(__name__)

MESSAGE_GONE = ("not found", "can't be edited", "message_id_invalid", "no media", "there is no")
"""Fragments of the 400s that say the status message cannot take the video (then sendVideo)."""

DELIVERY_ROUNDS = 3
ROUND_PAUSE = 20.0
"""Seconds between two rounds of sending one video, after the session's own retries gave up."""


def _file_size(path: Path) -> int | None:
    """Size of a regular file, None if it is missing."""
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


class UploadObserver(Protocol):
    """Told of each video sent (the metrics: upload seconds and bytes)."""

    def uploaded(self, job: Job, size_bytes: int, seconds: float) -> None: ...


class Delivery:
    """Uploads finished videos; at most ``concurrency`` uploads at once."""

    def __init__(
        self,
        bot: Bot,
        jobs: JobStore,
        status: StatusHub,
        settings: Settings,
        *,
        concurrency: int = 2,
        round_pause: float = ROUND_PAUSE,
        observer: UploadObserver | None = None,
        videos: VideoStore | None = None,
    ) -> None:
        self.bot = bot
        self.videos = videos or LocalVideoStore(settings.video_dir)
        """Where the finished videos are (``VIDEO_STORE``): a download is removed after sending."""
        self.observer = observer
        self.jobs = jobs
        self.status = status
        self.settings = settings
        self.round_pause = round_pause
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: set[int] = set()

    async def deliver(self, job_id: int) -> None:
        """Send the video of ``job_id`` if it is still ``generated``; never raises."""
        if job_id in self._in_flight:
            return
        self._in_flight.add(job_id)
        try:
            async with self._slots:
                await self._deliver(job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: delivery crashed", job_id)
        finally:
            self._in_flight.discard(job_id)

    async def _deliver(self, job_id: int) -> None:
        job = await self.jobs.get(job_id)
        if job is None or job.status != JobStatus.GENERATED:
            return  # delivered, cancelled or failed meanwhile: never send twice
        meta = job.video_meta or {}
        try:
            size = await self.videos.size(job.video_path) if job.video_path else None
        except VideoStoreError as error:  # the store is unreachable now: its rounds decide
            log.warning("job %s: video store: %s", job.id, error)
            size = meta.get("size_bytes")
        if size is None:
            await self._fail(job, "video file missing", FailReason.VIDEO_MISSING)
            return
        if size > self.settings.upload_limit_bytes:
            await self._fail(job, f"{size} bytes over the upload limit", FailReason.TOO_LARGE)
            return
        with use_locale(job.locale):
            self.status.show(job, status_texts.uploading())
        for round_ in range(1, DELIVERY_ROUNDS + 1):
            try:
                async with (
                    ChatActionSender.upload_video(bot=self.bot, chat_id=job.chat_id),
                    self.videos.open(job.video_path or "", meta.get("thumbnail")) as files,
                ):
                    thumb = str(files.thumbnail) if files.thumbnail else None
                    await self._send(job, files.video, {**meta, "thumbnail": thumb}, size)
                return
            except VideoMissing as error:
                await self._fail(job, str(error), FailReason.VIDEO_MISSING)
                return
            except TelegramForbiddenError as error:
                log.info("job %s: user blocked the bot: %s", job.id, error)
                await self.jobs.mark_undeliverable(job.id)
                await self.status.finish(job)
                return
            except (TelegramBadRequest, TelegramEntityTooLarge) as error:
                log.warning("job %s: video refused: %s", job.id, error)
                await self._fail(job, mask(str(error)), FailReason.DELIVERY)
                return
            except (TelegramNetworkError, TelegramAPIError, VideoStoreError) as error:
                log.warning("job %s: upload round %d failed: %s", job.id, round_, error)
                if round_ == DELIVERY_ROUNDS:
                    await self._fail(job, mask(str(error)), FailReason.DELIVERY)
                    return
                await asyncio.sleep(self.round_pause)

    async def _send(self, job: Job, path: Path, meta: dict[str, Any], size: int) -> None:
        options = job.options
        thumb = meta.get("thumbnail")
        has_thumb = bool(thumb) and await asyncio.to_thread(_file_size, Path(thumb)) is not None
        thumbnail = FSInputFile(thumb) if has_thumb else None
        prompt_en = meta.get("prompt_en") or job.prompt_en
        with use_locale(job.locale):
            caption = status_texts.caption(
                job.prompt,
                prompt_en,
                seed=int(meta.get("seed", options.seed)),
                steps=options.steps,
                width=int(meta.get("width", options.width)),
                height=int(meta.get("height", options.height)),
                frames=int(meta.get("frames", options.frames)),
                fps=int(meta.get("fps", options.fps)),
                seconds=job.gen_seconds,
            )
            keyboard = result_keyboard(job.id)
        video = {
            "width": int(meta.get("width", options.width)),
            "height": int(meta.get("height", options.height)),
            "duration": max(1, round(float(meta.get("duration", options.duration)))),
            "thumbnail": thumbnail,
            "caption": caption,
            "supports_streaming": True,
        }
        filename = f"video-{job.number}.mp4"
        sending = time.monotonic()
        edited = await self._edit_into_status(job, path, filename, video, keyboard, size)
        if edited is not None:
            self._uploaded(job, size, time.monotonic() - sending)
            await self._done(job, edited)
            return
        message = await self.bot.send_video(
            chat_id=job.chat_id,
            video=FSInputFile(path, filename=filename),
            **video,
            reply_parameters=reply_to(job.request_message_id),
            reply_markup=keyboard,
            request_timeout=upload_timeout(size),
        )
        self._uploaded(job, size, time.monotonic() - sending)
        file_id = message.video.file_id if message.video else None
        if not await self.jobs.mark_delivered(job.id, file_id, message.message_id):
            log.warning("job %s: sent, but it was no longer 'generated'", job.id)
        await self.status.finish(job, delete=True)
        log.info("job %s: delivered (%d bytes)", job.id, size)

    async def _edit_into_status(
        self,
        job: Job,
        path: Path,
        filename: str,
        video: dict[str, Any],
        keyboard: Any,
        size: int,
    ) -> tuple[int, str | None] | None:
        """Put the video into the job's status photo; ``(message id, file_id)``, or None when
        there is no such message to edit (then the caller sends the video anew). Errors about
        the video itself (too large, blocked, network) propagate as sendVideo's would."""
        await self.status.wait_announced(job.id)
        current = await self.jobs.get(job.id)
        message_id = current.status_message_id if current is not None else None
        if current is None or message_id is None or current.status_media != "photo":
            return None
        await self.status.quiesce(current)  # no preview edit may land on top of the video
        try:
            result = await self.bot.edit_message_media(
                chat_id=job.chat_id,
                message_id=message_id,
                media=InputMediaVideo(media=FSInputFile(path, filename=filename), **video),
                reply_markup=keyboard,
                request_timeout=upload_timeout(size),
            )
        except TelegramBadRequest as error:
            description = str(error).lower()
            if "not modified" in description:  # it is the video already (a repeated edit)
                return message_id, None
            if any(fragment in description for fragment in MESSAGE_GONE):
                log.info("job %s: status message cannot take the video (%s)", job.id, error)
                return None
            raise
        message = result if isinstance(result, Message) else None
        file_id = message.video.file_id if message is not None and message.video else None
        return message_id, file_id

    async def _done(self, job: Job, edited: tuple[int, str | None]) -> None:
        """The video is in the status message: say so (a reply notifies where an edit does not;
        a repeated «done» after a crash is harmless), then commit."""
        message_id, file_id = edited
        with use_locale(job.locale):
            text = status_texts.ready(job.number)
        try:
            await self.bot.send_message(
                chat_id=job.chat_id, text=text, reply_parameters=reply_to(message_id)
            )
        except TelegramAPIError as error:  # the video is there; the notice is a courtesy
            log.info("job %s: «done» reply not sent: %s", job.id, error)
        if not await self.jobs.mark_delivered(job.id, file_id, message_id):
            log.warning("job %s: edited in, but it was no longer 'generated'", job.id)
        await self.status.finish(job)  # the message is the video now: never delete it
        log.info("job %s: delivered into its status message", job.id)

    def _uploaded(self, job: Job, size: int, seconds: float) -> None:
        if self.observer is not None:
            try:
                self.observer.uploaded(job, size, seconds)
            except Exception:  # a metric never costs a delivery
                log.exception("job %s: upload observer failed", job.id)

    async def _fail(self, job: Job, error: str, reason: str) -> None:
        await self.jobs.mark_failed(job.id, reason)
        log.warning("job %s: delivery failed: %s", job.id, error)
        with use_locale(job.locale):
            await self.status.finish(job, status_texts.failure(reason))
