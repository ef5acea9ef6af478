"""The front end's view of the workers: what they did, read from the database.

Workers in other processes (``python -m bot.worker``) never talk to Telegram; they only write
the ``jobs`` row: the claim, heartbeats with the stage and step, ``generated``, ``failed``. The
:class:`JobWatcher` polls those rows (every ``interval`` seconds; a wake-up hint may shorten the
wait) and turns each change into the same :class:`bot.worker.events.JobEvents` calls the
in-process loop makes, so the existing status messages (same texts, same throttling), delivery,
metrics and health watch work unchanged:

- a job seen ``running`` under a new attempt → ``started`` (the status shows it rendering);
- a new stage or step in its heartbeat → ``progress``;
- ``generated`` → ``generated`` (delivery uploads it);
- ``failed`` → ``failed`` (the reason in the user's language);
- a newer live preview in ``job_previews`` (the worker's heartbeat stores its newest, with
  ``PREVIEW=on``) → ``progress`` carrying it, as the in-process loop's ``Progress.preview``
  (same status-message throttle; only the step marks are read each look, the image only
  when it is newer than the one shown);
- a job it saw running that is ``queued`` again (its worker died and the reaper took the job
  back, or the worker stopped and released it), or running under a newer attempt it never saw
  queued → ONE "continues" notice (``bot/notify/recovery.py``), then ``started`` when it runs.

Jobs of the embedded worker (``local_worker_id``, ``ROLE=all``) are left to its own in-process
events. Alternatives: LISTEN/NOTIFY is PostgreSQL-only and still needs the row as the truth
after a reconnect; a per-change event table would need cleanup; the few running/generated rows
are cheap to read twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.notify.recovery import renew_status
from bot.storage.jobs import JobStatus
from pipeline.progress import PreviewImage, Progress, Stage

if TYPE_CHECKING:
    from bot.notify.status import StatusHub
    from bot.storage.jobs import Job, JobStore
    from bot.storage.previews import PreviewStore
    from bot.worker.events import JobEvents

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.5
"""Seconds between two looks at the workers' rows."""
CLAIM_MARGIN = 2.0
"""Seconds before the previous look from which claims are read again (a claim's statement may
commit a moment after the clock it stamped): a job claimed and ended between two looks is seen."""
ENDED_KEPT = 1000
"""Ended jobs remembered as reported, so a re-read one is not reported twice."""


@dataclass(frozen=True)
class _Seen:
    status: str
    attempts: int
    stage: str | None
    step: int | None
    prompt_en: str | None


class JobWatcher:
    """Polls the jobs that workers run and reports their changes as :class:`JobEvents`."""

    def __init__(
        self,
        jobs: JobStore,
        events: JobEvents,
        status: StatusHub,
        *,
        local_worker_id: str | None = None,
        interval: float = WATCH_INTERVAL,
        previews: PreviewStore | None = None,
    ) -> None:
        """``previews``: where workers store their live previews (None: none are shown)."""
        self.jobs = jobs
        self.previews = previews
        self._shown: dict[int, tuple[int, int]] = {}
        """Job id → (attempt, step) of the last preview passed on."""
        self.events = events
        self.status = status
        self.local_worker_id = local_worker_id
        self.interval = interval
        self._seen: dict[int, _Seen] = {}
        self._ended: dict[int, None] = {}  # insertion-ordered set of ended jobs already handled
        self._since: float | None = None
        self._first = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # ---------------------------------------------------------- control

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="job-watcher")

    @property
    def running(self) -> bool:
        """The watcher's task is alive (``/healthz``'s "generation loop" in a front end)."""
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Look now (a hint: a job was queued or cancelled here)."""
        self._wake.set()

    def cancel(self, job_id: int) -> bool:
        """The row is the cancel marker: the worker sees it at its next heartbeat."""
        self._wake.set()
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._background):
            task.cancel()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("watching the workers' jobs failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---------------------------------------------------------- one look

    async def poll(self) -> None:
        """Read the running and generated jobs and the ones seen last time; report changes."""
        first, self._first = self._first, False
        now = await self.jobs.db_now()
        rows = await self.jobs.watched(self._seen, self._since)
        self._since = now - CLAIM_MARGIN
        present = {job.id for job in rows}
        for job_id in [j for j in self._seen if j not in present]:
            del self._seen[job_id]
        followed: list[Job] = []
        for job in rows:
            if self.local_worker_id is not None and job.worker_id == self.local_worker_id:
                self._seen.pop(job.id, None)  # the embedded loop reports its own jobs
                continue
            followed.append(job)
            try:
                await self._look(job, self._seen.get(job.id), first)
            except Exception:
                log.exception("job %s: reporting a worker's change failed", job.id)
        try:
            await self._previews([job for job in followed if job.status == JobStatus.RUNNING])
        except Exception:
            log.exception("reading the workers' previews failed")

    async def _previews(self, running: list[Job]) -> None:
        """Pass each running job's newer stored preview on, as its progress report."""
        live = {job.id for job in running}
        for job_id in [j for j in self._shown if j not in live]:
            del self._shown[job_id]
        if self.previews is None or not running:
            return
        marks = await self.previews.marks(live)
        for job in running:
            mark = marks.get(job.id)
            if mark is None or mark[0] != job.attempts or mark == self._shown.get(job.id):
                continue
            if job.stage != Stage.DENOISE.value:
                continue  # a late picture once the video is decoding would only distract
            stored = await self.previews.get(job.id)
            if stored is None or stored.attempt != job.attempts:
                continue
            self._shown[job.id] = (stored.attempt, stored.step)
            image = PreviewImage(stored.data, stored.width, stored.height, stored.step)
            progress = Progress(
                Stage.DENOISE, job.step or 0, job.steps or 0, job.elapsed or 0.0, preview=image
            )
            self.events.progress(job, progress)

    async def _look(self, job: Job, seen: _Seen | None, first: bool) -> None:
        remember = True
        if job.status == JobStatus.RUNNING:
            if seen is None or seen.status != JobStatus.RUNNING or seen.attempts != job.attempts:
                if seen is not None and seen.attempts < job.attempts:
                    # Re-run after its worker died, claimed again before we saw it queued.
                    await renew_status(self.jobs, self.status, job.id, worker_stopped=True)
                await self.events.started(job)
                self.events.queue_moved()
                seen = None
            self._progress(job, seen)
        elif job.status == JobStatus.GENERATED:
            if (seen is not None and seen.status != JobStatus.GENERATED) or (
                seen is None and not first
            ):
                await self.events.generated(job)
        elif job.status == JobStatus.QUEUED:
            remember = False
            if seen is not None:
                log.info("job %s: back in the queue (attempt %d ended)", job.id, job.attempts)
                await renew_status(
                    self.jobs, self.status, job.id, worker_stopped=True
                )  # before what follows
                self.events.queue_moved()
        else:
            remember = False
            # Ended while a worker had it: seen running, or claimed and ended between two looks.
            # (A generated job that fails or ends here was ended by this front end's delivery,
            # which told the user itself.)
            by_worker = seen.status == JobStatus.RUNNING if seen is not None else not first
            fresh = job.id not in self._ended and by_worker
            self._ended_now(job.id)
            if fresh and job.status == JobStatus.FAILED:
                self._spawn(self.events.failed(job, job.error or ""), f"failed-{job.id}")
            elif fresh and job.status == JobStatus.CANCELLED and seen is not None:
                self._spawn(self.events.cancelled(job, announce=False), f"cancelled-{job.id}")
        if remember:
            self._seen[job.id] = _Seen(job.status, job.attempts, job.stage, job.step, job.prompt_en)
        else:
            self._seen.pop(job.id, None)

    def _ended_now(self, job_id: int) -> None:
        self._ended[job_id] = None
        while len(self._ended) > ENDED_KEPT:
            del self._ended[next(iter(self._ended))]

    def _progress(self, job: Job, seen: _Seen | None) -> None:
        """The heartbeat's stage and step as the pipeline's :class:`Progress` reports."""
        if job.stage is None:
            return
        try:
            stage = Stage(job.stage)
        except ValueError:
            return
        elapsed = job.elapsed or 0.0
        if job.prompt_en and (seen is None or seen.prompt_en != job.prompt_en):
            self.events.progress(job, Progress(Stage.TRANSLATE, 1, 1, elapsed, job.prompt_en))
        if seen is None or (seen.stage, seen.step) != (job.stage, job.step):
            self.events.progress(job, Progress(stage, job.step or 0, job.steps or 0, elapsed))
