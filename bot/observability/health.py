"""``/healthz``: is this bot doing its work? Three checks, each one line of the answer.

- **database**: a read of the jobs table answers within ``DB_TIMEOUT`` seconds.
- **generation loop**: its task is alive (:attr:`bot.worker.loop.GenerationLoop.running`) and
  the job it renders is not stuck: some progress report (a stage, a denoising step) came within
  ``max(HEALTH_STUCK_SECONDS, STUCK_FACTOR × the typical step)`` — by default
  ``max(600 s, 20 × the median of the last 50 denoising steps)``. Ten minutes covers what
  happens between two reports of a healthy run (a VAE decode, an MP4 encode, a compile of a new
  size on the first job); twenty typical steps covers a GPU that is slow but moving. An idle or
  paused loop is healthy.
- **updates**: a ``getUpdates`` succeeded within ``UPDATES_GRACE + 2 × POLLING_TIMEOUT`` seconds
  (140 s by default: a long poll returns at least every ``POLLING_TIMEOUT`` seconds, and
  aiogram's backoff after a network error stays well below the grace) — or the bot runs in
  webhook mode (:class:`bot.observability.heartbeat.UpdatesHeartbeat`).
- **front end** (when the bot stands by for the leader lock, ``bot/telegram/leadership.py``):
  ``leader``, or ``standby``: a hot standby neither polls nor runs the watcher, so those two
  checks say "standby" and pass; the answer's first line is then ``standby``, still 200.

Healthy → 200, else 503; the text says which check failed and why.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.observability.events import StepTimer

if TYPE_CHECKING:
    from bot.observability.heartbeat import UpdatesHeartbeat
    from bot.storage.engine import Database
    from bot.storage.jobs import Job
    from pipeline.progress import Progress

STUCK_FACTOR = 20.0
"""A running job is stuck after this many typical steps without a progress report …"""
STUCK_SECONDS = 600.0
"""… and never before this many seconds (``HEALTH_STUCK_SECONDS``)."""
STEP_SAMPLES = 50
"""Denoising steps whose median is the typical step."""
UPDATES_GRACE = 120.0
DB_TIMEOUT = 5.0


def updates_bound(polling_timeout: float) -> float:
    """Seconds without a successful ``getUpdates`` after which updates are said not to arrive."""
    return UPDATES_GRACE + 2 * polling_timeout


class LoopWatch:
    """A :class:`bot.worker.events.JobEvents` listener: which job renders, when it last moved,
    and how long a denoising step typically takes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.job_id: int | None = None
        self.last_progress = clock()
        self._steps: deque[float] = deque(maxlen=STEP_SAMPLES)
        self._timer = StepTimer()

    def typical_step(self) -> float | None:
        return statistics.median(self._steps) if self._steps else None

    def stalled_for(self) -> float:
        """Seconds since the running job last reported progress; 0 when none runs."""
        return 0.0 if self.job_id is None else max(0.0, self.clock() - self.last_progress)

    async def started(self, job: Job) -> None:
        self.job_id, self.last_progress = job.id, self.clock()
        self._timer.reset()

    def progress(self, job: Job, progress: Progress) -> None:
        self.last_progress = self.clock()
        self._steps.extend(self._timer.feed(job.id, progress))

    def _ended(self, job: Job) -> None:
        if self.job_id == job.id:
            self.job_id = None

    async def generated(self, job: Job) -> None:
        self._ended(job)

    async def failed(self, job: Job, reason: str) -> None:
        self._ended(job)

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        self._ended(job)

    def queue_moved(self) -> None:
        pass


class HealthChecks(Protocol):
    """What ``/healthz`` asks (:class:`Health` for a bot, ``bot/worker/health.py`` for a worker)."""

    async def checks(self) -> list[Check]: ...


class LoopState(Protocol):
    @property
    def running(self) -> bool: ...


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    standby: bool = False
    """This process is a hot standby (``/healthz`` answers "standby")."""

    def __str__(self) -> str:
        return f"{self.name}: {'ok' if self.ok else 'FAIL'}, {self.detail}"


class Health:
    """The three checks over the running bot's parts."""

    def __init__(
        self,
        *,
        conn: Database,
        loop: LoopState,
        watch: LoopWatch,
        updates: UpdatesHeartbeat,
        stuck_seconds: float = STUCK_SECONDS,
        updates_seconds: float = UPDATES_GRACE,
        db_timeout: float = DB_TIMEOUT,
    ) -> None:
        self.conn = conn
        self.loop = loop
        self.watch = watch
        self.updates = updates
        self.stuck_seconds = stuck_seconds
        self.updates_seconds = updates_seconds
        self.db_timeout = db_timeout
        self.standby: Callable[[], bool] | None = None
        """True while this front end waits for the leader lock (set by ``bot/__main__.py``)."""

    def standing_by(self) -> bool:
        return self.standby is not None and self.standby()

    def stuck_bound(self) -> float:
        typical = self.watch.typical_step()
        return max(self.stuck_seconds, STUCK_FACTOR * typical) if typical else self.stuck_seconds

    async def database(self) -> Check:
        try:
            rows = await asyncio.wait_for(
                self.conn.execute_fetchall("SELECT COUNT(*) FROM jobs WHERE status = 'queued'"),
                self.db_timeout,
            )
        except asyncio.TimeoutError:
            return Check("database", False, f"no answer within {self.db_timeout:g} s")
        except Exception as error:
            return Check("database", False, f"{type(error).__name__}: {error}")
        return Check("database", True, f"{rows[0][0]} jobs queued")

    def generation_loop(self) -> Check:
        if self.standing_by() and not self.loop.running:
            return Check("generation loop", True, "standby: starts when this front end leads")
        if not self.loop.running:
            return Check("generation loop", False, "not running")
        job_id = self.watch.job_id
        if job_id is None:
            return Check("generation loop", True, "idle")
        stalled, bound = self.watch.stalled_for(), self.stuck_bound()
        if stalled > bound:
            return Check(
                "generation loop",
                False,
                f"job {job_id} made no progress for {stalled:.1f} s (bound {bound:.1f} s)",
            )
        return Check("generation loop", True, f"rendering job {job_id}")

    def updates_arrive(self) -> Check:
        if self.updates.webhook:
            return Check("updates", True, "webhook mode")
        if self.standing_by():
            return Check("updates", True, "standby: the leader polls")
        age = self.updates.age()
        if age > self.updates_seconds:
            return Check(
                "updates",
                False,
                f"no successful getUpdates for {age:.0f} s (bound {self.updates_seconds:.0f} s)",
            )
        return Check("updates", True, f"last getUpdates {age:.0f} s ago")

    def front_end(self) -> Check:
        if self.standing_by():
            return Check("front end", True, "standby: waiting for the leader lock", standby=True)
        return Check("front end", True, "leader")

    async def checks(self) -> list[Check]:
        checks = [await self.database(), self.generation_loop(), self.updates_arrive()]
        if self.standby is not None:
            checks.append(self.front_end())
        return checks
