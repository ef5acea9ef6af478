"""The one door from the bot to the model: the :class:`VideoBackend` protocol.

The bot never imports torch. :func:`load_backend` imports ``pipeline.text2video`` lazily and loads
the model once at start (in a thread: loading takes minutes and must not stall the event loop);
tests pass a fake with the same shape (``tests/fakes/backend.py``). :func:`configure` lays the
operator's ``DEFAULT_*`` and ``MAX_*`` settings over the model's own defaults and bounds with the
pipeline's one implementation (``pipeline.presets.apply_overrides``), so every part of the bot
reads one ``defaults`` / ``limits``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.options import GenerationDefaults, ModelLimits, OptionError
from pipeline.presets import apply_overrides
from pipeline.quality import TierSupport

if TYPE_CHECKING:
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


class ImprovedPromptLike(Protocol):
    """``pipeline.improve.ImprovedPrompt``."""

    text: str
    improved: bool
    reason: str


class PromptImprover(Protocol):
    """What improves a request into a detailed English prompt (``PROMPT_MODEL``): a backend
    with a prompt model loaded. Blocking: call it from a worker thread."""

    def improve_prompt(self, text: str) -> ImprovedPromptLike:
        """The improved prompt, or the plain translation with ``improved=False``."""
        ...


class ImageModelInfo(Protocol):
    """The image-to-video model (``I2V_MODEL``) as photo requests see it
    (``pipeline.text2video.ImageModel``)."""

    @property
    def defaults(self) -> GenerationDefaults: ...

    @property
    def limits(self) -> ModelLimits: ...


@dataclass(frozen=True)
class ImageModel:
    """An :class:`ImageModelInfo` with the operator's ``DEFAULT_*``/``MAX_*`` applied."""

    defaults: GenerationDefaults
    limits: ModelLimits


class ModelInfo(Protocol):
    """What the Telegram side needs to know of the model: no rendering."""

    @property
    def defaults(self) -> GenerationDefaults: ...

    @property
    def limits(self) -> ModelLimits: ...

    @property
    def reads_russian(self) -> bool: ...

    @property
    def tiers(self) -> TierSupport:
        """What the quality tiers have on this model (distilled fast weights, MagCache data):
        /settings and the ETA count each job's transformer passes with it."""
        ...

    def device_info(self) -> str: ...

    @property
    def image_model(self) -> ImageModelInfo | None:
        """The image-to-video model's defaults and bounds when ``I2V_MODEL`` is loaded, else
        None (photo requests are then answered that photos are not animated here)."""
        ...


class VideoBackend(ModelInfo, Protocol):
    """Any object shaped like ``pipeline.text2video.TextToVideo``. ``run`` blocks: call it from
    the generation loop's worker thread only."""

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
    ) -> RunResultLike:
        """``improve``: the prompt improver writes the English prompt (when ``prompt_en`` is
        None), in the stage of translation; the translation is its fallback. ``image``: the
        fitted photo of a photo job (PNG bytes), rendered by the image-to-video model; the loop
        passes it only for photo jobs."""
        ...

    @property
    def can_improve(self) -> bool:
        """Whether a prompt improver is loaded (``PROMPT_MODEL``)."""
        ...

    def improve_prompt(self, text: str) -> ImprovedPromptLike:
        """:class:`PromptImprover`'s method; blocking."""
        ...

    def free_memory(self) -> None:
        """Release cached accelerator memory after a failure."""

    @property
    def on_gpu(self) -> bool:
        """Whether it renders on a CUDA GPU (the bot then warms it up before taking jobs)."""
        ...

    def warm_up(self, defaults: GenerationDefaults | None = None) -> Mapping[str, float]:
        """Render once at ``defaults``' size, so the first user never pays compile and start."""
        ...


class MemoryStatsSource(Protocol):
    """Optional on a backend (``pipeline.text2video.TextToVideo`` has it): accelerator memory for
    the metrics, without the bot importing torch."""

    def memory_stats(self) -> Mapping[str, int] | None:
        """``{"allocated": bytes, "reserved": bytes}`` on an accelerator, None on the CPU."""


def memory_stats(backend: object) -> Mapping[str, int] | None:
    """``backend.memory_stats()`` when the backend has one, else None (no sample)."""
    method = getattr(backend, "memory_stats", None)
    return method() if callable(method) else None


@dataclass(frozen=True)
class ConfiguredBackend:
    """A backend with the operator's defaults and bounds laid over the model's own."""

    inner: VideoBackend
    defaults: GenerationDefaults
    limits: ModelLimits
    image_model: ImageModel | None = None

    @property
    def reads_russian(self) -> bool:
        return self.inner.reads_russian

    @property
    def tiers(self) -> TierSupport:
        return self.inner.tiers

    def device_info(self) -> str:
        return self.inner.device_info()

    def run(self, options: GenerationOptions, output: Path, **kwargs: Any) -> RunResultLike:
        return self.inner.run(options, output, **kwargs)

    @property
    def can_improve(self) -> bool:
        return self.inner.can_improve

    def improve_prompt(self, text: str) -> ImprovedPromptLike:
        return self.inner.improve_prompt(text)

    @property
    def improver(self) -> PromptImprover | None:
        """This backend as the Telegram side's prompt improver, None without a prompt model."""
        return self if self.inner.can_improve else None

    def free_memory(self) -> None:
        self.inner.free_memory()

    def memory_stats(self) -> Mapping[str, int] | None:
        return memory_stats(self.inner)


def operator_overrides(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """``DEFAULT_*`` and ``MAX_*`` as field names of ``GenerationDefaults`` / ``ModelLimits``."""
    defaults: dict[str, Any] = {
        "steps": settings.default_steps,
        "frames": settings.default_frames,
        "fps": settings.default_fps,
        "guidance": settings.default_guidance,
    }
    if settings.default_width_height is not None:
        defaults["width"], defaults["height"] = settings.default_width_height
    limits = {
        "max_steps": settings.max_steps,
        "max_frames": settings.max_frames,
        "max_pixels": settings.max_pixels,
    }
    return defaults, limits


class SettingsDoNotFit(ValueError):
    """``DEFAULT_*``/``MAX_*`` settings that the loaded model cannot honour; ``option`` names the
    request option whose default is out of bounds (``steps``, ``size``…) when one is."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


def configure(backend: VideoBackend, settings: Settings) -> ConfiguredBackend:
    """The backend with the operator's settings applied; a ``DEFAULT_*`` that does not fit the
    bounds raises :class:`SettingsDoNotFit` naming it, so a bad ``.env`` fails at start, not per
    request."""
    if isinstance(backend, ConfiguredBackend):
        backend = backend.inner
    defaults_override, limits_override = operator_overrides(settings)
    try:
        defaults, limits = apply_overrides(
            backend.defaults, backend.limits, defaults_override, limits_override
        )
        image_model = None
        inner_image = backend.image_model
        if inner_image is not None:  # the same settings bound photo jobs
            image_model = ImageModel(
                *apply_overrides(
                    inner_image.defaults, inner_image.limits, defaults_override, limits_override
                )
            )
    except ValueError as error:
        cause = error.__cause__
        option = cause.option if isinstance(cause, OptionError) else None
        raise SettingsDoNotFit(str(error), option) from error
    return ConfiguredBackend(backend, defaults, limits, image_model)


def _load_text_to_video(settings: Settings) -> VideoBackend:
    from dataclasses import replace

    from pipeline.generator import GeneratorConfig
    from pipeline.text2video import TextToVideo

    config = GeneratorConfig(
        model=settings.t2v_model,
        revision=settings.t2v_model_revision,
        device=settings.device,
        memory_mode=settings.memory_mode,
        compile=settings.compile,
        compile_cache_dir=str(settings.database_path.parent / "compile-cache"),
        attention_backend=settings.attention_backend,
        quantize=settings.quantize,
        fast_lora=settings.fast_lora,
        fast_transformer=settings.fast_transformer,
        fast_steps=settings.fast_steps,
        preview=settings.preview,
    )
    # I2V_MODEL: loaded second, so its memory mode is chosen from what the text model left free
    # (pipeline.text2video.TextToVideo). The fast tier's weights belong to the text model.
    image_config = (
        replace(
            config,
            model=settings.i2v_model,
            revision=None,
            fast_lora=None,
            fast_transformer=None,
            cache_ratios=None,
        )
        if settings.i2v_model
        else None
    )
    return TextToVideo.load(
        config,
        translator_model=settings.translator_model,
        translator_device=settings.translator_device,
        translator_revision=settings.translator_revision,
        prompt_model=settings.prompt_model,
        prompt_device=settings.prompt_device,
        prompt_max_tokens=settings.prompt_max_tokens,
        prompt_timeout=settings.prompt_timeout,
        image_config=image_config,
    )


async def warm_up(backend: ConfiguredBackend) -> float | None:
    """Render the warm-up clip (``TextToVideo.warm_up``) at the operator's default size when
    the model runs on a CUDA GPU, off the event loop; returns its seconds, None when skipped.

    On a GPU the first call at a size pays ``torch.compile`` and CUDA's lazy start (about 12 s on
    an H200): paid here, before the worker takes jobs, it never reaches the first user. On a CPU
    nothing is compiled, and a full-size render would cost minutes (and every test a render), so
    it is skipped. A failed warm-up is logged and the bot starts anyway: a job at another size
    may still work, and each job reports its own failure."""
    inner = backend.inner
    if not inner.on_gpu:
        return None
    log.info("Warming up at the default size before taking jobs…")
    start = time.perf_counter()
    try:
        await asyncio.to_thread(inner.warm_up, backend.defaults)
    except Exception:
        log.exception("warm-up failed; the first job pays the compile instead")
        inner.free_memory()
        return None
    seconds = time.perf_counter() - start
    log.info("Warm-up done in %.1f s", seconds)
    return seconds


async def load_backend(settings: Settings) -> ConfiguredBackend:
    """Load the video model and the translator once, off the event loop, and warm the model up
    on a GPU (:func:`warm_up`); raises ``pipeline.errors.ModelLoadError`` with a one-line reason
    when loading fails."""
    log.info(
        "Loading %s (image-to-video: %s, translator: %s)…",
        settings.t2v_model,
        settings.i2v_model or "none",
        settings.translator_model,
    )
    inner = await asyncio.to_thread(_load_text_to_video, settings)
    backend = configure(inner, settings)
    await warm_up(backend)
    log.info("Model ready on %s", backend.device_info())
    return backend
