"""The generation loop's events and delivery's uploads, turned into metrics.

:class:`MetricsJobEvents` is one more :class:`bot.worker.events.JobEvents` listener (the loop
reports to several through :class:`bot.worker.events.JobEventsFanout`) and the
:class:`bot.notify.delivery.UploadObserver` of delivery, so no metric call sits in the loop or
in the Telegram code. :class:`StepTimer` turns denoising progress reports into seconds per step;
the health check's :class:`bot.observability.health.LoopWatch` uses it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.progress import Progress, Stage

if TYPE_CHECKING:
    from bot.observability.metrics import BotMetrics
    from bot.storage.jobs import Job, JobStore

RENDER_STAGES = tuple(stage.value for stage in Stage)


class StepTimer:
    """Seconds per denoising step from the ``denoise`` reports of the running job.

    A report of step *i* after step *j* (same job, *i* > *j*) completes *i − j* steps of
    ``(elapsed_i − elapsed_j) / (i − j)`` seconds each (``elapsed`` is measured in the render
    thread, so the event loop's delays do not count).
    """

    def __init__(self) -> None:
        self._last: tuple[int, int, float] | None = None  # job id, step, elapsed

    def reset(self) -> None:
        self._last = None

    def feed(self, job_id: int, progress: Progress) -> list[float]:
        if progress.stage != Stage.DENOISE:
            return []
        last, self._last = self._last, (job_id, progress.step, progress.elapsed)
        if last is None or last[0] != job_id or progress.step <= last[1]:
            return []
        steps = progress.step - last[1]
        return [max(0.0, (progress.elapsed - last[2]) / steps)] * steps


class MetricsJobEvents:
    """:class:`bot.worker.events.JobEvents` and :class:`bot.notify.delivery.UploadObserver`
    feeding :class:`BotMetrics`: queue wait at the start of a first attempt, seconds per
    denoising step as they happen, seconds per stage once a render is done (the pipeline's own
    timings, as stored with the job), upload seconds and bytes."""

    def __init__(
        self, metrics: BotMetrics, jobs: JobStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.metrics = metrics
        self.jobs = jobs
        self.clock = clock
        self.steps = StepTimer()

    async def started(self, job: Job) -> None:
        self.steps.reset()
        if job.attempts <= 1:  # a requeued job's wait would count the downtime of a restart
            self.metrics.queue_wait(self.clock() - job.created_at)

    def progress(self, job: Job, progress: Progress) -> None:
        for seconds in self.steps.feed(job.id, progress):
            self.metrics.step(seconds)

    async def generated(self, job: Job) -> None:
        self.steps.reset()
        current = await self.jobs.get(job.id)
        timings = ((current.video_meta if current else None) or {}).get("timings") or {}
        for stage in RENDER_STAGES:
            if stage in timings:
                self.metrics.stage(stage, float(timings[stage]))

    async def failed(self, job: Job, reason: str) -> None:
        self.steps.reset()

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        self.steps.reset()

    def queue_moved(self) -> None:
        pass

    def uploaded(self, job: Job, size_bytes: int, seconds: float) -> None:
        self.metrics.uploaded(size_bytes, seconds)
