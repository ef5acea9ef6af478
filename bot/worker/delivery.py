"""Sending a finished video: a reply to the request, with its facts and the result buttons.

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
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiogram.enums import ChatAction
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
)
from aiogram.types import FSInputFile, ReplyParameters

from bot import texts
from bot.keyboards import result_keyboard
from bot.logs import mask
from bot.session import upload_timeout

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.config import Settings
    from bot.jobs import Job, JobStore
    from bot.worker.status import StatusHub

log = logging.getLogger(__name__)

DELIVERY_ROUNDS = 3
ROUND_PAUSE = 20.0
"""Seconds between two rounds of sending one video, after the session's own retries gave up."""


def video_meta(result: Any, gen_seconds: float) -> dict[str, Any]:
    """The facts of an encoded video stored with the job (``jobs.video_meta``), enough to send it
    again after a restart without the pipeline."""
    video = result.video
    return {
        "path": str(video.path),
        "thumbnail": str(video.thumbnail) if getattr(video, "thumbnail", None) else None,
        "width": int(video.width),
        "height": int(video.height),
        "duration": float(video.duration),
        "frames": int(video.frames),
        "fps": int(video.fps),
        "size_bytes": int(video.size_bytes),
        "seed": int(result.seed),
        "prompt_en": result.prompt_en,
        "timings": {k: round(float(v), 3) for k, v in (result.timings or {}).items()},
        "gen_seconds": round(gen_seconds, 3),
    }


def _file_size(path: Path) -> int | None:
    """Size of a regular file, None if it is missing."""
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


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
    ) -> None:
        self.bot = bot
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
        if job is None or job.status != "generated":
            return  # delivered, cancelled or failed meanwhile: never send twice
        meta = job.video_meta or {}
        path = Path(job.video_path or meta.get("path") or "")
        size = await asyncio.to_thread(_file_size, path) if job.video_path else None
        if size is None:
            await self._fail(job, "video file missing", texts.VIDEO_MISSING)
            return
        if size > self.settings.upload_limit_bytes:
            await self._fail(job, f"video of {size} bytes over the upload limit", texts.TOO_LARGE)
            return
        self.status.show(job.id, job.chat_id, texts.UPLOADING)
        for round_ in range(1, DELIVERY_ROUNDS + 1):
            try:
                await self._send(job, path, meta, size)
                return
            except TelegramForbiddenError as error:
                log.info("job %s: user blocked the bot: %s", job.id, error)
                await self.jobs.mark_undeliverable(job.id, mask(str(error)))
                await self.status.finish(job.id, job.chat_id)
                return
            except (TelegramBadRequest, TelegramEntityTooLarge) as error:
                log.warning("job %s: video refused: %s", job.id, error)
                await self._fail(job, mask(str(error)), texts.FAILED_DELIVERY)
                return
            except (TelegramNetworkError, TelegramAPIError) as error:
                log.warning("job %s: upload round %d failed: %s", job.id, round_, error)
                if round_ == DELIVERY_ROUNDS:
                    await self._fail(job, mask(str(error)), texts.FAILED_DELIVERY)
                    return
                await asyncio.sleep(self.round_pause)

    async def _send(self, job: Job, path: Path, meta: dict[str, Any], size: int) -> None:
        options = job.options
        with contextlib.suppress(TelegramAPIError):  # a chat action is cosmetic
            await self.bot.send_chat_action(chat_id=job.chat_id, action=ChatAction.UPLOAD_VIDEO)
        thumb = meta.get("thumbnail")
        has_thumb = bool(thumb) and await asyncio.to_thread(_file_size, Path(thumb)) is not None
        thumbnail = FSInputFile(thumb) if has_thumb else None
        prompt_en = meta.get("prompt_en") or job.prompt_en
        caption = texts.caption(
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
        message = await self.bot.send_video(
            chat_id=job.chat_id,
            video=FSInputFile(path, filename=f"video-{job.id}.mp4"),
            width=int(meta.get("width", options.width)),
            height=int(meta.get("height", options.height)),
            duration=max(1, round(float(meta.get("duration", options.duration)))),
            thumbnail=thumbnail,
            caption=caption,
            supports_streaming=True,
            reply_parameters=(
                ReplyParameters(message_id=job.request_message_id, allow_sending_without_reply=True)
                if job.request_message_id
                else None
            ),
            reply_markup=result_keyboard(job.id),
            request_timeout=upload_timeout(size),
        )
        file_id = message.video.file_id if message.video else None
        if not await self.jobs.mark_delivered(job.id, file_id, message.message_id):
            log.warning("job %s: sent, but it was no longer 'generated'", job.id)
        await self.status.finish(job.id, job.chat_id, delete=True)
        log.info("job %s: delivered (%d bytes)", job.id, size)

    async def _fail(self, job: Job, error: str, user_text: str) -> None:
        await self.jobs.mark_failed(job.id, user_text)
        log.warning("job %s: delivery failed: %s", job.id, error)
        await self.status.finish(job.id, job.chat_id, user_text)
