"""`python -m bot.worker`: one GPU worker, no Telegram.

settings (no ``BOT_TOKEN``: a worker never holds it) → logging → database + migrations → the
model, loaded exactly as the bot loads it (``bot/backend.py``) → its row in ``workers`` (the
model's defaults and bounds, for front ends without a model) → take back this ``WORKER_ID``'s
own interrupted job → the generation loop (claims with a lease of ``LEASE_SECONDS``, heartbeats,
renders into ``VIDEO_DIR``, marks ``generated``) and the reaper, and on PostgreSQL the cancel
listener (``LISTEN t2v_cancel``) → with ``METRICS_LISTEN``, ``/healthz`` (database, loop, lease)
and ``/metrics`` (``bot/worker/health.py``) → until SIGTERM/SIGINT.

Start one per GPU (``DEVICE=cuda:N``), on any number of machines that share the database (one
host's SQLite file in WAL mode, or PostgreSQL) and ``VIDEO_DIR``. The front end
(``ROLE=frontend`` or the default ``python -m bot``) delivers what workers render. A graceful
stop gives the running job back at once (``JobStore.release``); a killed worker's job is requeued
by the reaper when its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bot.backend import SettingsDoNotFit, VideoBackend, configure, load_backend
from bot.config import WorkerSettings
from bot.logs import setup_logging
from bot.observability.events import MetricsJobEvents
from bot.observability.health import Health, LoopWatch
from bot.observability.heartbeat import UpdatesHeartbeat
from bot.observability.metrics import BotMetrics
from bot.observability.server import MetricsServer
from bot.policy.content import ContentPolicy
from bot.services.pause import PauseSwitch
from bot.services.policy import PolicyService
from bot.storage import db
from bot.storage.engine import Database
from bot.storage.jobs import JobStore, job_store
from bot.storage.policy import PolicyCounts
from bot.storage.previews import PreviewStore
from bot.storage.state import StateStore
from bot.storage.workers import WorkerStore
from bot.wiring import video_store
from bot.worker.cancels import CancelListener
from bot.worker.events import JobEventsFanout, LogJobEvents
from bot.worker.health import RenderCounter, WorkerCollector, WorkerHealth
from bot.worker.loop import GenerationLoop
from bot.worker.presence import WorkerPresence
from bot.worker.reaper import Reaper, reap_interval
from bot.worker.screening import load_screen

log = logging.getLogger("bot.worker")

IDLE_POLL = 1.0
"""Seconds between two looks at an empty queue: nobody in this process queues jobs."""
STOP_GRACE = 30.0


async def run(settings: WorkerSettings, backend: VideoBackend | None = None) -> None:
    """Run one worker until SIGTERM/SIGINT (or until the returned task is cancelled)."""
    conn = await db.open_database(settings.database_path, settings.database_url_value)
    try:
        await db.migrate(conn)
        model = (
            configure(backend, settings) if backend is not None else await load_backend(settings)
        )
        worker_id = settings.standalone_worker_id
        jobs = job_store(conn)
        presence = WorkerPresence(WorkerStore(conn), worker_id, model, settings.lease_seconds / 3)
        await presence.start()
        taken = await jobs.take_back(worker_id, settings.max_attempts)
        if taken.requeued or taken.failed:
            log.info(
                "worker %s: took back its interrupted jobs: %d requeued, %d failed",
                worker_id,
                len(taken.requeued),
                len(taken.failed),
            )
        settings.video_dir.mkdir(parents=True, exist_ok=True)
        # The content policy's render-time checks: the translated prompt, NSFW_MODEL.
        policy = PolicyService(ContentPolicy(settings.blocked_words_file), PolicyCounts(conn))
        watch, renders = LoopWatch(), RenderCounter()
        metrics = BotMetrics(
            model=settings.t2v_model,
            device=model.device_info().split(",")[0],
            memory_stats=model.memory_stats,  # GPU memory, sampled at scrape time
        )
        loop = GenerationLoop(
            jobs=jobs,
            backend=model,
            events=JobEventsFanout(LogJobEvents(), watch, renders, MetricsJobEvents(metrics, jobs)),
            pause=PauseSwitch(StateStore(conn)),
            video_dir=settings.video_dir,
            upload_limit_bytes=settings.upload_limit_bytes,
            videos=video_store(settings),  # VIDEO_STORE: VIDEO_DIR, or an S3 bucket
            policy=policy,
            screen=await load_screen(settings),
            # The front end (another process) shows the render's live preview from here.
            previews=PreviewStore(conn) if settings.preview else None,
            worker_id=worker_id,
            lease_seconds=settings.lease_seconds,
            release_on_stop=True,
            idle_poll=IDLE_POLL,
        )
        reaper = Reaper(
            jobs,
            settings.max_attempts,
            reap_interval(settings.lease_seconds),
            previews=PreviewStore(conn),
        )
        server = metrics_server(settings, conn, jobs, loop, watch, renders, metrics)
        if server is not None:
            await server.start()  # METRICS_LISTEN: /healthz, /metrics
        stop = asyncio.Event()
        event_loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                event_loop.add_signal_handler(signum, stop.set)
        loop.start()
        reaper.start()
        # PostgreSQL: a cancel's NOTIFY stops the render at the next step, not at the next
        # heartbeat (the row stays the marker: the heartbeat still reads it).
        listener = None
        if settings.database_url_value:
            listener = CancelListener(settings.database_url_value, loop.cancel)
            listener.start()
        log.info(
            "worker %s started on %s (lease %.0f s)",
            worker_id,
            model.device_info(),
            settings.lease_seconds,
        )
        try:
            await stop.wait()
        finally:
            log.info("worker %s stopping: the running job goes back to the queue", worker_id)
            if listener is not None:
                await listener.stop()
            await reaper.stop()
            await loop.stop(grace=STOP_GRACE)
            await presence.stop()
            if server is not None:
                await server.stop()
    finally:
        await conn.close()


def metrics_server(
    settings: WorkerSettings,
    conn: Database,
    jobs: JobStore,
    loop: GenerationLoop,
    watch: LoopWatch,
    renders: RenderCounter,
    metrics: BotMetrics,
) -> MetricsServer | None:
    """``METRICS_LISTEN``: the worker's ``/healthz`` (database, loop, lease) and ``/metrics``."""
    address = settings.metrics_address
    if address is None:
        return None
    metrics.registry.register(WorkerCollector(loop, renders))
    health = Health(
        conn=conn,
        loop=loop,
        watch=watch,
        updates=UpdatesHeartbeat(),  # a worker receives no updates: that check is not asked
        stuck_seconds=settings.health_stuck_seconds,
    )
    checks = WorkerHealth(health, loop, settings.lease_seconds)
    return MetricsServer(*address, metrics=metrics, health=checks, jobs=jobs)


def load_settings() -> WorkerSettings | None:
    try:
        return WorkerSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors()
        )
        print(f"configuration error: {problems}", file=sys.stderr)
        return None


def main(argv: Sequence[str] = ()) -> int:
    """Entry point of ``python -m bot.worker``; returns the exit code (0, 1 failed, 2 config)."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(__doc__)
        return 0
    settings = load_settings()
    if settings is None:
        return 2
    setup_logging(settings.log_level)
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except Exception as error:
        from pipeline.errors import ModelLoadError

        if isinstance(error, (ModelLoadError, SettingsDoNotFit)):
            log.error("cannot start: %s", error)
            return 1
        log.exception("the worker stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
