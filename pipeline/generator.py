"""One resident diffusers text-to-video pipeline that turns resolved options into uint8 frames.

Loading reads the family from ``model_index.json``, loads the pipeline once (bf16 on CUDA,
float32 on CPU), builds the fast tier's distilled transformer when one is configured, places
everything in a memory mode chosen from free VRAM and applies the speed settings (regional
compile on CUDA, attention backend, FP8). :meth:`VideoGenerator.generate` puts the pipeline into
the job's quality tier (:mod:`pipeline.quality`), calls it the diffusers way, reports progress
from ``callback_on_step_end`` and stops through the same hook when the cancel flag is set.
:meth:`VideoGenerator.warm_up` pays the compile before the first job.
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
from pipeline.options import (
    QUALITIES,
    GenerationDefaults,
    GenerationOptions,
    ModelLimits,
    OptionOverrides,
    resolve_options,
)
from pipeline.presets import (
    ModelPreset,
    defaults_and_limits,
    one_line,
    preset_for,
    read_class_name,
    signature_defaults,
)
from pipeline.preview import MIN_INTERVAL, LatentPreview
from pipeline.progress import (
    GenerationCancelled,
    PreviewImage,
    Progress,
    ProgressCallback,
    Stage,
)
from pipeline.quality import (
    FAST_SHIFT,
    MagCacheData,
    TierPlan,
    TierSupport,
    builtin_cache_data,
    load_cache_data,
    plan_tier,
)
from pipeline.speed import (
    TierSwitch,
    check_quantize,
    compile_blocks,
    compile_enabled,
    denoiser,
    fast_scheduler,
    fused_lora_transformer,
    load_fast_transformer,
    quantize,
    use_compile_cache,
)

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class GeneratorConfig:
    """How to load the video model and its quality tiers.

    ``compile``, ``attention_backend``, ``quantize`` and the memory mode serve every job. The
    tiers (:mod:`pipeline.quality`) need: for fast, ``fast_lora`` (fused into a copy of the
    transformer) or ``fast_transformer`` (a distilled transformer), run with a flow-matching
    Euler sampler of ``fast_shift`` for ``fast_steps`` steps; for balanced, MagCache data:
    ``cache_ratios`` (a file written by ``python -m pipeline calibrate-cache``), else the
    built-in data where the model is Wan 2.1 T2V 1.3B. The operator's ``DEFAULT_*`` / ``MAX_*``
    are not here: :func:`pipeline.presets.apply_overrides` lays them over ``generator.defaults``.
    """

    model: str = DEFAULT_MODEL
    revision: str | None = None
    """A branch, tag or commit of the Hub repository (``T2V_MODEL_REVISION``): pin it so an
    upstream change never reaches a running service unnoticed."""
    device: str = "auto"
    dtype: str = "auto"
    memory_mode: str = "auto"
    vae_tiling: bool | None = None
    compile: str = "auto"
    compile_cache_dir: str | None = None
    attention_backend: str | None = None
    quantize: str | None = None
    fast_lora: str | None = None
    fast_lora_scale: float = 1.0
    fast_transformer: str | None = None
    fast_steps: int | None = None
    fast_shift: float = FAST_SHIFT
    cache_ratios: str | None = None
    preview: bool = True
    """Live preview images in the progress reports (``PREVIEW``; ``pipeline/preview.py``)."""
    preview_interval: float = MIN_INTERVAL
    """Seconds between two previews of one run."""


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
        tiers: TierSupport | None = None,
        switch: TierSwitch | None = None,
    ):
        self.pipe = pipe
        self.config = config
        self.preset = preset
        self.defaults = defaults
        self.limits = limits
        self.device = device
        self.memory_mode = memory_mode
        self.speed_applied: list[str] = []
        self.tiers = tiers or TierSupport()
        self.switch = switch or TierSwitch(pipe, self.tiers)
        self._params = set(inspect.signature(pipe.__call__).parameters)
        sig = signature_defaults(pipe)
        self.max_sequence_length: int | None = preset.max_sequence_length or sig.get(
            "max_sequence_length"
        )
        self._lock = threading.Lock()

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, config: GeneratorConfig) -> VideoGenerator:
        """Load once; any failure to find or read the model is a one-line :class:`ModelLoadError`."""
        import torch

        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device)
        class_name = read_class_name(config.model, config.revision)
        preset = preset_for(class_name)
        dtypes: Any = dtype
        if preset.family == "wan" and dtype != torch.float32:
            dtypes = {"default": dtype, "vae": torch.float32}  # Wan's VAE wants float32
        try:
            revision = {"revision": config.revision} if config.revision else {}
            pipe = load_pipeline(config.model, class_name, **_dtype_kwarg(dtypes), **revision)
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
        mode = config.memory_mode
        if mode not in ("auto", *MEMORY_MODES):
            raise ModelLoadError(
                f"unknown memory mode {mode!r} (allowed: auto, {', '.join(MEMORY_MODES)})"
            )
        try:  # bad settings fail in one line at start, before anything heavy happens
            compiled = compile_enabled(config.compile, device)
            quant = check_quantize(config.quantize, device)
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc
        fast = _fast_weights(pipe, config)
        cache = _cache_data(pipe, config)
        tiers = TierSupport(distilled=fast is not None, cache=cache, fast_steps=config.fast_steps)

        tiling = bool(config.vae_tiling)
        if device.startswith("cuda"):
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            sizes = component_bytes(pipe, torch.finfo(dtype).bits // 8)
            if fast is not None:
                sizes["fast_transformer"] = sizes.get("transformer", 0)
            if mode == "auto":
                mode = choose_memory_mode(free, sizes)
            if config.vae_tiling is None:
                tiling = needs_vae_tiling(mode, free, sizes)
            log.info("memory mode %s (free %.1f GB), VAE tiling %s", mode, free / 1e9, tiling)
        else:
            mode = "resident"
        apply_memory_mode(pipe, mode, device, vae_tiling=tiling)
        if fast is not None:
            place_module(fast, mode, device)
        auto_compile = str(config.compile or "auto").strip().lower() == "auto"
        if compiled and auto_compile and mode != "resident":
            # Offload hooks move weights inside the blocks: measured only resident (section 2 of
            # docs/performance.md); an explicit COMPILE=on still compiles, with graph breaks.
            log.info("COMPILE=auto: not compiling in memory mode %s", mode)
            compiled = False

        def reinstall_offload() -> None:  # model offload hooks follow the pipeline's components
            pipe.remove_all_hooks()
            pipe.enable_model_cpu_offload(device=device)

        switch = TierSwitch(
            pipe,
            tiers,
            fast_transformer=fast,
            fast_sampler=fast_scheduler(config.fast_shift) if fast is not None else None,
            on_swap=reinstall_offload if mode == "model_offload" else None,
        )
        generator = cls(pipe, config, preset, defaults, limits, device, mode, tiers, switch)
        try:  # a missing kernel package or a bad name: say so in one line at start, not mid-job
            generator.speed_applied = _apply_speed(
                [denoiser(pipe), *([fast] if fast is not None else [])],
                config,
                compiled=compiled,
                quant=quant,
                fullgraph=mode == "resident",
            )
        except Exception as exc:
            raise ModelLoadError(f"cannot apply speed settings: {one_line(exc)}") from exc
        for quality in QUALITIES:
            plan = generator.tier_plan(quality)
            if plan.note:
                log.warning("quality %s: %s (%d steps)", quality, plan.note, plan.steps)
        return generator

    @property
    def call_parameters(self) -> frozenset[str]:
        """The argument names of the pipeline's ``__call__``."""
        return frozenset(self._params)

    @property
    def takes_image(self) -> bool:
        """An image-to-video pipeline (``WanImageToVideoPipeline``, ``LTXImageToVideoPipeline``):
        every call needs the photo it animates (``generate(..., image=...)``)."""
        return "image" in self._params

    # ------------------------------------------------------------ tiers

    def tier_plan(
        self,
        quality: str,
        defaults: GenerationDefaults | None = None,
        limits: ModelLimits | None = None,
    ) -> TierPlan:
        """What ``quality`` runs here: steps, guidance, negative prompt, cache, transformer calls.

        Pass the operator's defaults and limits (after :func:`pipeline.presets.apply_overrides`)
        where they differ from the model's own."""
        return plan_tier(quality, defaults or self.defaults, limits or self.limits, self.tiers)

    def tier_overrides(
        self,
        quality: str,
        defaults: GenerationDefaults | None = None,
        limits: ModelLimits | None = None,
    ) -> OptionOverrides:
        """The tier's option overrides: merge a request's own overrides over these, then
        :func:`pipeline.options.resolve_options`."""
        return self.tier_plan(quality, defaults, limits).overrides()

    def warm_up(
        self,
        defaults: GenerationDefaults | None = None,
        *,
        qualities: tuple[str, ...] | None = None,
        steps: int = 2,
    ) -> dict[str, float]:
        """Render once per transformer a tier uses, at the default size, before taking jobs.

        The first call at a size pays ``torch.compile`` (about 12 s on an H200 for Wan 2.1 1.3B,
        less when the on-disk cache holds it) and CUDA's lazy initialisation; a warm-up moves that
        cost from the first user to the start. ``qualities`` defaults to balanced, plus fast when
        it has its own transformer. Returns seconds per quality (also logged)."""
        defaults = defaults or self.defaults
        if qualities is None:
            qualities = ("balanced", "fast") if self.tiers.distilled else ("balanced",)
        seconds: dict[str, float] = {}
        for quality in qualities:
            plan = self.tier_plan(quality, defaults)
            options = resolve_options(
                "warm-up",
                OptionOverrides(seed=0, steps=min(steps, plan.steps)).merged_over(plan.overrides()),
                defaults,
                self.limits,
            )
            start = time.perf_counter()
            self.generate(options, image=self._warm_up_image(options) if self.takes_image else None)
            seconds[quality] = time.perf_counter() - start
        log.info(
            "warm-up at %dx%dx%d: %s (compile %s)",
            defaults.width,
            defaults.height,
            defaults.frames,
            ", ".join(f"{q} {s:.1f} s" for q, s in seconds.items()),
            "on" if any(a.startswith("compile") for a in self.speed_applied) else "off",
        )
        return seconds

    @staticmethod
    def _warm_up_image(options: GenerationOptions) -> Any:
        from PIL import Image

        return Image.new("RGB", (options.width, options.height), (128, 128, 128))

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
        image: Any = None,
    ) -> GeneratedVideo:
        """Frames for ``options`` (``prompt_en`` replaces ``options.prompt`` when given).

        ``image``: the photo an image-to-video model animates (PNG/JPEG bytes or a PIL image,
        already fitted to ``options``' size by :mod:`pipeline.image`); required by such a model
        (:attr:`takes_image`), refused by any other. Stages: encode_text, denoise (one report per
        step), decode. Raises :class:`GenerationCancelled` within one step of ``cancel`` being
        set, and :class:`GenerationOOM` when the GPU runs out of memory.
        """
        import torch

        if self.takes_image and image is None:
            raise ValueError(f"{self.config.model} animates a photo: give it an image")
        if image is not None and not self.takes_image:
            raise ValueError(f"{self.config.model} is not an image-to-video model")
        if isinstance(image, (bytes, bytearray)):
            from pipeline.image import decode_fitted

            image = decode_fitted(bytes(image))

        with self._lock:
            start = time.perf_counter()
            marks: dict[str, float] = {}

            def report(
                stage: Stage, step: int, total: int, preview: PreviewImage | None = None
            ) -> None:
                if on_progress is not None:
                    elapsed = time.perf_counter() - start
                    on_progress(Progress(stage, step, total, elapsed, preview=preview))

            preview = self.preview_for(options) if on_progress is not None else None

            def on_step_end(pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                total = pipe.num_timesteps if hasattr(pipe, "num_timesteps") else options.steps
                image = preview.step(i, total, tensors.get("latents")) if preview else None
                report(Stage.DENOISE, i + 1, total, image)
                if i + 1 >= total:
                    marks["denoised"] = time.perf_counter()
                    report(Stage.DECODE, 0, 1)
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled("cancelled")  # now, not after a wasted VAE decode
                return {}

            def on_first_forward(module: Any, args: Any) -> None:
                if "denoise_start" not in marks:
                    marks["denoise_start"] = time.perf_counter()
                    report(Stage.ENCODE_TEXT, 1, 1)
                    report(Stage.DENOISE, 0, options.steps)

            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled before start")
            # The tier decides the transformer, the sampler and whether the step cache is on.
            self.switch.prepare(options.quality, options.steps)
            prompt = self.cut_prompt(prompt_en if prompt_en is not None else options.prompt)
            negative = self.cut_prompt(options.negative_prompt) or None
            kwargs = self._call_kwargs(options, prompt, negative, on_step_end)
            if image is not None:
                kwargs["image"] = image
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

    def preview_for(self, options: GenerationOptions) -> LatentPreview | None:
        """A fresh preview maker for one run, or None with ``preview`` off."""
        if not self.config.preview:
            return None
        return LatentPreview(
            self.pipe,
            self.preset.family,
            size=(options.width, options.height),
            min_interval=self.config.preview_interval,
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
        try:
            # Resets the step cache's state (a cancelled run leaves it mid-way) and puts
            # offloaded components back where the offload hooks expect them.
            self.pipe.maybe_free_model_hooks()
        except Exception:  # pragma: no cover - best effort after a failure
            log.debug("maybe_free_model_hooks failed", exc_info=True)
        self.free_memory()

    # ------------------------------------------------------------ housekeeping

    def device_info(self) -> str:
        """``"NVIDIA H200, 12.3/139 GB"`` (used/total) on CUDA, ``"CPU"`` otherwise."""
        return device_info(self.device)

    def free_memory(self) -> None:
        free_memory()

    def memory_stats(self) -> dict[str, int] | None:
        """Accelerator memory of this process in bytes (``allocated``, ``reserved``); None on CPU."""
        return memory_stats(self.device)


def place_module(module: Any, mode: str, device: str) -> None:
    """Put a module that joins the pipeline later (the fast transformer) where ``mode`` wants it."""
    import torch

    if mode == "resident":
        module.to(device)
    elif mode == "group_offload":
        module.enable_group_offload(
            onload_device=torch.device(device),
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
            use_stream=torch.device(device).type == "cuda",
        )
    # model_offload: the pipeline's hooks are reinstalled whenever it joins (TierSwitch.on_swap)


def _fast_weights(pipe: Any, config: GeneratorConfig) -> Any:
    """The fast tier's distilled transformer, or None (the tier then runs fewer base steps)."""
    if config.fast_lora and config.fast_transformer:
        raise ModelLoadError("set FAST_LORA or FAST_TRANSFORMER, not both")
    try:
        if config.fast_lora:
            return fused_lora_transformer(pipe, config.fast_lora, config.fast_lora_scale)
        if config.fast_transformer:
            return load_fast_transformer(pipe, config.fast_transformer, config.model)
    except Exception as exc:
        name = "FAST_LORA" if config.fast_lora else "FAST_TRANSFORMER"
        source = config.fast_lora or config.fast_transformer
        raise ModelLoadError(f"cannot load {name} {source}: {one_line(exc)}") from exc
    return None


def _cache_data(pipe: Any, config: GeneratorConfig) -> MagCacheData | None:
    """MagCache data: the configured file, else the built-in data where the model fits it."""
    model = denoiser(pipe)
    if not hasattr(model, "enable_cache"):
        return None
    try:
        if config.cache_ratios:
            return load_cache_data(config.cache_ratios)
        return builtin_cache_data(model)
    except ValueError as exc:
        raise ModelLoadError(one_line(exc)) from exc


def _apply_speed(
    models: list[Any], config: GeneratorConfig, *, compiled: bool, quant: Any, fullgraph: bool
) -> list[str]:
    """The output-neutral settings on each transformer; returns what was applied."""
    applied: list[str] = []
    if config.attention_backend:
        for model in models:
            model.set_attention_backend(config.attention_backend)
        applied.append(f"attention={config.attention_backend}")
    if quant is not None:
        for model in models:
            quantize(model, quant)
        applied.append(f"quantize={config.quantize}")
    if compiled:
        if config.compile_cache_dir:
            cache_dir = use_compile_cache(config.compile_cache_dir)
            applied.append(f"compile_cache={cache_dir}")
        blocks = [compile_blocks(model, fullgraph=fullgraph) for model in models]
        applied.insert(0, "compile=regional" if all(blocks) else "compile=full")
    return applied


def device_info(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        free, total = torch.cuda.mem_get_info(dev)
        name = torch.cuda.get_device_name(dev)
        return f"{name}, {(total - free) / 1e9:.1f}/{total / 1e9:.0f} GB"
    return "CPU"


def memory_stats(device: str) -> dict[str, int] | None:
    """``torch.cuda.memory_allocated``/``memory_reserved`` of ``device``; None off CUDA. Cheap
    (allocator counters, no synchronisation): safe to call while a render runs."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        return {
            "allocated": int(torch.cuda.memory_allocated(dev)),
            "reserved": int(torch.cuda.memory_reserved(dev)),
        }
    return None


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
