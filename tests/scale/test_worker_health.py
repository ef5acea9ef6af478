"""``python -m bot.worker`` with ``METRICS_LISTEN``: ``/healthz`` and ``/metrics`` of a real
worker process rendering for a front end (SQLite, the fake Bot API), and the lease check's rule."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import SimpleNamespace

import aiohttp

from bot.observability.health import Health, LoopWatch
from bot.observability.heartbeat import UpdatesHeartbeat
from bot.worker.health import WorkerHealth
from bot.worker.loop import LeaseStats
from tests.fakes.telegram import free_port
from tests.reliability.harness import (
    FaultyTelegram,
    ForkServer,
    bot_env,
    db_jobs,
    wait_for,
    wait_ready,
)
from tests.scale.test_workers import stop_all


async def get(port: int, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        return response.status, await response.text()


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics:\n{text}"
    return float(match.group(1))


async def test_a_worker_serves_healthz_and_metrics(fork_server: ForkServer, tmp_path: Path) -> None:
    port = free_port()
    async with FaultyTelegram() as tg:
        env = bot_env(
            tg, tmp_path, rel_entry="worker", worker_id="w1", lease_seconds=2,
            rel_step_delay=0.5, metrics_listen=f"127.0.0.1:{port}",
        )  # fmt: skip
        del env["BOT_TOKEN"]
        worker = fork_server.spawn(env, tmp_path / "w1.log")
        fe = fork_server.spawn(
            bot_env(tg, tmp_path, role="frontend", lease_seconds=2), tmp_path / "fe.log"
        )
        try:
            await wait_ready(tg, fe, 60)
            await wait_for(lambda: "metrics and health on" in worker.output(), 30, "worker up")
            status, text = await get(port, "/healthz")
            assert status == 200, text
            assert "generation loop: ok, idle" in text and "lease: ok, no job held" in text
            tg.push_message("кот играет на пианино", user_id=8301)
            await wait_for(
                lambda: any(r["status"] == "running" for r in db_jobs(tmp_path / "bot.sqlite3")),
                20,
                "rendering",
            )
            await asyncio.sleep(1.5)  # a heartbeat or two
            status, text = await get(port, "/healthz")
            assert status == 200, text
            assert re.search(r"generation loop: ok, rendering job 1", text), text
            assert re.search(r"lease: ok, job 1: renewed \d", text), text
            await wait_for(lambda: tg.video_messages(), 30, "video delivered")
            status, text = await get(port, "/metrics")
            assert status == 200
            assert sample(text, "t2v_worker_jobs_rendered_total") == 1
            assert sample(text, "t2v_worker_lease_renewals_total") >= 1
            assert sample(text, "t2v_worker_heartbeat_failures_total") == 0
            assert sample(text, "t2v_worker_leases_lost_total") == 0
            assert 't2v_jobs{state="queued"} 0.0' in text  # the queue, from the database
        finally:
            stop_all(worker, fe)


class _DeadDatabase:
    async def execute_fetchall(self, sql: str, params: object = ()) -> list:
        raise ConnectionError("server closed the connection")


async def test_the_worker_health_fails_on_a_lease_not_renewed_and_a_dead_database() -> None:
    now = [100.0]
    loop = SimpleNamespace(running=True, current_job_id=7, leases=LeaseStats(renewed_at=98.5))
    health = Health(conn=_DeadDatabase(), loop=loop, watch=LoopWatch(), updates=UpdatesHeartbeat())
    checks = WorkerHealth(health, loop, lease_seconds=2, clock=lambda: now[0])  # type: ignore[arg-type]
    assert checks.lease().ok
    now[0] = 103.0  # 4.5 s since the last renewal, lease 2 s
    lease = checks.lease()
    assert not lease.ok and "not renewed for 4.5 s" in lease.detail
    database = (await checks.checks())[0]
    assert not database.ok and "ConnectionError" in database.detail
    loop.running = False
    assert not checks.health.generation_loop().ok
