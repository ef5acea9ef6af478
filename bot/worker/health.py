"""``python -m bot.worker``'s ``/healthz`` and ``/metrics`` (``METRICS_LISTEN``).

A worker has no Telegram side, so its health is about the queue and the GPU:

- **database**: the same read as the bot's check answers within a few seconds;
- **generation loop**: its task is alive and the job it renders is not stuck (the bot's rule:
  no progress report within ``max(HEALTH_STUCK_SECONDS, 20 × the typical step)``);
- **lease**: while a job renders, the lease was renewed within ``LEASE_SECONDS`` (a worker that
  cannot renew stops the render itself; this says so to the orchestrator meanwhile).

``/metrics`` is the bot's :class:`bot.observability.metrics.BotMetrics` (jobs by state from the
database, seconds per stage and per step, GPU memory via the backend's ``memory_stats()``) plus
this worker's own counters: jobs rendered, lease renewals, heartbeat failures, leases lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.observability.health import Check, Health
from bot.observability.metrics import PREFIX

if TYPE_CHECKING:
    from bot.storage.jobs import Job
    from bot.worker.loop import GenerationLoop
    from pipeline.progress import Progress


class RenderCounter:
    """A :class:`bot.worker.events.JobEvents` listener counting the jobs this worker rendered."""

    def __init__(self) -> None:
        self.rendered = 0

    async def started(self, job: Job) -> None:
        pass

    def progress(self, job: Job, progress: Progress) -> None:
        pass

    async def generated(self, job: Job) -> None:
        self.rendered += 1

    async def failed(self, job: Job, reason: str) -> None:
        pass

    async def cancelled(self, job: Job, *, announce: bool) -> None:
        pass

    def queue_moved(self) -> None:
        pass


class WorkerCollector(Collector):
    """The worker's counters, read from the loop at scrape time."""

    def __init__(self, loop: GenerationLoop, renders: RenderCounter) -> None:
        self.loop = loop
        self.renders = renders

    def collect(self) -> Iterable[Metric]:
        leases = self.loop.leases
        figures = (
            ("worker_jobs_rendered", "Jobs this worker rendered and marked generated",
             self.renders.rendered),
            ("worker_lease_renewals", "Successful heartbeats (lease renewed)", leases.renewals),
            ("worker_heartbeat_failures", "Heartbeats that failed (the database did not answer)",
             leases.failures),
            ("worker_leases_lost", "Renders stopped because the lease was lost or not renewed",
             leases.lost),
        )  # fmt: skip
        for name, documentation, value in figures:
            yield CounterMetricFamily(f"{PREFIX}_{name}", documentation, value=value)
        yield GaugeMetricFamily(
            f"{PREFIX}_worker_rendering",
            "1 while this worker renders a job",
            value=1.0 if self.loop.current_job_id is not None else 0.0,
        )


class WorkerHealth:
    """The three checks of a worker (:class:`bot.observability.health.HealthChecks`)."""

    def __init__(
        self,
        health: Health,
        loop: GenerationLoop,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = health
        self.loop = loop
        self.lease_seconds = lease_seconds
        self.clock = clock

    def lease(self) -> Check:
        leases = self.loop.leases
        if self.loop.current_job_id is None or leases.renewed_at is None:
            return Check("lease", True, f"no job held ({leases.failures} heartbeat failures)")
        age = self.clock() - leases.renewed_at
        if age > self.lease_seconds:
            return Check(
                "lease",
                False,
                f"job {self.loop.current_job_id}: not renewed for {age:.1f} s "
                f"(LEASE_SECONDS {self.lease_seconds:g})",
            )
        return Check("lease", True, f"job {self.loop.current_job_id}: renewed {age:.1f} s ago")

    async def checks(self) -> list[Check]:
        return [await self.health.database(), self.health.generation_loop(), self.lease()]
