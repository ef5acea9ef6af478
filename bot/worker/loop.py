"""The generation loop: one per GPU, claims queued jobs one by one and renders them off the event loop.

``backend.run`` blocks for seconds to minutes, so it runs in one dedicated worker thread
(``ThreadPoolExecutor(max_workers=1)``: GPU work is serial, and one thread keeps CUDA state in
one place); the event loop keeps answering users meanwhile. Progress reports cross back with
``call_soon_threadsafe``. Each running job has a ``threading.Event`` that the pipeline checks at
every denoising step: :meth:`GenerationLoop.cancel` sets it (``/cancel``), and so does a
graceful stop.

The loop knows nothing of Telegram: it writes the job's row and reports each turn to a
:class:`bot.worker.events.JobEvents` (status messages and delivery in the bot). A finished video
is marked ``generated`` and reported; delivery runs as its own task, so the next claim happens
at once and uploading overlaps the next render.

Limits are checked again at claim time (:func:`limit_breach`): a job queued before the operator
lowered ``MAX_STEPS``/``MAX_FRAMES``/``MAX_PIXELS`` and restarted, whose options the model's
current bounds no longer allow, fails at once with ``FailReason.over_limit`` naming the option and
its current maximum — nothing is rendered, and it is not charged to the daily budgets. Failing
rather than clamping: a clamped video is not the one that was asked for (fewer steps, a different
size or length), and the user can send the request again within the new limits in one message.

The content policy (``bot/worker/screening.py``): the stored prompts are checked again when the job
is claimed (the list may have changed while it waited), the translated prompt in the render thread
before anything is rendered — both refusals fail the job with ``FailReason.CONTENT_POLICY``, not
charged —, and with ``NSFW_MODEL`` the finished video is classified in the render thread too: a
flagged one is deleted and fails with ``FailReason.WITHHELD``, so it is never ``generated`` and
never sent.

A photo job (its image in ``job_images``, ``bot/storage/images.py``) is checked against the
image-to-video model's bounds and rendered with its image (``backend.run(..., image=...)``); the
image is read from the database at claim time, so any worker sharing the database can render it.
Only photo jobs pass ``image``: a backend without an image-to-video model never sees the argument,
and a photo job claimed by such a worker (``I2V_MODEL`` removed since it was queued) fails with
``FailReason.NO_IMAGE_MODEL``.

On a graceful stop the running job is interrupted and *left* ``running`` in the database: the
next start requeues it (``JobStore.recover``), exactly as after a crash. Nothing is lost. A
standalone worker (``python -m bot.worker``, ``release_on_stop``) instead gives the job back at
once (``JobStore.release``), so another worker takes it without waiting for the lease.

Leases (docs/architecture.md, "Leases, fences and heartbeats"): the loop claims with its
``worker_id`` and a lease of ``lease_seconds``; while a job renders, a heartbeat task renews the
lease every :func:`heartbeat_interval` seconds and carries the stage and step (the front end's
status messages read them). The heartbeat's answer is the cancel channel between processes: a
row marked ``cancelled`` raises the job's cancel flag (rendering stops within one step). A lease
that is lost (another worker holds the job now) or cannot be renewed for ``lease_seconds`` (the
database is unreachable) also raises the flag, and from then on the loop writes nothing for that
job: every write carries the attempt (the fence), and a lost run's result is thrown away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.logs import mask
from bot.storage.jobs import Beat, FailReason, JobStatus
from bot.storage.policy import PolicyKind
from bot.storage.videos import LocalVideoStore
from bot.worker.screening import PromptRefused, VideoWithheld, prompt_guard, screen_video
from pipeline.errors import GenerationOOM, VideoTooLarge
from pipeline.options import OptionError, resolve_options
from pipeline.progress import GenerationCancelled, PreviewImage, Progress, Stage

if TYPE_CHECKING:
    from bot.backend import RunResultLike, VideoBackend
    from bot.services.pause import PauseSwitch
    from bot.services.policy import PolicyService
    from bot.storage.images import ImageStore
    from bot.storage.jobs import Job, JobStore
    from bot.storage.previews import PreviewStore
    from bot.storage.videos import VideoStore
    from bot.worker.events import JobEvents
    from bot.worker.screening import VideoScreen
    from pipeline.options import GenerationDefaults, GenerationOptions, ModelLimits

log = logging.getLogger(__name__)

IDLE_POLL = 5.0
"""Seconds between two looks at an empty queue when nobody woke the loop (a safety net)."""
PAUSE_POLL = 1.0
"""Seconds between two looks at the pause switch while paused (another process may resume)."""
PROGRESS_DB_INTERVAL = 1.0
"""Seconds between two writes of a running job's progress to the database (no lease only)."""
HEARTBEAT_INTERVAL = 2.0
"""Longest pause between two heartbeats (shorter with a short lease): the pace at which the
front end sees progress and a worker in another process sees a cancel."""


def heartbeat_interval(lease_seconds: float) -> float:
    """Seconds between two heartbeats: at most a third of the lease, so two may be lost (a slow
    statement, a busy database) before the lease runs out."""
    return min(HEARTBEAT_INTERVAL, lease_seconds / 3)


def output_path(video_dir: Path, job: Job) -> Path:
    """Where attempt ``job.attempts`` writes its video: named by the job id (never user text) and,
    from the second attempt on, the attempt, so a stale worker still encoding never writes over
    the file of the attempt that replaced it."""
    suffix = f"-a{job.attempts}" if job.attempts > 1 else ""
    return video_dir / f"job-{job.id}{suffix}.mp4"


@dataclass
class _Run:
    """One attempt of one job in this loop: its cancel flag, its lease, its latest progress."""

    job: Job
    cancel: threading.Event = field(default_factory=threading.Event)
    lost: bool = False
    """The lease is gone (or could not be renewed in time): write nothing more for this job."""
    progress: dict[str, Any] = field(default_factory=dict)
    preview: PreviewImage | None = None
    """The newest live preview of the render (written by the heartbeat, ``previews``)."""
    preview_written: int = 0
    """The step of the last preview stored in ``job_previews`` (0: none yet)."""


@dataclass
class LeaseStats:
    """What the heartbeats of this loop did: for the worker's ``/healthz`` and ``/metrics``."""

    renewals: int = 0
    failures: int = 0
    """Heartbeats that raised (the database did not answer)."""
    lost: int = 0
    """Renders stopped because the lease was lost or could not be renewed in time."""
    renewed_at: float | None = None
    """``time.monotonic()`` of the last renewal (or claim) of the lease of the running job."""


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA/MPS out-of-memory, whether the pipeline wrapped it or not."""
    if isinstance(error, (GenerationOOM, MemoryError)):
        return True
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def limit_breach(
    options: GenerationOptions, defaults: GenerationDefaults, limits: ModelLimits
) -> str | None:
    """The ``FailReason.over_limit`` code of stored ``options`` that ``limits`` no longer allow
    (the option and its current maximum), or None when they still fit. The one validator of new
    requests (``pipeline.options.resolve_options``) decides; the prompt's length is not checked
    again (the translator cuts what the model cannot read)."""
    try:
        resolve_options(
            options.prompt or "-",
            options.to_overrides(),
            defaults,
            limits,
            max_prompt_chars=max(1, len(options.prompt)),
        )
    except OptionError as error:
        maxima = {
            "steps": limits.max_steps,
            "frames": limits.last_valid_frames(),
            "fps": limits.max_fps,
        }
        if error.code == "too_many_pixels":
            maxima["size"] = limits.max_pixels
        return FailReason.over_limit(error.option, maxima.get(error.option))
    return None


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


class GenerationLoop:
    """Claims, renders and reports jobs until stopped. One instance per GPU."""

    def __init__(
        self,
        *,
        jobs: JobStore,
        backend: VideoBackend,
        events: JobEvents,
        pause: PauseSwitch,
        video_dir: Path,
        upload_limit_bytes: int,
        videos: VideoStore | None = None,
        policy: PolicyService | None = None,
        screen: VideoScreen | None = None,
        images: ImageStore | None = None,
        previews: PreviewStore | None = None,
        worker_id: str | None = None,
        lease_seconds: float | None = None,
        release_on_stop: bool = False,
        idle_poll: float = IDLE_POLL,
    ) -> None:
        """``videos``: where finished clips go (``VIDEO_STORE``; default ``video_dir``).
        ``policy``/``screen``: the content policy's render-time checks (``BLOCKED_WORDS_FILE``
        on the translated prompt, ``NSFW_MODEL`` on the video). ``worker_id``/``lease_seconds``:
        claim with a lease renewed by heartbeats (None: no lease, the single-process state
        machine alone). ``release_on_stop``: a graceful stop gives the running job back at once
        (``python -m bot.worker``) instead of leaving it for this process's next start.
        ``idle_poll``: seconds between looks at an empty queue (a worker in another process is
        never woken by the front end). ``previews``: store the render's newest live preview with
        each heartbeat (``job_previews``), for a front end in another process to show."""
        from bot.storage.images import ImageStore

        self.policy = policy
        self.screen = screen
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.release_on_stop = release_on_stop
        self.idle_poll = idle_poll
        self.jobs = jobs
        self.videos = videos or LocalVideoStore(video_dir)
        self.images = images if images is not None else ImageStore(jobs.conn)
        self.previews = previews
        self.backend = backend
        self.events = events
        self.pause = pause
        self.video_dir = Path(video_dir)
        self.upload_limit_bytes = upload_limit_bytes
        self.current_job_id: int | None = None
        self.leases = LeaseStats()
        """Heartbeat figures for ``/healthz`` and ``/metrics`` (``bot/worker/health.py``)."""
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

    @property
    def running(self) -> bool:
        """The loop's task was started and has not ended (it ends on :meth:`stop`, or on a
        bug that escaped it): the health check's "alive"."""
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """A job was queued (or the pause lifted): look at the queue now, not at the next poll."""
        self._wake.set()

    def cancel(self, job_id: int) -> bool:
        """Stop ``job_id`` within one denoising step if it is rendering now; True if it was.

        The caller marks the job ``cancelled`` in the database first (``JobStore.cancel``), so
        it can never become ``generated`` even if rendering ends before the flag is seen.
        """
        event = self._cancels.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self, *, grace: float = 30.0) -> None:
        """Graceful stop: interrupt the running job (it stays ``running`` for the next start)."""
        self._stopping = True
        for event in self._cancels.values():
            event.set()
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                log.warning("the running job did not stop within %.0f s; leaving it", grace)
                self._task.cancel()
        for task in list(self._background):
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------- the loop

    async def _run(self) -> None:
        log.info("generation loop started on %s", self.backend.device_info())
        while not self._stopping:
            self._wake.clear()  # before the claim, so a wake during it is not lost
            job = None
            try:
                if await self.pause.is_paused():
                    await self.pause.wait_change(PAUSE_POLL)
                    continue
                job = await self.jobs.claim(self.worker_id, self.lease_seconds)
            except Exception:
                log.exception("claiming a job failed")
            if job is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_poll)
                continue
            try:
                await self._generate(job)
            except Exception:
                log.exception("job %s: unexpected error in the loop", job.id)
                await self._fail_if_running(job)
            finally:
                self._cancels.pop(job.id, None)
                self.current_job_id = None
        log.info("generation loop stopped")

    async def _generate(self, job: Job) -> None:
        run_state = _Run(job)
        heartbeat: asyncio.Task[None] | None = None
        if self.worker_id is not None and self.lease_seconds is not None:
            heartbeat = asyncio.create_task(self._heartbeat(run_state), name=f"heartbeat-{job.id}")
        try:
            await self._render(job, run_state)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if self.previews is not None and run_state.preview_written:
                try:  # the render ended: its preview is of no more use
                    await self.previews.delete(job.id, job.attempts)
                except Exception:
                    log.exception("job %s: its preview could not be deleted", job.id)

    async def _heartbeat(self, run: _Run) -> None:
        """Renew the lease and report progress until cancelled (the render ended); raise the
        cancel flag when the row says ``cancelled``, the lease is lost, or it could not be
        renewed for ``lease_seconds`` (then the lease may be another worker's already)."""
        assert self.worker_id is not None and self.lease_seconds is not None
        job, interval = run.job, heartbeat_interval(self.lease_seconds)
        renewed = time.monotonic()  # the claim took the lease just now
        self.leases.renewed_at = renewed
        while True:
            await asyncio.sleep(interval)
            sent = time.monotonic()
            try:
                beat = await self._bounded(
                    self.jobs.heartbeat(
                        job.id, job.attempts, self.worker_id, self.lease_seconds, **run.progress
                    ),
                    timeout=max(interval, self.lease_seconds - (sent - renewed)),
                )
            except Exception as error:
                self.leases.failures += 1
                if time.monotonic() - renewed < self.lease_seconds:
                    log.warning("job %s: heartbeat failed: %s", job.id, error)
                    continue
                beat = Beat.LOST
                log.error(
                    "job %s: lease not renewed for %.1f s (%s): stopping",
                    job.id,
                    time.monotonic() - renewed,
                    error or type(error).__name__,
                )
            if beat == Beat.OK:
                renewed = self.leases.renewed_at = sent
                self.leases.renewals += 1
                await self._store_preview(run)
                continue
            if beat == Beat.CANCELLED:
                log.info("job %s: cancelled (seen by the heartbeat)", job.id)
            else:
                log.warning("job %s: lease lost (attempt %d): stopping", job.id, job.attempts)
                run.lost = True
                self.leases.lost += 1
            run.cancel.set()
            return

    async def _store_preview(self, run: _Run) -> None:
        """After a renewed lease: store the render's newest preview if it is newer than the one
        stored (fenced by the attempt; a failed write only loses a picture)."""
        preview = run.preview
        if self.previews is None or preview is None or preview.step <= run.preview_written:
            return
        job = run.job
        try:
            await self.previews.put(
                job.id, job.attempts, preview.step, preview.width, preview.height, preview.jpeg
            )
        except Exception as error:
            log.warning("job %s: preview not stored: %s", job.id, error)
            return
        run.preview_written = preview.step

    async def _bounded(self, coro: Any, timeout: float) -> Any:
        """``coro``'s result, or TimeoutError after ``timeout`` seconds. A statement stuck on a
        dead link (a network partition sends no error) must not keep this worker rendering past
        its lease; and the stuck call is left to end on its own (psycopg's cancellation waits
        for the server, seconds more), not awaited."""
        call = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({call}, timeout=timeout)
        except asyncio.CancelledError:
            call.cancel()
            raise
        if not done:
            call.cancel()
            self._background.add(call)
            call.add_done_callback(self._background.discard)
            raise TimeoutError(f"no answer from the database within {timeout:.1f} s")
        return call.result()

    async def _render(self, job: Job, run_state: _Run) -> None:
        cancel = run_state.cancel
        self._cancels[job.id] = cancel
        self.current_job_id = job.id
        # A /cancel that landed between the claim and the line above found no flag to set:
        # look once more now that any later cancel will reach the flag.
        current = await self.jobs.get(job.id)
        if (
            current is None
            or current.status != JobStatus.RUNNING
            or current.attempts != job.attempts
        ):
            log.info("job %s: cancelled before rendering began", job.id)
            return
        image = await self.images.get(job.id)
        bounds: Any = self.backend
        if image is not None:
            bounds = self.backend.image_model
            if bounds is None:
                log.info("job %s: a photo job, but no image-to-video model is loaded", job.id)
                if await self.jobs.refuse_claimed(
                    job.id, FailReason.NO_IMAGE_MODEL, attempt=job.attempts
                ):
                    await self.events.failed(job, FailReason.NO_IMAGE_MODEL)
                return
        breach = limit_breach(job.options, bounds.defaults, bounds.limits)
        if breach is not None:
            log.info("job %s: refused at claim time: %s", job.id, breach)
            if await self.jobs.refuse_claimed(job.id, breach, attempt=job.attempts):
                await self.events.failed(job, breach)
            return
        if self.policy is not None:
            verdict = await self.policy.screen(
                job.user_id, (job.prompt, job.prompt_en), kind=PolicyKind.RENDER, job_id=job.id
            )
            if verdict.blocked:
                await self._refuse_content(job)
                return
        log.info("job %s: started (attempt %d)", job.id, job.attempts)
        await self.events.started(job)
        output = output_path(self.video_dir, job)
        event_loop = asyncio.get_running_loop()

        def report(progress: Progress) -> None:  # called in the worker thread
            event_loop.call_soon_threadsafe(self._on_progress, run_state, progress)

        # A blocked translation stops the run before anything is shown, stored or rendered.
        on_progress = prompt_guard(self.policy.words if self.policy else None, report)
        photo = {"image": image.data} if image is not None else {}

        def run() -> RunResultLike:  # in the worker thread: a broken VIDEO_DIR fails this job only
            output.parent.mkdir(parents=True, exist_ok=True)
            result = self.backend.run(
                job.options,
                output,
                translate=job.translate,
                on_progress=on_progress,
                cancel=cancel,
                max_bytes=self.upload_limit_bytes,
                prompt_en=job.prompt_en,
                improve=job.improve,
                **photo,
            )
            screen_video(self.screen, result)  # NSFW_MODEL: a flagged video is deleted here
            return result

        started = time.monotonic()
        try:
            result = await event_loop.run_in_executor(self._executor, run)
        except GenerationCancelled:
            await self._interrupted(job, run_state)
            return
        except PromptRefused as refused:
            if self.policy is not None:
                await self.policy.record(
                    PolicyKind.RENDER, job.user_id, job.id, refused.verdict.describe()
                )
            await self._refuse_content(job)
            return
        except VideoWithheld as withheld:
            await self._withhold(job, withheld)
            return
        except VideoTooLarge as error:
            if not run_state.lost:
                await self._failed(job, error, FailReason.TOO_LARGE)
            return
        except Exception as error:
            if self._stopping:
                log.info("job %s: interrupted by shutdown (%s)", job.id, type(error).__name__)
                await self._leave(job, run_state)
                return
            if run_state.lost:
                log.info("job %s: failed after its lease was lost; nothing written", job.id)
                return
            log.exception("job %s: generation failed", job.id)
            reason = FailReason.OUT_OF_MEMORY if is_out_of_memory(error) else FailReason.GENERATION
            await self._failed(job, error, reason)
            return
        finally:
            self._cancels.pop(job.id, None)
            self.current_job_id = None
        gen_seconds = time.monotonic() - started
        if run_state.lost:
            log.warning("job %s: rendered after its lease was lost; result discarded", job.id)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(Path(result.video.path).unlink)
            return
        if result.prompt_en and result.prompt_en != job.prompt_en:
            await self.jobs.set_prompt_en(job.id, result.prompt_en, attempt=job.attempts)
        # Into the store (VIDEO_STORE) under this attempt's key, then the row points there.
        video = result.video
        stored = await self.videos.put(job.id, job.attempts, video.path, video.thumbnail)
        meta = video_meta(result, gen_seconds)
        meta.update(path=stored.video, thumbnail=stored.thumbnail)
        if not await self.jobs.mark_generated(
            job.id, stored.video, meta, gen_seconds, attempt=job.attempts
        ):
            current = await self.jobs.get(job.id)
            if current is not None and current.attempts != job.attempts:
                log.warning("job %s: another attempt owns it now; result discarded", job.id)
                return
            log.info("job %s: finished rendering but was cancelled meanwhile", job.id)
            await self.events.cancelled(job, announce=False)
            return
        log.info("job %s: generated in %.1f s", job.id, gen_seconds)
        await self.events.generated(job)

    def _on_progress(self, run: _Run, progress: Progress) -> None:
        job = run.job
        if run.lost:
            return
        self.events.progress(job, progress)
        if progress.preview is not None:
            run.preview = progress.preview
        run.progress = {
            "stage": progress.stage.value,
            "step": progress.step,
            "steps": progress.total,
            "progress": progress.fraction if progress.stage == Stage.DENOISE else None,
            "elapsed": progress.elapsed,
        }
        if progress.stage == Stage.TRANSLATE and progress.detail:
            self._spawn(
                self.jobs.set_prompt_en(job.id, progress.detail, attempt=job.attempts),
                f"prompt-en-{job.id}",
            )
        if self.lease_seconds is not None:
            return  # the heartbeat carries the progress
        now = time.monotonic()
        if (
            progress.stage == Stage.DENOISE
            and now - self._last_progress_write >= PROGRESS_DB_INTERVAL
        ):
            self._last_progress_write = now
            self._spawn(
                self.jobs.set_progress(job.id, progress.fraction, attempt=job.attempts),
                f"progress-{job.id}",
            )

    async def _leave(self, job: Job, run: _Run) -> None:
        """Stopping: leave the job ``running`` for this process's next start, or (a standalone
        worker) give it back now so another worker takes it."""
        if not self.release_on_stop or run.lost:
            log.info("job %s: interrupted by shutdown; it resumes at the next start", job.id)
            return
        try:
            if await self.jobs.release(job.id, job.attempts):
                log.info("job %s: interrupted by shutdown; released for another worker", job.id)
        except Exception:
            log.exception("job %s: could not be released; its lease will expire", job.id)

    async def _interrupted(self, job: Job, run: _Run) -> None:
        if run.lost:
            log.info("job %s: stopped: its lease was lost; nothing written", job.id)
            return
        if self._stopping:
            await self._leave(job, run)
            return
        # /cancel marked the row and wrote its own status text; a bare cancel flag did neither.
        marked_here = await self.jobs.cancel(job.id) is not None
        log.info("job %s: cancelled while rendering", job.id)
        await self.events.cancelled(job, announce=marked_here)

    async def _refuse_content(self, job: Job) -> None:
        """The prompt is against the content policy: failed before rendering, not charged."""
        if await self.jobs.refuse_claimed(job.id, FailReason.CONTENT_POLICY, attempt=job.attempts):
            await self.events.failed(job, FailReason.CONTENT_POLICY)

    async def _withhold(self, job: Job, withheld: VideoWithheld) -> None:
        """``NSFW_MODEL`` flagged the video (already deleted): failed, counted, told."""
        detail = f"video classified {withheld.label} {withheld.score:.2f}"
        if self.policy is not None:
            await self.policy.record(PolicyKind.VIDEO, job.user_id, job.id, detail)
        else:
            log.warning("job %s: video withheld: %s", job.id, detail)
        await self._failed(job, None, FailReason.WITHHELD)

    async def _fail_if_running(self, job: Job) -> None:
        """After an unexpected error, never leave the job ``running`` until the next restart
        (a ``generated`` one is left to its delivery)."""
        try:
            current = await self.jobs.get(job.id)
            if (
                current is not None
                and current.status == JobStatus.RUNNING
                and current.attempts == job.attempts
                and not self._stopping
            ):
                await self._failed(job, None, FailReason.GENERATION)
        except Exception:
            log.exception("job %s: could not be marked failed", job.id)

    async def _failed(self, job: Job, error: BaseException | None, reason: str) -> None:
        """Fail only this job: store the reason, free accelerator memory, tell the user."""
        if error is not None:
            log.warning("job %s: failed: %s", job.id, mask(f"{type(error).__name__}: {error}"))
        changed = await self.jobs.mark_failed(job.id, reason, attempt=job.attempts)
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self.backend.free_memory
            )
        except Exception:
            log.exception("freeing accelerator memory failed")
        if not changed:
            current = await self.jobs.get(job.id)
            if current is not None and current.attempts != job.attempts:
                return  # another attempt owns the job now: its user hears of that one
        await self.events.failed(job, reason)
