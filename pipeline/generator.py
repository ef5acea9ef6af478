"""One resident diffusers text-to-video pipeline that turns resolved options into uint8 frames.

Loading reads the family from ``model_index.json``, loads the pipeline once (bf16 on CUDA,
float32 on CPU), places it in a memory mode chosen from free VRAM and applies the opt-in speed
settings. :meth:`VideoGenerator.generate` calls the pipeline the diffusers way, reporting progress
from ``callback_on_step_end`` and stopping through the same hook when the cancel flag is set.
"""

from __future__ import annotations

import gc
import inspect
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import GenerationOOM, ModelLoadError
from pipeline.families import load_pipeline
from pipeline.memory import (
    MEMORY_MODES,
    apply_memory_mode,
    choose_memory_mode,
    component_bytes,
    needs_vae_tiling,
)
from pipeline.options import GenerationDefaults, GenerationOptions, ModelLimits
from pipeline.presets import (
    ModelPreset,
    apply_overrides,
    defaults_and_limits,
    one_line,
    preset_for,
    read_class_name,
    signature_defaults,
)
from pipeline.progress import GenerationCancelled, Progress, ProgressCallback, Stage
from pipeline.speed import FastSwitch, SpeedSettings, apply_speed, denoiser, load_lora

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class GeneratorConfig:
    """How to load the video model; every speed or memory feature is opt-in or chosen by ``auto``.

    ``defaults_override`` / ``limits_override`` carry the operator's ``DEFAULT_*`` / ``MAX_*``
    (field names of :class:`GenerationDefaults` / :class:`ModelLimits`). ``compile``,
    ``attention_backend`` and the memory mode do not change what a seed draws and serve every
    job; ``cache`` and ``lora_path`` do, and serve only jobs with ``GenerationOptions.fast``
    (their steps and guidance are the caller's choice: :func:`pipeline.options.fast_overrides`).
    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    memory_mode: str = "auto"
    vae_tiling: bool | None = None
    compile: bool = False
    attention_backend: str | None = None
    cache: str | None = None
    cache_threshold: float | None = None
    lora_path: str | None = None
    lora_scale: float = 1.0
    defaults_override: dict[str, Any] | None = None
    limits_override: dict[str, Any] | None = None

    @property
    def speed(self) -> SpeedSettings:
        return SpeedSettings(
            compile=self.compile,
            attention_backend=self.attention_backend,
            cache=self.cache,
            cache_threshold=self.cache_threshold,
            lora_path=self.lora_path,
            lora_scale=self.lora_scale,
        )


@dataclass(frozen=True)
class GeneratedVideo:
    frames: np.ndarray  # uint8 [F, H, W, 3]
    fps: int
    seed: int
    timings: dict[str, float] = field(default_factory=dict)


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; a missing GPU is a load error."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"DEVICE={device} but no CUDA GPU is visible (use DEVICE=cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ModelLoadError(f"unknown device {device!r} (allowed: auto, cpu, cuda, cuda:N)")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """bf16 on CUDA, float32 on CPU (CPU bf16 kernels are slow and some are missing)."""
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r} (allowed: {', '.join(DTYPES)})")
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def to_uint8_frames(video: Any) -> np.ndarray:
    """A pipeline's ``.frames`` (np float, torch, or PIL lists; batched or not) → uint8 [F,H,W,3]."""
    if isinstance(video, (list, tuple)):
        video = video[0]
        if isinstance(video, (list, tuple)):  # list of PIL images
            return np.stack([np.asarray(im.convert("RGB")) for im in video])
        if hasattr(video, "convert"):
            raise TypeError("expected a video, got a single image")
    if hasattr(video, "detach"):
        import torch

        # Quantise where the frames are (the GPU): copying 81 float32 frames to the host and
        # scaling them there costs about a second per clip at 832x480.
        video = video.detach()
        if video.dtype.is_floating_point:
            video = video.float().clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
        video = video.cpu().numpy()
    arr = np.asarray(video)
    if arr.ndim == 5:
        arr = arr[0]
    if arr.ndim != 4:
        raise ValueError(f"unexpected video shape {arr.shape}")
    if arr.shape[-1] not in (1, 3, 4) and arr.shape[1] in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)  # [F, C, H, W] → [F, H, W, C]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


class VideoGenerator:
    """A loaded pipeline plus what it accepts; ``generate`` runs one video at a time."""

    def __init__(
        self,
        pipe: Any,
        config: GeneratorConfig,
        preset: ModelPreset,
        defaults: GenerationDefaults,
        limits: ModelLimits,
        device: str,
        memory_mode: str = "resident",
    ):
        self.pipe = pipe
        self.config = config
        self.preset = preset
        self.defaults = defaults
        self.limits = limits
        self.device = device
        self.memory_mode = memory_mode
        self.speed_applied: list[str] = []
        self._params = set(inspect.signature(pipe.__call__).parameters)
        sig = signature_defaults(pipe)
        self.max_sequence_length: int | None = preset.max_sequence_length or sig.get(
            "max_sequence_length"
        )
        self.fast_switch = FastSwitch(pipe, config.speed)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, config: GeneratorConfig) -> VideoGenerator:
        """Load once; any failure to find or read the model is a one-line :class:`ModelLoadError`."""
        import torch

        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        class_name = read_class_name(config.model)
        preset = preset_for(class_name)
        dtypes: Any = dtype
        if preset.family == "wan" and dtype != torch.float32:
            dtypes = {"default": dtype, "vae": torch.float32}  # Wan's VAE wants float32
        try:
            pipe = load_pipeline(config.model, class_name, **_dtype_kwarg(dtypes))
        except Exception as exc:
            raise ModelLoadError(f"cannot load {config.model}: {one_line(exc)}") from exc
        return cls.from_pipe(pipe, config, preset=preset, class_name=class_name)

    @classmethod
    def from_pipe(
        cls,
        pipe: Any,
        config: GeneratorConfig,
        *,
        preset: ModelPreset | None = None,
        class_name: str | None = None,
    ) -> VideoGenerator:
        """Wrap an already-built pipeline: memory mode, speed settings, defaults and limits.

        ``load`` ends here; benchmarks that build a full-size model in memory start here too.
        """
        import torch

        class_name = class_name or type(pipe).__name__
        preset = preset or preset_for(class_name)
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        if denoiser(pipe) is None:
            raise ModelLoadError(f"{config.model} ({class_name}) is not a text-to-video pipeline")
        pipe.set_progress_bar_config(disable=True)  # we report progress ourselves

        defaults, limits = defaults_and_limits(pipe, preset)
        defaults, limits = apply_overrides(
            defaults, limits, config.defaults_override, config.limits_override
        )

        speed = config.speed
        if speed.lora_path:
            try:
                load_lora(pipe, speed.lora_path, speed.lora_scale)
            except Exception as exc:
                raise ModelLoadError(
                    f"cannot load LoRA {speed.lora_path}: {one_line(exc)}"
                ) from exc
        mode = config.memory_mode
        if mode not in ("auto", *MEMORY_MODES):
            raise ModelLoadError(
                f"unknown memory mode {mode!r} (allowed: auto, {', '.join(MEMORY_MODES)})"
            )
        tiling = bool(config.vae_tiling)
        if device.startswith("cuda"):
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            sizes = component_bytes(pipe, torch.finfo(dtype).bits // 8)
            if mode == "auto":
                mode = choose_memory_mode(free, sizes)
            if config.vae_tiling is None:
                tiling = needs_vae_tiling(mode, free, sizes)
            log.info("memory mode %s (free %.1f GB), VAE tiling %s", mode, free / 1e9, tiling)
        else:
            mode = "resident"
        apply_memory_mode(pipe, mode, device, vae_tiling=tiling)
        generator = cls(pipe, config, preset, defaults, limits, device, mode)
        try:  # a missing kernel package or a bad name: say so in one line at start, not mid-job
            generator.speed_applied = apply_speed(pipe, speed, defaults.steps)
        except Exception as exc:
            raise ModelLoadError(f"cannot apply speed settings: {one_line(exc)}") from exc
        return generator

    # ------------------------------------------------------------ generation

    def cut_prompt(self, text: str) -> str:
        """Cut ``text`` to the video model's ``max_sequence_length`` tokens, at a token boundary."""
        tokenizer = getattr(self.pipe, "tokenizer", None)
        limit = self.max_sequence_length
        if not text or tokenizer is None or not limit:
            return text
        keep = max(1, limit - tokenizer.num_special_tokens_to_add())
        try:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        except (NotImplementedError, TypeError, ValueError):  # slow tokenizers have no offsets
            return text
        offsets = enc["offset_mapping"]
        if len(offsets) <= keep:
            return text
        return text[: offsets[keep - 1][1]].rstrip()

    def generate(
        self,
        options: GenerationOptions,
        *,
        prompt_en: str | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GeneratedVideo:
        """Frames for ``options`` (``prompt_en`` replaces ``options.prompt`` when given).

        Stages: encode_text, denoise (one report per step), decode. Raises
        :class:`GenerationCancelled` within one step of ``cancel`` being set, and
        :class:`GenerationOOM` when the GPU runs out of memory.
        """
        import torch

        with self._lock:
            start = time.perf_counter()
            marks: dict[str, float] = {}

            def report(stage: Stage, step: int, total: int) -> None:
                if on_progress is not None:
                    on_progress(Progress(stage, step, total, time.perf_counter() - start))

            def on_step_end(pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                total = getattr(pipe, "_num_timesteps", None) or options.steps
                report(Stage.DENOISE, i + 1, total)
                if i + 1 >= total:
                    marks["denoised"] = time.perf_counter()
                    report(Stage.DECODE, 0, 1)
                if cancel is not None and cancel.is_set():
                    pipe._interrupt = True
                    raise GenerationCancelled("cancelled")  # now, not after a wasted VAE decode
                return {}

            def on_first_forward(module: Any, args: Any) -> None:
                if "denoise_start" not in marks:
                    marks["denoise_start"] = time.perf_counter()
                    report(Stage.ENCODE_TEXT, 1, 1)
                    report(Stage.DENOISE, 0, options.steps)

            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled before start")
            # The LoRA adapter and the cache change the output: on for fast jobs only.
            self.fast_switch.prepare(options.fast, options.steps)
            prompt = self.cut_prompt(prompt_en if prompt_en is not None else options.prompt)
            negative = self.cut_prompt(options.negative_prompt) or None
            kwargs = self._call_kwargs(options, prompt, negative, on_step_end)
            report(Stage.ENCODE_TEXT, 0, 1)
            hook = denoiser(self.pipe).register_forward_pre_hook(on_first_forward)
            try:
                output = self.pipe(**kwargs)
                frames = to_uint8_frames(output.frames if hasattr(output, "frames") else output[0])
            except GenerationCancelled:
                self._after_failure()
                raise
            except torch.cuda.OutOfMemoryError as exc:
                self._after_failure()
                raise GenerationOOM(f"out of GPU memory: {one_line(exc)}") from exc
            except Exception:
                self._after_failure()
                raise
            finally:
                hook.remove()
            end = time.perf_counter()
            report(Stage.DECODE, 1, 1)
            denoise_start = marks.get("denoise_start", start)
            denoised = marks.get("denoised", end)
            timings = {
                "encode_text": denoise_start - start,
                "denoise": denoised - denoise_start,
                "decode": end - denoised,
            }
            return GeneratedVideo(
                frames=frames, fps=options.fps, seed=options.seed, timings=timings
            )

    def _call_kwargs(
        self, options: GenerationOptions, prompt: str, negative: str | None, callback: Any
    ) -> dict[str, Any]:
        """Only the arguments this pipeline's ``__call__`` accepts."""
        import torch

        # A CPU generator draws the same noise on any device and in any memory mode, so a seed
        # repeats the same video wherever it runs (diffusers' randn_tensor moves it over).
        wanted = {
            "prompt": prompt,
            "negative_prompt": negative,
            "height": options.height,
            "width": options.width,
            "num_frames": options.frames,
            "num_inference_steps": options.steps,
            "guidance_scale": options.guidance,
            "frame_rate": options.fps,
            "generator": torch.Generator(device="cpu").manual_seed(options.seed),
            "output_type": "pt",  # frames stay on the device until quantised
            "max_sequence_length": self.max_sequence_length,
            "callback_on_step_end": callback,
        }
        return {k: v for k, v in wanted.items() if k in self._params and v is not None}

    def _after_failure(self) -> None:
        hooks = getattr(self.pipe, "maybe_free_model_hooks", None)
        if hooks is not None and self.memory_mode == "model_offload":
            try:
                hooks()  # puts offloaded components back where the offload hooks expect them
            except Exception:  # pragma: no cover - best effort after a failure
                log.debug("maybe_free_model_hooks failed", exc_info=True)
        self.free_memory()

    # ------------------------------------------------------------ housekeeping

    def device_info(self) -> str:
        """``"NVIDIA H200, 12.3/139 GB"`` (used/total) on CUDA, ``"CPU"`` otherwise."""
        return device_info(self.device)

    def free_memory(self) -> None:
        free_memory()


def device_info(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        free, total = torch.cuda.mem_get_info(dev)
        name = torch.cuda.get_device_name(dev)
        return f"{name}, {(total - free) / 1e9:.1f}/{total / 1e9:.0f} GB"
    return "CPU"


def free_memory() -> None:
    """Return cached GPU blocks after a run or a failure (an OOM leaves them stranded)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """diffusers renamed ``torch_dtype`` to ``dtype``; pass whichever this version knows."""
    try:
        from diffusers.utils import deprecation_utils

        if hasattr(deprecation_utils, "_resolve_dtype"):
            return {"dtype": dtype}
    except ImportError:
        pass
    return {"torch_dtype": dtype}
