"""Starts the real bot entry point (``bot.__main__.main``) as separate, kill-able processes, fast.

Importing aiogram costs ~5 s on the CI machine (pydantic builds every Bot API type), and the crash
tests start the bot dozens of times. So this module runs as a small *fork server*: it imports the
bot once, then for every ``spawn`` request forks a child that sets its environment, redirects its
output to a log file and calls ``bot.__main__.main()`` — the very function ``python -m bot`` runs
(settings from the environment, logging with the token masked, database, migrations, recovery,
polling, exit code). Each child is an ordinary process with its own pid: the tests ``kill -9`` it.

The only thing replaced is the model loader: ``bot.__main__.load_backend`` returns a
:class:`StageBackend`, a fake generator that reports the real pipeline's stages and can be told
(``REL_PAUSE_AT``) to stop dead at one of them, leaving a marker file so the test knows when to
kill. ``REL_HOLD_JOB_WRITE=1`` likewise stops the first job *write* dead (``JobStore.create``
never returns; marker ``job-write-held``): an update the bot received, stored and confirmed,
whose job is not written yet. Tests that need the genuine ``python -m bot`` (model loading errors, token leaks) start it
as a plain subprocess instead.

``REL_ENTRY=worker`` makes the child ``python -m bot.worker`` instead (``bot.worker.__main__.main``,
the same stage backend); ``REL_PAUSE_AT=generated`` stops a worker dead right after its
``mark_generated`` committed (marker ``generated-job-<id>``).

Protocol on stdin/stdout, one JSON object a line: ``{"env": {...}, "log": path}`` → ``{"pid": N}``;
when a child ends its exit code is written to ``<log>.rc``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.options import GenerationDefaults, GenerationOptions, ModelLimits
from pipeline.progress import (
    GenerationCancelled,
    PreviewImage,
    Progress,
    ProgressCallback,
    Stage,
)

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
STAGES = ("translate", "denoise", "encode")


@dataclass(frozen=True)
class StageVideo:
    path: Path
    thumbnail: Path | None
    width: int
    height: int
    duration: float
    frames: int
    fps: int
    size_bytes: int


@dataclass(frozen=True)
class StageResult:
    video: StageVideo
    prompt_en: str
    seed: int
    timings: dict[str, float]


class StageBackend:
    """A fake generator driven by environment variables (read at construction):

    - ``REL_PAUSE_AT``: ``translate`` | ``denoise`` | ``encode`` — the first job to reach that stage
      in this process writes ``<REL_MARK_DIR>/<stage>-<output name>`` and blocks forever (until
      the test kills the process). At ``encode`` half of the file is already written.
    - ``REL_PAUSE_AT=improve`` stops the first prompt improvement dead (marker
      ``improve-<n>``); ``REL_IMPROVE=1`` gives the backend a prompt improver (``PROMPT_MODEL``),
      whose improved prompt is ``improved: <request>`` (English letters only).
    - ``REL_SAMPLE_MP4``: a real MP4 copied as each job's video (no ffmpeg in the child).
    - ``REL_STEP_DELAY``: seconds per denoising step.
    - ``REL_FAIL_MARK``: a prompt containing this text makes the run raise ``RuntimeError``.
    - ``REL_ENOSPC``: every write of a video fails with ``OSError(ENOSPC)`` (a full disk).
    - ``REL_I2V``: an image-to-video model is loaded too (``I2V_MODEL``); ``images`` of runs are
      not kept (the process is killed), only accepted.
    - ``REL_PREVIEWS``: every denoising step after the first reports a live preview
      (``tests/fakes/backend.py`` ``preview_jpeg(step)``: its colour tells the step), as
      ``pipeline/preview.py`` does with ``PREVIEW=on``.
    - ``REL_STEP_MARKS``: after each denoising step, ``<REL_MARK_DIR>/steps-<output name>``
      holds the number of steps done (how far a cancelled run got).
    - ``REL_HEARTBEAT``: the longest pause between two heartbeats (``HEARTBEAT_INTERVAL``), to
      show a cancel arriving sooner than any heartbeat (the PostgreSQL ``NOTIFY``).
    """

    reads_russian = False
    on_gpu = False

    def __init__(self) -> None:
        from pipeline.quality import TierSupport

        self.tiers = TierSupport()
        self.defaults = DEFAULTS
        self.limits = LIMITS
        self.pause_at = os.environ.get("REL_PAUSE_AT", "")
        self.mark_dir = Path(os.environ.get("REL_MARK_DIR", "."))
        self.sample = Path(os.environ["REL_SAMPLE_MP4"])
        self.step_delay = float(os.environ.get("REL_STEP_DELAY", "0") or 0)
        self.fail_mark = os.environ.get("REL_FAIL_MARK", "")
        self.enospc = bool(os.environ.get("REL_ENOSPC"))
        self.image_model: Any = None
        if os.environ.get("REL_I2V"):
            from bot.backend import ImageModel

            self.image_model = ImageModel(DEFAULTS, LIMITS)
        self.step_marks = bool(os.environ.get("REL_STEP_MARKS"))
        self.previews = bool(os.environ.get("REL_PREVIEWS"))
        self._paused = False
        self.can_improve = bool(os.environ.get("REL_IMPROVE"))
        self.improvements = 0

    def improve_prompt(self, text: str) -> Any:
        from pipeline.improve import ImprovedPrompt

        self.improvements += 1
        self._pause("improve", Path(str(self.improvements)))
        latin = "".join(c for c in text if c.isascii()).strip() or "a request"
        return ImprovedPrompt(f"improved: {latin}"[:200], improved=True)

    def _pause(self, stage: str, output: Path) -> None:
        if stage != self.pause_at or self._paused:
            return
        self._paused = True
        marker = self.mark_dir / f"{stage}-{output.name}"
        marker.write_text(str(os.getpid()))
        while True:  # stopped dead: only kill -9 ends this
            time.sleep(0.05)

    def run(
        self,
        options: GenerationOptions,
        output: Path,
        *,
        translate: bool = True,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        max_bytes: int | None = None,
        prompt_en: str | None = None,
        improve: bool = False,
        image: bytes | None = None,
    ) -> StageResult:
        if image is not None and self.image_model is None:
            raise RuntimeError("no image-to-video model is loaded (I2V_MODEL)")
        start = time.perf_counter()

        def report(
            stage: Stage,
            step: int,
            total: int,
            detail: str | None = None,
            preview: PreviewImage | None = None,
        ) -> None:
            if on_progress is not None:
                elapsed = time.perf_counter() - start
                on_progress(Progress(stage, step, total, elapsed, detail, preview))

        def check_cancel() -> None:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled")

        if prompt_en is None:
            report(Stage.TRANSLATE, 0, 1)
            self._pause("translate", output)
            prompt_en = f"english: {options.prompt}"[:200] if translate else options.prompt
            if improve and translate and self.can_improve:
                prompt_en = self.improve_prompt(options.prompt).text
        report(Stage.TRANSLATE, 1, 1, prompt_en)
        if self.fail_mark and self.fail_mark in options.prompt:
            raise RuntimeError("injected generation failure")
        for step in range(1, options.steps + 1):
            check_cancel()
            if self.step_delay:
                time.sleep(self.step_delay)
            shot = None
            if self.previews and step > 1:
                from tests.fakes.backend import preview_jpeg

                shot = PreviewImage(preview_jpeg(step), 64, 64, step)
            report(Stage.DENOISE, step, options.steps, preview=shot)
            if self.step_marks:
                (self.mark_dir / f"steps-{output.name}").write_text(str(step))
            if step == 1:
                self._pause("denoise", output)
        check_cancel()
        report(Stage.ENCODE_VIDEO, 0, 1)
        if self.enospc:
            raise OSError(errno.ENOSPC, "No space left on device", str(output))
        data = self.sample.read_bytes()
        output.write_bytes(data[: len(data) // 2])  # a half-written file, as a crash leaves it
        self._pause("encode", output)
        shutil.copyfile(self.sample, output)
        report(Stage.ENCODE_VIDEO, 1, 1)
        video = StageVideo(
            path=output,
            thumbnail=None,
            width=options.width,
            height=options.height,
            duration=options.frames / options.fps,
            frames=options.frames,
            fps=options.fps,
            size_bytes=output.stat().st_size,
        )
        return StageResult(video, prompt_en, options.seed, {"total": time.perf_counter() - start})

    def device_info(self) -> str:
        return "CPU (stage backend)"

    def free_memory(self) -> None:
        pass

    def warm_up(self, defaults: Any = None) -> dict[str, float]:
        return {}


def _install_backend() -> None:
    import bot.__main__ as entry
    import bot.worker.__main__ as worker_entry
    from bot.backend import configure

    async def load_stage_backend(settings: Any) -> Any:
        return configure(StageBackend(), settings)

    entry.load_backend = load_stage_backend  # type: ignore[assignment]
    worker_entry.load_backend = load_stage_backend  # type: ignore[assignment]


def _hold_after_generated(mark_dir: Path) -> None:
    """``REL_PAUSE_AT=generated``: the first ``mark_generated`` commits, leaves a marker and
    never returns (the worker stands dead between its commit and anything after it)."""
    import asyncio

    from bot.storage.jobs import JobStore

    original = JobStore.mark_generated

    async def held(self: Any, job_id: int, *args: Any, **kwargs: Any) -> Any:
        changed = await original(self, job_id, *args, **kwargs)
        (mark_dir / f"generated-job-{job_id}").write_text(str(os.getpid()))
        await asyncio.Event().wait()  # stopped dead: only kill -9 ends this
        return changed

    JobStore.mark_generated = held  # type: ignore[method-assign]


def _hold_job_writes(mark_dir: Path) -> None:
    """``REL_HOLD_JOB_WRITE``: every ``JobStore.create`` leaves a marker and never returns."""
    import asyncio

    from bot.storage.jobs import JobStore

    async def held_create(self: Any, *args: Any, **kwargs: Any) -> Any:
        (mark_dir / "job-write-held").write_text(str(os.getpid()))
        await asyncio.Event().wait()  # stopped dead: only kill -9 ends this

    JobStore.create = held_create  # type: ignore[method-assign]


def _child(env: dict[str, str], log: str) -> None:
    """In the forked child: become the bot. Never returns."""
    code = 70
    try:
        os.setpgid(0, 0)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
        os.environ.clear()
        os.environ.update(env)
        if "REL_CWD" in env:
            os.chdir(env["REL_CWD"])
        if env.get("REL_HOLD_JOB_WRITE"):
            _hold_job_writes(Path(env.get("REL_MARK_DIR", ".")))
        if env.get("REL_HEARTBEAT"):
            import bot.worker.loop as worker_loop

            worker_loop.HEARTBEAT_INTERVAL = float(env["REL_HEARTBEAT"])
        if env.get("REL_PAUSE_AT") == "generated":
            _hold_after_generated(Path(env.get("REL_MARK_DIR", ".")))
        if env.get("REL_ENTRY") == "worker":
            import bot.worker.__main__ as worker_entry

            code = worker_entry.main()
        else:
            import bot.__main__ as entry

            code = entry.main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 71
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """The fork server loop: spawn on request, reap children, write their exit codes."""
    # The expensive imports, done once before any fork.
    import bot.__main__
    import bot.worker.__main__
    import bot.worker.loop  # noqa: F401

    _install_backend()
    logs: dict[int, str] = {}
    print(json.dumps({"ready": os.getpid()}), flush=True)
    buffer = b""
    while True:
        while logs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            log = logs.pop(pid, None)
            if log is not None:
                Path(log + ".rc").write_text(str(os.waitstatus_to_exitcode(status)))
        ready, _, _ = select.select([sys.stdin], [], [], 0.05)
        if not ready:
            continue
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:  # the test process went away: take every bot still running with us
            for pid in logs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request["env"], request["log"])
            logs[pid] = request["log"]
            print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    serve()
