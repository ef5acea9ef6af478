"""The one door from the bot to the model: a small `VideoBackend` protocol.

The bot never imports torch. :func:`load_backend` imports ``pipeline.text2video`` lazily and
loads the model once at start (in a thread: loading takes minutes and must not stall the event
loop); tests pass a fake object with the same shape. :class:`ConfiguredBackend` lays the
operator's ``DEFAULT_*`` and ``MAX_*`` settings over the model's own defaults and bounds, so
every part of the bot reads one ``backend.defaults`` / ``backend.limits``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.options import GenerationDefaults, ModelLimits, OptionOverrides, resolve_options

if TYPE_CHECKING:
    import threading

    from bot.config import Settings
    from pipeline.options import GenerationOptions
    from pipeline.progress import ProgressCallback

log = logging.getLogger(__name__)


class VideoFileLike(Protocol):
    """What delivery needs of an encoded video (``pipeline.export.VideoFile``)."""

    path: Path
    thumbnail: Path | None
    width: int
    height: int
    duration: float
    frames: int
    fps: int
    size_bytes: int


class RunResultLike(Protocol):
    """``pipeline.text2video.RunResult``."""

    video: VideoFileLike
    prompt_en: str
    seed: int
    timings: dict[str, float]


@runtime_checkable
class VideoBackend(Protocol):
    """Any object shaped like ``pipeline.text2video.TextToVideo``. ``run`` blocks: call it from
    the generation loop's worker thread only."""

    defaults: GenerationDefaults
    limits: ModelLimits
    reads_russian: bool

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
    ) -> RunResultLike: ...

    def device_info(self) -> str: ...


class ConfiguredBackend:
    """A backend with the operator's defaults and bounds applied; delegates everything else."""

    def __init__(self, inner: Any, defaults: GenerationDefaults, limits: ModelLimits) -> None:
        self.inner = inner
        self.defaults = defaults
        self.limits = limits
        reads = getattr(inner, "reads_russian", None)
        if reads is None:
            reads = getattr(getattr(inner, "preset", None), "reads_russian", False)
        self.reads_russian = bool(reads)

    def run(self, options: GenerationOptions, output: Path, **kwargs: Any) -> RunResultLike:
        return self.inner.run(options, output, **kwargs)

    def device_info(self) -> str:
        return self.inner.device_info()

    def free_memory(self) -> None:
        """Release cached accelerator memory after a failure (a no-op for backends without it)."""
        free = getattr(self.inner, "free_memory", None)
        if free is None:
            free = getattr(getattr(self.inner, "generator", None), "free_memory", None)
        if free is not None:
            free()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def apply_settings(backend: Any, settings: Settings) -> ConfiguredBackend:
    """Lay ``DEFAULT_*`` over the model's defaults and ``MAX_*`` over its bounds, then check that
    the resulting defaults are themselves valid (a bad ``.env`` fails at start, not per request)."""
    if isinstance(backend, ConfiguredBackend):
        backend = backend.inner
    defaults: GenerationDefaults = backend.defaults
    limits: ModelLimits = backend.limits
    changes: dict[str, Any] = {}
    if settings.default_steps is not None:
        changes["steps"] = settings.default_steps
    if settings.default_frames is not None:
        changes["frames"] = settings.default_frames
    if settings.default_fps is not None:
        changes["fps"] = settings.default_fps
    if settings.default_guidance is not None:
        changes["guidance"] = settings.default_guidance
    if settings.default_width_height is not None:
        changes["width"], changes["height"] = settings.default_width_height
    defaults = replace(defaults, **changes)
    bounds: dict[str, Any] = {}
    if settings.max_steps is not None:
        bounds["max_steps"] = settings.max_steps
    if settings.max_frames is not None:
        bounds["max_frames"] = settings.max_frames
    if settings.max_pixels is not None:
        bounds["max_pixels"] = settings.max_pixels
    limits = replace(limits, **bounds)
    # Raises OptionError naming the offending DEFAULT_* value against the bounds.
    resolve_options("check", OptionOverrides(seed=0), defaults, limits)
    return ConfiguredBackend(backend, defaults, limits)


def _load_text_to_video(settings: Settings) -> Any:
    from pipeline.generator import GeneratorConfig
    from pipeline.text2video import TextToVideo

    config = GeneratorConfig(
        model=settings.t2v_model,
        device=settings.device,
        memory_mode=settings.memory_mode,
        compile=settings.compile,
        compile_cache_dir=str(settings.database_path.parent / "compile-cache"),
        attention_backend=settings.attention_backend,
        quantize=settings.quantize,
        fast_lora=settings.fast_lora,
        fast_transformer=settings.fast_transformer,
        fast_steps=settings.fast_steps,
    )
    return TextToVideo.load(
        config,
        translator_model=settings.translator_model,
        translator_device=settings.translator_device,
    )


async def load_backend(settings: Settings) -> ConfiguredBackend:
    """Load the video model and the translator once, off the event loop; raises
    ``pipeline.errors.ModelLoadError`` with a one-line reason when that fails."""
    log.info("Loading %s (translator: %s)…", settings.t2v_model, settings.translator_model)
    inner = await asyncio.to_thread(_load_text_to_video, settings)
    backend = apply_settings(inner, settings)
    log.info("Model ready on %s", backend.device_info())
    return backend
