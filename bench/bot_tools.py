"""Helpers of the bot benchmarks (responsiveness, pipelining): an event-loop lag probe, a backend
that burns CPU like a render, the fake Bot API in its own process and the real bot started on it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.report import ROOT, log, percentile  # noqa: F401
from pipeline.presets import one_line


class LoopLagProbe:
    """Event-loop lag inside the bot's own process: a task that sleeps ``interval`` seconds over
    and over and records how late each wake-up came (the overshoot). Anything that holds the
    loop (a blocking call, a long callback, a thread that keeps the GIL) shows up here."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: Any = None
        self.recording = False

    def start(self) -> None:
        import asyncio

        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-probe")

    async def _run(self) -> None:
        import asyncio

        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            if self.recording:
                self.samples.append(time.perf_counter() - start - self.interval)

    async def stop(self) -> None:
        import asyncio

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, Any]:
        ms = [s * 1000 for s in self.samples]
        return {
            "interval_ms": self.interval * 1000,
            "samples": len(ms),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else None,
        }


def burn(seconds: float, gil_share: float, chunk: float = 0.002) -> None:
    """Keep one core busy for ``seconds`` the way a model's worker thread does.

    Alternates, per ``chunk`` seconds, between numpy work that runs with the GIL released (as
    torch kernels and large numpy ufuncs do) for ``1 - gil_share`` of the chunk and pure Python
    that holds the GIL (as the Python glue of a pipeline — module calls, hooks, schedulers, CUDA
    kernel launches — does) for ``gil_share`` of it. ``gil_share=1`` is the worst case: a thread
    that wants the GIL all the time, released only at the interpreter's switch interval.
    """
    import numpy as np

    array = np.linspace(0.0, 1.0, 65536, dtype=np.float32)
    out = np.empty_like(array)
    end = time.perf_counter() + seconds
    held = chunk * gil_share
    released = chunk - held
    while True:
        now = time.perf_counter()
        if now >= end:
            return
        stop = min(now + released, end)
        while time.perf_counter() < stop:  # ~0.2 ms per ufunc, GIL released inside
            np.sin(array, out=out)
            np.multiply(out, 1.0001, out=out)
        stop = min(time.perf_counter() + held, end)
        x = 0
        while time.perf_counter() < stop:  # GIL held
            for i in range(200):
                x += i * i


def burn_backend(step_seconds: float = 0.1, gil_share: float = 0.5) -> Any:
    """The tests' ``FakeBackend`` whose every denoising step costs ``step_seconds`` of real CPU
    in the worker thread (see :func:`burn`); ``spans`` holds the monotonic ``(start, end)`` of
    each finished run (``time.monotonic`` is system-wide on Linux: comparable across
    processes), ``steps_done`` the steps rendered so far."""
    from tests.fakes.backend import FakeBackend

    return FakeBackend(
        step_work=lambda: burn(step_seconds, gil_share),
        device=f"CPU (bench burn backend, gil_share={gil_share})",
    )


# ---------------------------------------------------------------- the fake Bot API in its own process

_SERVE = "import bench.bot_tools as c; c.serve_fake_telegram()"


def serve_fake_telegram() -> None:
    """Child process: ``tests.fakes.telegram.FakeTelegram`` on 127.0.0.1, driven by JSON lines on
    stdin (one answer line on stdout per request). Own process, own event loop and own GIL, as
    Telegram's servers would be: its work never shows up as the bot's loop lag."""
    import asyncio

    asyncio.run(_serve())


async def _serve() -> None:
    import asyncio

    from tests.fakes.telegram import FakeTelegram

    tg = FakeTelegram()
    await tg.start()
    pushed: list[dict[str, Any]] = []

    def answered(call: Any) -> None:  # hooks run after an injected delay, just before the answer
        call.answered = time.monotonic()

    for method in ("sendMessage", "sendVideo", "editMessageText"):
        tg.hooks[method] = answered

    def push(user_id: int, text: str, offset: float = 0.0) -> dict[str, Any]:
        message = tg.push_message(text, user_id=user_id)
        record = {
            "offset": offset,
            "user_id": user_id,
            "chat_id": user_id,
            "text": text,
            "message_id": message["message_id"],
            "update_id": tg.last_update_id,
            "pushed": time.monotonic(),
        }
        pushed.append(record)
        return record

    async def push_many(schedule: list[list[Any]]) -> list[dict[str, Any]]:
        t0 = time.monotonic()
        records = []
        for offset, user_id, text in sorted(schedule, key=lambda s: s[0]):
            delay = t0 + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            records.append(push(int(user_id), str(text), float(offset)))
        return records

    def done(method: str) -> int:
        """Calls of ``method`` answered successfully (a call is recorded, with status 200, on
        arrival: an injected delay is still running until the hook marks it answered)."""
        calls = tg.calls_of(method, ok=True)
        if method in tg.hooks:
            calls = [c for c in calls if getattr(c, "answered", None) is not None]
        return len(calls)

    def summary(call: Any) -> dict[str, Any]:
        reply = call.params.get("reply_parameters")
        return {
            "method": call.method,
            "chat_id": call.chat_id,
            "time": call.time,
            "answered": getattr(call, "answered", None),
            "status": call.status,
            "reply_to": reply.get("message_id") if isinstance(reply, dict) else None,
        }

    def out(data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    out({"port": tg.port, "token": tg.token})
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        op = request.pop("op")
        try:
            if op == "stop":
                out({"ok": True})
                break
            if op == "push":
                out(push(int(request["user_id"]), str(request["text"])))
            elif op == "push_many":
                out({"pushed": await push_many(request["schedule"])})
            elif op == "slow":
                tg.slow(request["method"], float(request["seconds"]))
                out({"ok": True})
            elif op == "wait":  # until `count` calls of `method` were answered, or `timeout`
                method, count = request["method"], int(request["count"])
                with contextlib.suppress(TimeoutError):
                    await tg.wait_for(
                        lambda m=method, n=count: done(m) >= n,
                        timeout=float(request.get("timeout", 30)),
                        interval=0.01,
                    )
                out({"count": done(method)})
            elif op == "count":
                out({"count": done(request["method"])})
            elif op == "report":
                out(
                    {
                        "calls": [summary(c) for c in tg.calls],
                        "delivered": {str(k): v for k, v in tg.handed_out.items()},
                        "pushed": pushed,
                    }
                )
            else:
                out({"error": f"unknown op {op}"})
        except Exception as exc:  # answer every request, or the parent waits forever
            out({"error": one_line(exc)})
    await tg.stop()


class FakeTelegramProcess:
    """The parent's handle on :func:`serve_fake_telegram` (``async with``); quacks enough like
    ``FakeTelegram`` (``token``, ``base_url``) for ``tests.fakes.telegram.bot_settings``."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.port: int | None = None
        self.token: str = ""
        self._lock: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeTelegramProcess:
        import asyncio

        self._lock = asyncio.Lock()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVE,
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,  # a report line holds every call: far over the 64 kB default
        )
        hello = await self._read(timeout=60)
        self.port, self.token = hello["port"], hello["token"]
        return self

    async def _read(self, timeout: float) -> dict[str, Any]:
        import asyncio

        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
        if not line:
            raise RuntimeError("the fake Bot API process ended")
        return json.loads(line)

    async def request(self, op: str, timeout: float = 120, **params: Any) -> dict[str, Any]:
        async with self._lock:
            self.proc.stdin.write((json.dumps({"op": op, **params}) + "\n").encode())
            await self.proc.stdin.drain()
            answer = await self._read(timeout)
        if "error" in answer:
            raise RuntimeError(f"fake Bot API: {answer['error']}")
        return answer

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self.request("stop", timeout=5)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def bot_log_to(path: Path, level: str = "INFO") -> None:
    """The bot's logging as in production (INFO, aiogram logs every update), into a file, so the
    benchmark's own output stays readable and the logging cost is still paid."""
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` (a flag a worker thread sets) until it holds or ``timeout`` passes."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


@contextlib.asynccontextmanager
async def bench_bot(tg: Any, backend: Any, data_dir: str, **overrides: Any):
    """The real bot (``build_app``, what ``python -m bot`` runs) polling ``tg`` with production
    cadences and INFO logging to a file, started and stopped the way SIGTERM stops it."""
    from bot.__main__ import build_app
    from tests.fakes.telegram import bot_settings

    bot_log_to(Path(data_dir) / "bot.log")
    settings = bot_settings(
        SimpleNamespace(token=tg.token, base_url=tg.base_url),
        data_dir,
        # production cadences, not the tests' fast ones
        status_min_interval=3.0,
        queue_refresh_interval=10.0,
        polling_timeout=10,
        log_level="INFO",
        **overrides,
    )
    app = await build_app(settings, backend)
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await asyncio.wait_for(app.started.wait(), timeout=30)
        yield app
    finally:
        with contextlib.suppress(RuntimeError):
            await app.stop()
        await asyncio.wait_for(task, timeout=60)
