"""The Prometheus metrics of one bot: what they are, and where each figure comes from.

One :class:`BotMetrics` per :class:`bot.__main__.App`, with its own ``CollectorRegistry`` (never
``prometheus_client``'s global one, so two bots in one process — the tests — do not mix). Served
as ``/metrics`` by :mod:`bot.observability.server` when ``METRICS_LISTEN`` is set.

Sources, so no figure is counted in two places:

- **the database, at scrape time** (:meth:`BotMetrics.refresh`): ``t2v_jobs{state}`` (jobs by
  state now) and ``t2v_jobs_finished_total{outcome,reason}`` (every job that ended, by final
  state and ``FailReason`` code; rows are never deleted, so this count only grows, survives
  restarts, and includes queued jobs cancelled by /cancel or a ban);
- **the generation loop's events** (:class:`bot.observability.events.MetricsJobEvents`): seconds
  per stage, per denoising step, queue wait; and delivery: upload seconds and bytes;
- **the Bot API session** (:meth:`BotMetrics.observe_api`, an
  :data:`bot.telegram.session.ApiObserver`): Telegram 429, 5xx and network errors per method,
  each try counted;
- **the backend** (``memory_stats()``, :class:`bot.backend.MemoryStatsSource`): accelerator
  memory allocated and reserved, sampled at scrape time; no sample without an accelerator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.storage.jobs import FailReason, JobStatus

if TYPE_CHECKING:
    from bot.storage.jobs import JobStore

log = logging.getLogger(__name__)

PREFIX = "t2v"
STAGES = ("translate", "encode_text", "denoise", "decode", "encode_video", "upload")
"""The stages of ``t2v_stage_seconds``: the pipeline's five (``pipeline.progress.Stage``) and the
upload to Telegram."""
STAGE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)
STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
API_ERRORS = {"retry_after": "429", "server_error": "5xx", "network_error": "network"}
"""``ApiOutcome`` → the ``kind`` label of ``t2v_telegram_errors_total``."""
REASONS = frozenset(v for k, v in vars(FailReason).items() if k.isupper() and isinstance(v, str))

MemoryStats = Callable[[], "Mapping[str, int] | None"]


def outcome_reason(status: str, error: str | None) -> tuple[str, str]:
    """A final job's labels: its state, and its ``FailReason`` code (``none`` when it has none;
    ``other`` for a code this version does not know, so the label set stays bounded)."""
    if status in (JobStatus.FAILED, JobStatus.UNDELIVERABLE):
        return status, error if error in REASONS else ("other" if error else "none")
    return status, "none"


class _DatabaseCollector(Collector):
    """``t2v_jobs`` and ``t2v_jobs_finished_total`` from the last :meth:`BotMetrics.refresh`."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str | None], int] | None = None

    def collect(self) -> Iterable[Metric]:
        if self.counts is None:  # the database did not answer: no sample beats a wrong one
            return
        states = GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs by state now", labels=["state"])
        by_state = dict.fromkeys(JobStatus.ALL, 0)
        finished: dict[tuple[str, str], int] = {(JobStatus.DELIVERED, "none"): 0}
        for (status, error), count in self.counts.items():
            by_state[status] = by_state.get(status, 0) + count
            if status in JobStatus.FINAL:
                key = outcome_reason(status, error)
                finished[key] = finished.get(key, 0) + count
        for state, count in by_state.items():
            states.add_metric([state], count)
        yield states
        total = CounterMetricFamily(
            f"{PREFIX}_jobs_finished",
            "Jobs that ended, by final state and reason (from the database: survives restarts)",
            labels=["outcome", "reason"],
        )
        for (outcome, reason), count in sorted(finished.items()):
            total.add_metric([outcome, reason], count)
        yield total


class _MemoryCollector(Collector):
    """Accelerator memory, asked of the backend at scrape time (no sample when it has none)."""

    def __init__(self, source: MemoryStats | None) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        if self.source is None:
            return
        try:
            stats = self.source()
        except Exception:
            log.exception("memory_stats() failed")
            return
        if not stats:
            return
        for key in ("allocated", "reserved"):
            if key in stats:
                yield GaugeMetricFamily(
                    f"{PREFIX}_gpu_memory_{key}_bytes",
                    f"Accelerator memory {key} by the model's process (torch.cuda.memory_{key})",
                    value=float(stats[key]),
                )


class BotMetrics:
    """The metric objects of one bot and the methods that feed them."""

    def __init__(
        self,
        *,
        model: str = "",
        device: str = "",
        version: str = "",
        memory_stats: MemoryStats | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self.info = Info(f"{PREFIX}_model", "The loaded model and where it runs", registry=reg)
        self.info.info({"model": model, "device": device, "version": version})
        self.stage_seconds = Histogram(
            f"{PREFIX}_stage_seconds",
            "Seconds per stage of a job (translate … encode_video: the render; upload: sendVideo)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=reg,
        )
        self.step_seconds = Histogram(
            f"{PREFIX}_denoise_step_seconds",
            "Seconds per denoising step",
            buckets=STEP_BUCKETS,
            registry=reg,
        )
        self.queue_wait_seconds = Histogram(
            f"{PREFIX}_queue_wait_seconds",
            "Seconds from a request to the start of its render (first attempts only)",
            buckets=WAIT_BUCKETS,
            registry=reg,
        )
        self.telegram_errors = Counter(
            f"{PREFIX}_telegram_errors",
            "Bot API tries that failed: kind 429 (flood wait), 5xx, network; by method",
            ["method", "kind"],
            registry=reg,
        )
        self.upload_bytes = Counter(
            f"{PREFIX}_upload_bytes", "Bytes of videos sent to Telegram", registry=reg
        )
        for stage in STAGES:  # every series exists from the start (rate() needs a zero)
            self.stage_seconds.labels(stage)
        for kind in API_ERRORS.values():
            self.telegram_errors.labels("sendVideo", kind)
        self._database = _DatabaseCollector()
        reg.register(self._database)
        reg.register(_MemoryCollector(memory_stats))

    async def refresh(self, jobs: JobStore) -> None:
        """Read the database figures for the next scrape; on failure they are left out."""
        try:
            self._database.counts = await jobs.state_counts()
        except Exception as error:
            log.warning("metrics: the database did not answer: %s", error)
            self._database.counts = None

    def observe_api(self, method: str, outcome: str) -> None:
        """:data:`bot.telegram.session.ApiObserver`: count 429, 5xx and network failures."""
        kind = API_ERRORS.get(outcome)
        if kind is not None:
            self.telegram_errors.labels(method, kind).inc()

    def stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(max(0.0, seconds))

    def step(self, seconds: float) -> None:
        self.step_seconds.observe(max(0.0, seconds))

    def queue_wait(self, seconds: float) -> None:
        self.queue_wait_seconds.observe(max(0.0, seconds))

    def uploaded(self, size_bytes: int, seconds: float) -> None:
        self.upload_bytes.inc(max(0, size_bytes))
        self.stage("upload", seconds)
