"""Translator + video generator + MP4 export: the one object the CLI and the bot run.

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

from pipeline.export import VideoFile, export_mp4
from pipeline.generator import GeneratorConfig, VideoGenerator
from pipeline.options import GenerationDefaults, GenerationOptions, ModelLimits, OptionOverrides
from pipeline.presets import ModelPreset
from pipeline.progress import GenerationCancelled, Progress, ProgressCallback, Stage
from pipeline.quality import TierPlan, TierSupport
from pipeline.translate import Translator, has_cyrillic, load_translator

log = logging.getLogger(__name__)

DEFAULT_TRANSLATOR = "Helsinki-NLP/opus-mt-tc-big-zle-en"


@dataclass(frozen=True)
class RunResult:
    video: VideoFile
    prompt_en: str  # the prompt the video model was given (the text itself if not translated)
    seed: int
    timings: dict[str, float]  # translate, encode_text, denoise, decode, encode_video, total


class TextToVideo:
    """Russian or English text → MP4, with the loaded model's defaults and limits."""

    def __init__(self, generator: VideoGenerator, translator: Translator | None = None):
        self.generator = generator
        self.translator = translator

    @classmethod
    def load(
        cls,
        config: GeneratorConfig,
        translator_model: str | None = DEFAULT_TRANSLATOR,
        translator_device: str = "cpu",
        translator_revision: str | None = None,
    ) -> TextToVideo:
        """Load the video model, and the translator only if the model does not read Russian."""
        generator = VideoGenerator.load(config)
        translator = None
        if not generator.preset.reads_russian:
            translator = load_translator(
                translator_model, device=translator_device, revision=translator_revision
            )
        return cls(generator, translator)

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

    def prompt_for_model(self, text: str, translate: bool = True) -> str:
        """English when ``text`` holds Cyrillic and the model does not read Russian, else ``text``."""
        if not translate or self.reads_russian or not has_cyrillic(text):
            return text
        if self.translator is None:
            log.warning("translation disabled: the video model gets Cyrillic text as is")
            return text
        return self.translator.translate(text)

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
    ) -> RunResult:
        """Translate, generate and encode; ``prompt_en`` skips translation (e.g. a retried job)."""
        start = time.perf_counter()

        def report(progress: Progress) -> None:
            if on_progress is not None:
                on_progress(progress)

        def report_stage(stage: Stage, step: int, detail: str | None = None) -> None:
            report(Progress(stage, step, 1, time.perf_counter() - start, detail))

        if prompt_en is None:
            report_stage(Stage.TRANSLATE, 0)
            prompt_en = self.prompt_for_model(options.prompt, translate)
        translated = time.perf_counter()
        report_stage(Stage.TRANSLATE, 1, detail=prompt_en)
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("cancelled before generation")

        offset = translated - start  # the generator counts its own elapsed time from zero

        def shifted(progress: Progress) -> None:
            report(replace(progress, elapsed=progress.elapsed + offset))

        video = self.generator.generate(
            options, prompt_en=prompt_en, on_progress=shifted, cancel=cancel
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
