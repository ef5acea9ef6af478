"""A fast stand-in for ``pipeline.text2video.TextToVideo``: the bot's `VideoBackend` without a model.

It reports the same stages as the real pipeline (translate → denoise steps → encode), writes a
real MP4 with the real ``pipeline.export.export_mp4`` (so delivery uploads a decodable file), and
has hooks tests use to make it slow, block it, fail it, or count it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.backend import ImageModel
from pipeline.export import VideoFile, export_mp4
from pipeline.improve import ImprovedPrompt
from pipeline.options import GenerationDefaults, GenerationOptions, ModelLimits
from pipeline.progress import GenerationCancelled, PreviewImage, Progress, ProgressCallback, Stage
from pipeline.quality import TierSupport

FAKE_DEFAULTS = GenerationDefaults(steps=4, frames=9, fps=8, width=64, height=64, guidance=5.0)
FAKE_LIMITS = ModelLimits(
    max_steps=200, max_frames=33, frame_multiple=4, frame_remainder=1, side_multiple=16,
    min_side=32, max_side=512, max_pixels=256 * 256,
)  # fmt: skip

WAN_DEFAULTS = GenerationDefaults(steps=50, frames=81, fps=16, width=832, height=480, guidance=5.0)
WAN_LIMITS = ModelLimits(
    max_steps=100, max_frames=121, frame_multiple=4, frame_remainder=1, side_multiple=16,
    max_pixels=832 * 480,
)  # fmt: skip
"""Wan 2.1 1.3B's defaults and bounds, for tests of what users see (the fake never renders them)."""
FAKE_IMAGE_MODEL = ImageModel(FAKE_DEFAULTS, FAKE_LIMITS)
"""A fake image-to-video model (``FakeBackend(image_model=FAKE_IMAGE_MODEL)``): ``I2V_MODEL`` set."""


@dataclass(frozen=True)
class FakeRunResult:
    video: VideoFile
    prompt_en: str
    seed: int
    timings: dict[str, float]


def frames_for(options: GenerationOptions) -> np.ndarray:
    """Deterministic moving gradient frames, uint8 [F, H, W, 3] (seeded like a real model)."""
    rng = np.random.default_rng(options.seed)
    base = rng.integers(0, 255, size=3)
    ys, xs = np.mgrid[0 : options.height, 0 : options.width]
    out = np.empty((options.frames, options.height, options.width, 3), dtype=np.uint8)
    for index in range(options.frames):
        for channel in range(3):
            out[index, :, :, channel] = (base[channel] + xs * 2 + ys + index * 9) % 256
    return out


def preview_jpeg(step: int, size: tuple[int, int] = (64, 64)) -> bytes:
    """A small JPEG whose colour tells the step it was made at (as the worker's previews)."""
    import io

    from PIL import Image

    image = Image.new("RGB", size, ((step * 40) % 256, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return buffer.getvalue()


def frames_from_photo(options: GenerationOptions, image: bytes) -> np.ndarray:
    """The photo (fitted PNG) as every frame, with a band sliding across the later ones: a
    video that starts from the photo, like an image-to-video model's."""
    import io

    from PIL import Image

    photo = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    assert photo.shape[:2] == (options.height, options.width), (photo.shape, options)
    out = np.repeat(photo[None], options.frames, axis=0).copy()
    for index in range(1, options.frames):
        column = (index * 4) % options.width
        out[index, :, column : column + 2] = 255
    return out


@dataclass
class FakeBackend:
    """Hooks: ``step_delay`` (seconds per denoising step, sleeping), ``step_work`` (called at each
    step instead: bench burns CPU in it, as a model's worker thread does), ``gate`` (blocks
    before denoising until set), ``fail_with`` (raised by the next ``fail_times`` runs),
    ``translation`` (the English prompt reported for Cyrillic text), ``tiers`` (what the quality
    tiers have on the model it stands for: ``TierSupport(cache=load_cache_data())`` is Wan 2.1
    1.3B's MagCache), ``on_gpu`` (the bot then calls ``warm_up`` at start, as for a CUDA model),
    ``warm_up_error`` (raised by ``warm_up``). Counters: ``runs``, ``spans`` (monotonic start
    and end of each finished run), ``steps_done``, ``cancelled``, ``freed``, ``warm_ups`` (the
    defaults of each ``warm_up`` call and the thread it ran in)."""

    defaults: GenerationDefaults = FAKE_DEFAULTS
    limits: ModelLimits = FAKE_LIMITS
    reads_russian: bool = False
    tiers: TierSupport = field(default_factory=TierSupport)
    step_delay: float = 0.0
    step_work: Callable[[], None] | None = None
    gate: threading.Event | None = None
    fail_with: BaseException | None = None
    fail_times: int = 1
    translation: str = "a cat plays the piano in space"
    runs: list[GenerationOptions] = field(default_factory=list)
    run_started: list[float] = field(default_factory=list)  # time.monotonic() of each run
    spans: list[tuple[float, float]] = field(default_factory=list)
    steps_done: int = 0
    started: threading.Event = field(default_factory=threading.Event)
    cancelled: int = 0
    freed: int = 0
    threads: set[str] = field(default_factory=set)
    device: str = "CPU (fake backend)"
    on_gpu: bool = False
    warm_up_error: BaseException | None = None
    warm_ups: list[tuple[GenerationDefaults | None, str]] = field(default_factory=list)
    previews: bool = False
    """Report a preview JPEG (:func:`preview_jpeg`) with every denoising step after the first,
    as ``pipeline/preview.py`` does with ``PREVIEW=on``; ``previews_sent`` lists them."""
    previews_sent: list[bytes] = field(default_factory=list)
    improver: Any = None
    improvements: list[str] = field(default_factory=list)
    improve_threads: set[str] = field(default_factory=set)
    image_model: ImageModel | None = None
    images: list[bytes | None] = field(default_factory=list)
    """The ``image`` of each run (None for a text job)."""

    @property
    def can_improve(self) -> bool:
        return self.improver is not None

    def translate(self, text: str) -> str:
        cyrillic = any("а" <= ch.lower() <= "я" or ch in "ёЁ" for ch in text)
        return self.translation if cyrillic else text

    def improve_prompt(self, text: str) -> ImprovedPrompt:
        """As ``TextToVideo.improve_prompt``: the improver, its fallback the fake translation."""
        self.improvements.append(text)
        self.improve_threads.add(threading.current_thread().name)
        if self.improver is None:
            return ImprovedPrompt(self.translate(text), improved=False, reason="no_model")
        return self.improver.improve(text, self.translate)

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
    ) -> FakeRunResult:
        if image is not None and self.image_model is None:
            raise RuntimeError("no image-to-video model is loaded (I2V_MODEL)")
        self.runs.append(options)
        self.images.append(image)
        self.run_started.append(time.monotonic())
        self.threads.add(threading.current_thread().name)
        self.started.set()
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
                self.cancelled += 1
                raise GenerationCancelled("cancelled")

        if prompt_en is None:
            report(Stage.TRANSLATE, 0, 1)
            if improve and translate:
                prompt_en = self.improve_prompt(options.prompt).text
            else:
                prompt_en = self.translate(options.prompt) if translate else options.prompt
        report(Stage.TRANSLATE, 1, 1, prompt_en)
        if self.gate is not None:
            while not self.gate.wait(0.02):
                check_cancel()
        if self.fail_with is not None and self.fail_times > 0:
            self.fail_times -= 1
            raise self.fail_with
        for step in range(1, options.steps + 1):
            check_cancel()
            if self.step_work is not None:
                self.step_work()
            elif self.step_delay:
                time.sleep(self.step_delay)
            self.steps_done += 1
            shot = None  # not ``image``: that is the photo an image-to-video run starts from
            if self.previews and 1 < step < options.steps:
                shot = PreviewImage(preview_jpeg(step), 64, 64, step)
                self.previews_sent.append(shot.jpeg)
            report(Stage.DENOISE, step, options.steps, preview=shot)
        check_cancel()
        report(Stage.ENCODE_VIDEO, 0, 1)
        frames = frames_for(options) if image is None else frames_from_photo(options, image)
        video = export_mp4(frames, output, options.fps, max_bytes=max_bytes)
        report(Stage.ENCODE_VIDEO, 1, 1)
        total = time.perf_counter() - start
        self.spans.append((self.run_started[-1], time.monotonic()))
        return FakeRunResult(video, prompt_en, options.seed, {"total": total})

    def warm_up(
        self, defaults: GenerationDefaults | None = None, **kwargs: Any
    ) -> dict[str, float]:
        """``TextToVideo.warm_up``: records the call, renders nothing."""
        self.warm_ups.append((defaults, threading.current_thread().name))
        if self.warm_up_error is not None:
            raise self.warm_up_error
        return {"balanced": 0.0}

    def device_info(self) -> str:
        return self.device

    def free_memory(self) -> None:
        self.freed += 1


def fake_backend(**kwargs: Any) -> FakeBackend:
    return FakeBackend(**kwargs)


def wan_like_backend(**kwargs: Any) -> FakeBackend:
    """A fake with Wan 2.1's defaults and limits, for handler tests that show them to users."""
    return FakeBackend(defaults=WAN_DEFAULTS, limits=WAN_LIMITS, **kwargs)
