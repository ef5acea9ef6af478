"""Translator (or prompt improver) + video generator + MP4 export: the one object the CLI and
the bot run.

With a prompt improver (``PROMPT_MODEL``, :mod:`pipeline.improve`) a run asked to ``improve``
gets its English prompt from the improver instead of the translator: translation and extension in
one pass, in the stage that translation has (``Stage.TRANSLATE``, whose ``detail`` is the prompt
the model gets). The translator stays the fallback of every failed improvement.

``run`` is blocking (seconds to minutes on a GPU); callers run it in a worker thread and watch it
through ``on_progress``, stopping it with ``cancel``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.errors import ModelLoadError
from pipeline.export import VideoFile, export_mp4
from pipeline.generator import GeneratorConfig, VideoGenerator
from pipeline.improve import ImprovedPrompt, PromptImprover, load_improver
from pipeline.options import GenerationDefaults, GenerationOptions, ModelLimits, OptionOverrides
from pipeline.presets import ModelPreset
from pipeline.progress import GenerationCancelled, Progress, ProgressCallback, Stage
from pipeline.quality import TierPlan, TierSupport
from pipeline.translate import Translator, has_cyrillic, load_translator

log = logging.getLogger(__name__)

DEFAULT_TRANSLATOR = "Helsinki-NLP/opus-mt-tc-big-zle-en"


@dataclass(frozen=True)
class ImageModel:
    """The image-to-video model as requests see it: its own defaults and bounds (a photo's
    video size is fitted within them, :func:`pipeline.image.photo_size`)."""

    defaults: GenerationDefaults
    limits: ModelLimits


@dataclass(frozen=True)
class RunResult:
    video: VideoFile
    prompt_en: str  # the prompt the video model was given (the text itself if not translated)
    seed: int
    timings: dict[str, float]  # translate, encode_text, denoise, decode, encode_video, total


class TextToVideo:
    """Russian or English text (and, with an image-to-video model, a photo) → MP4, with the
    loaded models' defaults and limits.

    ``generator`` renders text requests; ``image_generator`` (``I2V_MODEL``), when loaded,
    renders photo requests (``run(..., image=...)``). Both are loaded at start, the
    image-to-video model second: its memory mode is chosen from the VRAM the text model left
    free (:func:`pipeline.memory.choose_memory_mode`), so on a GPU too small for both resident
    it is offloaded to the CPU between its calls instead of failing the start — the trade-off
    is a slower photo job, never a slower text job. Loading at start rather than at the first
    photo: a bad ``I2V_MODEL`` fails the start in one line, and no user waits minutes for a load.
    """

    def __init__(
        self,
        generator: VideoGenerator,
        translator: Translator | None = None,
        image_generator: VideoGenerator | None = None,
        improver: PromptImprover | None = None,
    ):
        self.generator = generator
        self.translator = translator
        self.image_generator = image_generator
        self.improver = improver

    @classmethod
    def load(
        cls,
        config: GeneratorConfig,
        translator_model: str | None = DEFAULT_TRANSLATOR,
        translator_device: str = "cpu",
        translator_revision: str | None = None,
        image_config: GeneratorConfig | None = None,
        *,
        prompt_model: str | None = None,
        prompt_device: str = "auto",
        prompt_max_tokens: int | None = None,
        prompt_timeout: float | None = None,
    ) -> TextToVideo:
        """Load the video model (then the image-to-video model of ``image_config``, if any),
        the translator only if one of them does not read Russian, and the prompt improver when
        ``prompt_model`` names one. An improver that cannot be loaded is logged and left out
        (every run then translates plainly): a nicety never stops the bot."""
        generator = VideoGenerator.load(config)
        # The CLI's --image loads only the image-to-video model: it serves photo runs itself.
        image_generator = generator if generator.takes_image else None
        if image_config is not None:
            image_generator = VideoGenerator.load(image_config)
            if not image_generator.takes_image:
                raise ModelLoadError(
                    f"I2V_MODEL {image_config.model} is not an image-to-video pipeline"
                    f" ({type(image_generator.pipe).__name__} takes no image)"
                )
        translator = None
        models = [generator, *([image_generator] if image_generator is not None else [])]
        if not all(m.preset.reads_russian for m in models):
            translator = load_translator(
                translator_model, device=translator_device, revision=translator_revision
            )
        improver = None
        if prompt_model:
            bounds: dict[str, Any] = {}
            if prompt_max_tokens is not None:
                bounds["max_new_tokens"] = prompt_max_tokens
            if prompt_timeout is not None:
                bounds["timeout"] = prompt_timeout
            if prompt_device == "auto":
                prompt_device = str(generator.device)
            try:
                improver = load_improver(prompt_model, prompt_device, **bounds)
            except ModelLoadError as error:
                log.error("prompt improver off, plain translation instead: %s", error)
        return cls(generator, translator, image_generator, improver)

    @property
    def image_model(self) -> ImageModel | None:
        """What photo requests get (defaults, limits of the image-to-video model); None when
        no image-to-video model is loaded."""
        if self.image_generator is None:
            return None
        return ImageModel(self.image_generator.defaults, self.image_generator.limits)

    @property
    def defaults(self) -> GenerationDefaults:
        return self.generator.defaults

    @property
    def limits(self) -> ModelLimits:
        return self.generator.limits

    @property
    def preset(self) -> ModelPreset:
        return self.generator.preset

    @property
    def reads_russian(self) -> bool:
        return self.generator.preset.reads_russian

    @property
    def on_gpu(self) -> bool:
        """Whether the video model runs on a CUDA device (the bot warms it up only then)."""
        return str(self.generator.device).startswith("cuda")

    @property
    def tiers(self) -> TierSupport:
        """What the quality tiers have on this model (distilled fast weights, MagCache data)."""
        return self.generator.tiers

    def tier_plan(
        self,
        quality: str,
        defaults: GenerationDefaults | None = None,
        limits: ModelLimits | None = None,
    ) -> TierPlan:
        """Steps, guidance, cache and transformer calls of ``quality`` (see ``VideoGenerator``)."""
        return self.generator.tier_plan(quality, defaults, limits)

    def tier_overrides(
        self,
        quality: str,
        defaults: GenerationDefaults | None = None,
        limits: ModelLimits | None = None,
    ) -> OptionOverrides:
        """The tier as option overrides; a request's own overrides are merged over these."""
        return self.generator.tier_overrides(quality, defaults, limits)

    def warm_up(
        self, defaults: GenerationDefaults | None = None, **kwargs: Any
    ) -> dict[str, float]:
        """Compile and initialise before the first job (``VideoGenerator.warm_up``)."""
        return self.generator.warm_up(defaults, **kwargs)

    def device_info(self) -> str:
        return self.generator.device_info()

    def free_memory(self) -> None:
        """Return cached accelerator memory (after a failed run)."""
        self.generator.free_memory()

    def memory_stats(self) -> dict[str, int] | None:
        """Accelerator memory in bytes (``allocated``, ``reserved``) for the bot's metrics; None
        on CPU."""
        return self.generator.memory_stats()

    def prompt_for_model(
        self, text: str, translate: bool = True, generator: VideoGenerator | None = None
    ) -> str:
        """English when ``text`` holds Cyrillic and the model (``generator``, default the text
        model) does not read Russian, else ``text``."""
        reads_russian = (generator or self.generator).preset.reads_russian
        if not translate or reads_russian or not has_cyrillic(text):
            return text
        if self.translator is None:
            log.warning("translation disabled: the video model gets Cyrillic text as is")
            return text
        return self.translator.translate(text)

    @property
    def can_improve(self) -> bool:
        """Whether a prompt improver is loaded (``PROMPT_MODEL``)."""
        return self.improver is not None

    def improve_prompt(self, text: str) -> ImprovedPrompt:
        """The improver's English prompt for ``text``, else (no improver, a timeout, an output
        the checks refuse) the plain translation with ``improved=False``. Blocking."""
        if self.improver is None:
            return ImprovedPrompt(self.prompt_for_model(text), improved=False, reason="no_model")
        return self.improver.improve(text, self.prompt_for_model)

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
    ) -> RunResult:
        """Translate (or, with ``improve``, improve), generate and encode; ``prompt_en`` skips
        that stage (a prompt chosen earlier, or a retried job).

        ``image``: the fitted photo (PNG bytes, :func:`pipeline.image.prepare_image`) of a
        photo request: rendered by the image-to-video model."""
        start = time.perf_counter()
        generator = self.generator
        if image is not None:
            if self.image_generator is None:
                raise ModelLoadError("no image-to-video model is loaded (I2V_MODEL)")
            generator = self.image_generator

        def report(progress: Progress) -> None:
            if on_progress is not None:
                on_progress(progress)

        def report_stage(stage: Stage, step: int, detail: str | None = None) -> None:
            report(Progress(stage, step, 1, time.perf_counter() - start, detail))

        if prompt_en is None:
            report_stage(Stage.TRANSLATE, 0)
            if improve and translate:
                prompt_en = self.improve_prompt(options.prompt).text
            else:
                prompt_en = self.prompt_for_model(options.prompt, translate, generator)
        translated = time.perf_counter()
        report_stage(Stage.TRANSLATE, 1, detail=prompt_en)
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("cancelled before generation")

        offset = translated - start  # the generator counts its own elapsed time from zero

        def shifted(progress: Progress) -> None:
            report(replace(progress, elapsed=progress.elapsed + offset))

        video = generator.generate(
            options, prompt_en=prompt_en, on_progress=shifted, cancel=cancel, image=image
        )
        encode_start = time.perf_counter()
        report_stage(Stage.ENCODE_VIDEO, 0)
        video_file = export_mp4(video.frames, Path(output), video.fps, max_bytes=max_bytes)
        end = time.perf_counter()
        report_stage(Stage.ENCODE_VIDEO, 1)
        timings = {
            "translate": translated - start,
            **video.timings,
            "encode_video": end - encode_start,
            "total": end - start,
        }
        return RunResult(video=video_file, prompt_en=prompt_en, seed=video.seed, timings=timings)
