"""Shared by the scale-out benchmarks (bench/scale_throughput.py, bench/reclaim.py): real
``python -m bot.worker`` processes with a sleeping fake model, a throwaway PostgreSQL, queued
jobs written straight into the table, and the rows read back.

Why real processes and not GenerationLoop objects in one process: the figures are about what
separate workers do to each other through the database (their own pools, lock waits, the
claim's SKIP LOCKED, SQLite's one writer at a time, a kill -9), and one event loop would
serialise the workers' Python work on one core and share one pool. The workers are forked from
this process after the bot is imported once (``fork_worker``), so 16 of them start in a second
and share most of their memory; each child then runs ``bot.worker.__main__.main()`` — the very
function ``python -m bot.worker`` runs (settings from the environment, migrations, presence,
take-back, the generation loop with its claim, heartbeats, fenced marks, and the reaper). Only
the model loader is replaced: :class:`SleepBackend` sleeps instead of rendering (no CPU burn, so
16 workers fit on a 2-core machine) and writes a few bytes as the video.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.process
import os
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import ROOT  # noqa: F401 - puts the repository root on sys.path
from bot.storage import db
from bot.storage.engine import Database, dialect_of
from bot.storage.jobs import JobStatus, options_to_json
from pipeline.options import GenerationDefaults, GenerationOptions, ModelLimits
from pipeline.progress import GenerationCancelled, Progress, ProgressCallback, Stage

DEFAULTS = GenerationDefaults(steps=4, frames=9, fps=8, width=64, height=64, guidance=5.0)
LIMITS = ModelLimits(
    max_steps=50,
    max_frames=33,
    frame_multiple=4,
    frame_remainder=1,
    side_multiple=16,
    min_side=32,
    max_side=512,
    max_pixels=256 * 256,
)
OPTIONS = options_to_json(
    GenerationOptions(prompt="кот", negative_prompt="", steps=4, seed=1, frames=9, fps=8,
                      width=64, height=64, guidance=5.0)
)  # fmt: skip


@dataclass(frozen=True)
class SleepVideo:
    path: Path
    thumbnail: Path | None
    width: int
    height: int
    duration: float
    frames: int
    fps: int
    size_bytes: int


@dataclass(frozen=True)
class SleepResult:
    video: SleepVideo
    prompt_en: str
    seed: int
    timings: dict[str, float]


class SleepBackend:
    """A fake model whose render is ``BENCH_RENDER_SECONDS`` of sleep (in the loop's render
    thread, as a real render would block it), reported as the real pipeline's stages: the
    translation (its English prompt is stored, one write as in a real run), four denoising steps,
    the encode. A cancel or a lost lease stops it between steps."""

    reads_russian = False
    on_gpu = False
    can_improve = False
    image_model = None

    def __init__(self) -> None:
        from pipeline.quality import TierSupport

        self.tiers = TierSupport()
        self.defaults = DEFAULTS
        self.limits = LIMITS
        self.seconds = float(os.environ.get("BENCH_RENDER_SECONDS", "2"))

    def run(
        self,
        options: GenerationOptions,
        output: Path,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        prompt_en: str | None = None,
        **_: Any,
    ) -> SleepResult:
        start = time.perf_counter()

        def report(stage: Stage, step: int, total: int, detail: str | None = None) -> None:
            if on_progress is not None:
                on_progress(Progress(stage, step, total, time.perf_counter() - start, detail))

        prompt_en = prompt_en or f"english: {options.prompt}"
        report(Stage.TRANSLATE, 1, 1, prompt_en)
        steps = 4
        for step in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled")
            time.sleep(self.seconds / steps)
            report(Stage.DENOISE, step, steps)
        output.write_bytes(b"\0" * 64)
        report(Stage.ENCODE_VIDEO, 1, 1)
        video = SleepVideo(output, None, options.width, options.height,
                           options.frames / options.fps, options.frames, options.fps, 64)  # fmt: skip
        return SleepResult(video, prompt_en, options.seed, {"total": time.perf_counter() - start})

    def device_info(self) -> str:
        return "sleep backend (bench)"

    def free_memory(self) -> None:
        pass

    def warm_up(self, defaults: Any = None) -> dict[str, float]:
        return {}


def worker_env(folder: Path, worker_id: str, url: str | None, **extra: Any) -> dict[str, str]:
    """The environment of one ``python -m bot.worker``: no token, files under ``folder``."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        WORKER_ID=worker_id,
        DATABASE_PATH=str(folder / "bench.sqlite3"),
        VIDEO_DIR=str(folder / "videos"),
        TRANSLATOR_MODEL="none",
        LOG_LEVEL="WARNING",
        MAX_COST_PER_JOB="0",
        DAILY_COST_PER_USER="0",
        DAILY_COST_PER_CHAT="0",
    )
    if url:
        env["DATABASE_URL"] = url
    env.update({k.upper(): str(v) for k, v in extra.items()})
    return env


def prepare_fork() -> None:
    """Import the worker once in this process and give it the sleeping model, so forked
    children start at once. Call before any event loop or database connection exists."""
    import bot.worker.__main__ as worker_entry
    import bot.worker.loop  # noqa: F401
    from bot.backend import configure

    async def load_sleep_backend(settings: Any) -> Any:
        return configure(SleepBackend(), settings)

    worker_entry.load_backend = load_sleep_backend  # type: ignore[assignment]


_CHILDREN: dict[int, multiprocessing.process.BaseProcess] = {}


def _worker_child(env: dict[str, str], log: Path) -> None:
    """In the forked child: output to ``log``, the environment ``env``, then the worker's main
    (its exit code is the process's)."""
    os.setpgid(0, 0)  # its own process group, as a separately started command would be
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    import bot.worker.__main__ as worker_entry

    sys.exit(worker_entry.main())


def fork_worker(env: dict[str, str], log: Path) -> int:
    """A child process running ``bot.worker.__main__.main()`` in ``env``; returns its pid.
    Fork only while no event loop runs and no database connection is open in this process."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = multiprocessing.get_context("fork").Process(
        target=_worker_child, args=(env, log), name=env.get("WORKER_ID", "worker")
    )
    child.start()
    assert child.pid is not None
    _CHILDREN[child.pid] = child
    return child.pid


def stop_workers(pids: list[int], sig: int = signal.SIGKILL) -> None:
    """Signal the given children (each only by its own pid) and wait for them; one that
    ignores SIGTERM for a minute gets SIGKILL."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    for pid in pids:
        child = _CHILDREN.pop(pid, None)
        if child is None:
            continue
        child.join(60)
        if child.is_alive():
            child.kill()
            child.join()


def start_postgres(root: Path) -> tuple[Any, str]:
    """A throwaway PostgreSQL 16 (pgserver) with default, durable settings."""
    root.chmod(0o755)  # as root, pgserver runs the server as its own system user
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(str(root / "data"), cleanup_mode="stop")
    return server, server.get_uri()


async def open_fresh(folder: Path, url: str | None) -> Database:
    """The engine's database, migrated, with no jobs and no workers."""
    conn = await db.open_database(folder / "bench.sqlite3", url)
    await db.migrate(conn)
    await conn.execute("DELETE FROM jobs")
    await conn.execute("DELETE FROM workers")
    return conn


async def enqueue(conn: Database, count: int, users: int | None = None) -> float:
    """``count`` queued jobs (one per user unless ``users``), in one statement; returns the
    database clock right after it committed."""
    users = users or count
    await conn.execute(
        "INSERT INTO jobs (user_id, chat_id, status, prompt, options, translate, created_at,"
        " number)"
        " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        f" SELECT i % ?, i % ?, ?, 'кот', ?, 0, {dialect_of(conn).now_sql}, i FROM n",
        (count, users, users, JobStatus.QUEUED, OPTIONS),
    )
    rows = await conn.execute_fetchall(f"SELECT {dialect_of(conn).now_sql} AS now", ())
    return float(rows[0]["now"])


async def jobs(conn: Database) -> list[Any]:
    return list(
        await conn.execute_fetchall(
            "SELECT id, status, attempts, worker_id, started_at, generated_at, lease_until"
            " FROM jobs ORDER BY id",
            (),
        )
    )


async def registered(conn: Database, prefix: str) -> int:
    rows = await conn.execute_fetchall(
        "SELECT COUNT(*) AS n FROM workers WHERE worker_id LIKE ?", (prefix + "%",)
    )
    return int(rows[0]["n"])
