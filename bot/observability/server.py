"""The operator's HTTP endpoint (``METRICS_LISTEN``): ``/healthz`` and Prometheus ``/metrics``.

An aiohttp server of its own, separate from any webhook listener, so scraping and health probes
never compete with Telegram's calls and can stay on a private interface. Started by
``App.on_startup`` once the model is loaded (a probe during a first start's model download
gets no answer: Docker's ``start_period`` covers that), stopped last at shutdown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from bot.observability.health import HealthChecks
    from bot.observability.metrics import BotMetrics
    from bot.storage.jobs import JobStore

log = logging.getLogger(__name__)


class MetricsServer:
    """``GET /healthz`` (200 or 503, plain text) and ``GET /metrics`` on ``host:port``
    (port 0: any free port, see :attr:`port`)."""

    def __init__(
        self, host: str, port: int, *, metrics: BotMetrics, health: HealthChecks, jobs: JobStore
    ) -> None:
        self.host, self.port = host, port
        self.metrics = metrics
        self.health = health
        self.jobs = jobs
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.scrape)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host or None, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self.port = int(address[1])
        log.info("metrics and health on %s (/metrics, /healthz)", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        checks = await self.health.checks()
        healthy = all(check.ok for check in checks)
        failed = [str(check) for check in checks if not check.ok]
        head = "ok" if healthy else f"unhealthy: {'; '.join(failed)}"
        if healthy and any(check.standby for check in checks):
            head = "standby"
        body = "\n".join([head, *(str(check) for check in checks)]) + "\n"
        return web.Response(status=200 if healthy else 503, text=body)

    async def scrape(self, request: web.Request) -> web.Response:
        await self.metrics.refresh(self.jobs)
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )
