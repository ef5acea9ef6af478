"""``METRICS_LISTEN``: ``/metrics`` while a job renders and after it, ``/healthz`` healthy and
unhealthy (a wedged render, a stopped loop, a closed database), and the container probe.

The real bot runs in-process against the fake Bot API (``tests/e2e/harness.py``) with its
metrics server on a free port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.__main__ import App
from bot.observability import probe
from tests.e2e.harness import running_bot
from tests.fakes.backend import FakeBackend
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.e2e

USER = 3003


@dataclasses.dataclass
class GpuLikeBackend(FakeBackend):
    """The fake backend with what the real pipeline adds: per-stage timings and memory stats."""

    def run(self, options: Any, output: Path, **kwargs: Any) -> Any:
        result = super().run(options, output, **kwargs)
        timings = {"translate": 0.01, "encode_text": 0.02, "denoise": 0.3, "decode": 0.04}
        return dataclasses.replace(
            result, timings={**timings, "encode_video": 0.05, **result.timings}
        )

    def memory_stats(self) -> dict[str, int]:
        return {"allocated": 123_456_789, "reserved": 234_567_890}


def server_url(app: App) -> str:
    assert app.observability is not None and app.observability.server is not None
    return app.observability.server.url


async def get(app: App, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server_url(app) + path, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, await response.text()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text format (labels in any order), None if absent."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


async def wait_metric(app: App, name: str, value: float, **labels: str) -> str:
    for _ in range(200):
        _, text = await get(app, "/metrics")
        if sample(text, name, **labels) == value:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}{labels} never became {value}:\n{text}")


async def test_metrics_while_a_job_renders_and_after(tg: FakeTelegram, tmp_path: Path) -> None:
    gate = threading.Event()
    backend = GpuLikeBackend(gate=gate, step_delay=0.02)
    async with running_bot(tg, tmp_path, backend, metrics_listen="127.0.0.1:0") as app:
        status, text = await get(app, "/metrics")
        assert status == 200
        assert sample(text, "t2v_jobs", state="queued") == 0
        assert sample(text, "t2v_jobs_finished_total", outcome="delivered", reason="none") == 0
        info = sample(text, "t2v_model_info", model=app.settings.t2v_model)
        assert info == 1 and 'device="CPU (fake backend)"' in text

        tg.fail("sendMessage", status=429, retry_after=1)  # the "queued" reply meets a flood wait
        tg.push_message("кот играет на пианино", user_id=USER)
        await asyncio.to_thread(backend.started.wait, 10)
        text = await wait_metric(app, "t2v_jobs", 1, state="running")  # while it renders
        assert sample(text, "t2v_queue_wait_seconds_count") == 1
        assert sample(text, "t2v_telegram_errors_total", method="sendMessage", kind="429") == 1
        assert sample(text, "t2v_gpu_memory_allocated_bytes") == 123_456_789
        assert sample(text, "t2v_gpu_memory_reserved_bytes") == 234_567_890
        assert sample(text, "t2v_stage_seconds_count", stage="denoise") == 0

        gate.set()
        await tg.wait_for(lambda: tg.videos(USER), timeout=20)
        text = await wait_metric(
            app, "t2v_jobs_finished_total", 1, outcome="delivered", reason="none"
        )
        assert sample(text, "t2v_jobs", state="delivered") == 1
        assert sample(text, "t2v_jobs", state="running") == 0
        for stage in ("translate", "encode_text", "denoise", "decode", "encode_video", "upload"):
            assert sample(text, "t2v_stage_seconds_count", stage=stage) == 1, stage
        assert sample(text, "t2v_stage_seconds_sum", stage="denoise") == pytest.approx(0.3)
        steps = sample(text, "t2v_denoise_step_seconds_count")
        assert steps is not None and steps >= app.context.model.defaults.steps - 1
        video = tg.videos(USER)[0].file("video")
        assert video is not None
        assert sample(text, "t2v_upload_bytes_total") == len(video.data)


async def test_failed_and_cancelled_jobs_are_counted_by_reason(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    backend = FakeBackend(fail_with=RuntimeError("boom"))
    async with running_bot(tg, tmp_path, backend, metrics_listen="127.0.0.1:0") as app:
        tg.push_message("первый", user_id=USER)
        await wait_metric(app, "t2v_jobs_finished_total", 1, outcome="failed", reason="generation")
        await app.context.pause.pause()  # the next request stays queued …
        tg.push_message("второй", user_id=USER)
        await tg.wait_for(lambda: len(tg.texts_to(USER)) >= 2)
        tg.push_message("/cancel", user_id=USER)  # … and is cancelled there
        text = await wait_metric(
            app, "t2v_jobs_finished_total", 1, outcome="cancelled", reason="none"
        )
        assert sample(text, "t2v_jobs", state="failed") == 1


async def test_healthz_ok_then_503_when_the_render_is_wedged(
    tg: FakeTelegram, tmp_path: Path
) -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)  # blocks before denoising: no progress report comes
    async with running_bot(
        tg, tmp_path, backend, metrics_listen="127.0.0.1:0", health_stuck_seconds=0.3
    ) as app:
        try:
            await tg.wait_for(lambda: tg.calls_of("getUpdates"))
            status, text = await get(app, "/healthz")
            assert status == 200, text
            assert text.startswith("ok\n")
            assert "database: ok" in text and "generation loop: ok, idle" in text
            assert "updates: ok" in text

            tg.push_message("кот", user_id=USER)
            await asyncio.to_thread(backend.started.wait, 10)
            await asyncio.sleep(0.6)
            status, text = await get(app, "/healthz")
            assert status == 503, text
            assert text.startswith("unhealthy: generation loop: FAIL, job 1 made no progress")
            assert "database: ok" in text

            gate.set()  # it moves again, finishes, and the loop is idle
            await tg.wait_for(lambda: tg.videos(USER), timeout=20)
            status, text = await get(app, "/healthz")
            assert status == 200, text
        finally:
            gate.set()


async def test_healthz_503_when_the_loop_stopped(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path, metrics_listen="127.0.0.1:0") as app:
        await tg.wait_for(lambda: tg.calls_of("getUpdates"))
        assert (await get(app, "/healthz"))[0] == 200
        await app.worker.stop()
        status, text = await get(app, "/healthz")
        assert status == 503
        assert "generation loop: FAIL, not running" in text


async def test_healthz_503_when_the_database_is_closed(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path, metrics_listen="127.0.0.1:0") as app:
        await tg.wait_for(lambda: tg.calls_of("getUpdates"))
        assert (await get(app, "/healthz"))[0] == 200
        await app.conn.close()
        status, text = await get(app, "/healthz")
        assert status == 503
        assert text.startswith("unhealthy: database: FAIL")
        status, metrics = await get(app, "/metrics")  # still answers, without database figures
        assert status == 200
        assert sample(metrics, "t2v_jobs", state="queued") is None
        assert sample(metrics, "t2v_model_info", model=app.settings.t2v_model) == 1


async def test_probe_exit_codes(
    tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRICS_LISTEN", "")
    assert probe.main() == 0  # off: nothing to ask
    async with running_bot(tg, tmp_path, metrics_listen="127.0.0.1:0") as app:
        await tg.wait_for(lambda: tg.calls_of("getUpdates"))
        assert app.observability is not None and app.observability.server is not None
        monkeypatch.setenv("METRICS_LISTEN", f"0.0.0.0:{app.observability.server.port}")
        assert await asyncio.to_thread(probe.main) == 0
        await app.worker.stop()
        assert await asyncio.to_thread(probe.main) == 1
    assert await asyncio.to_thread(probe.main) == 1  # nobody listens any more


async def test_no_server_without_metrics_listen(tg: FakeTelegram, tmp_path: Path) -> None:
    async with running_bot(tg, tmp_path) as app:
        assert app.observability is not None
        assert app.observability.server is None
        assert app.observability.health is not None  # the checks exist; nothing serves them
