"""What an operator watches: ``/healthz`` and Prometheus ``/metrics`` (``METRICS_LISTEN``).

One concern per module: :mod:`.metrics` (the metric objects and their sources),
:mod:`.events` (the generation loop's events and uploads → metrics), :mod:`.health` (the
checks behind ``/healthz``), :mod:`.heartbeat` (when updates last arrived), :mod:`.server` (the
aiohttp endpoint), :mod:`.probe` (the container health check). :class:`Observability` holds one
bot's set; ``bot/__main__.py`` builds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.observability.health import Health, LoopWatch
    from bot.observability.heartbeat import UpdatesHeartbeat
    from bot.observability.metrics import BotMetrics
    from bot.observability.server import MetricsServer


@dataclass
class Observability:
    """One bot's metrics, health checks and (with ``METRICS_LISTEN``) their HTTP server."""

    metrics: BotMetrics
    heartbeat: UpdatesHeartbeat
    """Polling is heard through the session; webhook code calls ``heartbeat.use_webhook()``."""
    watch: LoopWatch
    health: Health | None = None
    server: MetricsServer | None = None
