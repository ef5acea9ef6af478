"""Helpers of the model benchmarks (gpu_throughput, overhead, quality): prompts, timing marks,
stage instrumentation and the full-size random-weight Wan builder. The project is used through its
public API only (``pipeline.generator.VideoGenerator``, ``pipeline.options``)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.report import ROOT, fmt, log, median, ratio  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = (
    "A cat and a dog baking a cake together in a kitchen. The cat is carefully measuring flour, "
    "while the dog is stirring the batter with a wooden spoon."
)
NEGATIVE = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, "
    "static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete"
)

TOKENIZER_CORPUS = [
    "a cat plays the piano in space, cartoon style",
    "a dog runs along the beach at sunset",
    "a beautiful city at night, neon lights, rain",
    "кот играет на пианино в космосе, мультяшный стиль",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,!?-\"'",
]


def quiet() -> None:
    """No progress bars or info logs from diffusers/transformers: the figures stay readable."""
    import diffusers
    import transformers

    for lib in (diffusers, transformers):
        lib.utils.logging.set_verbosity_error()
        lib.utils.logging.disable_progress_bar()


def no_progress_bar(pipe: Any) -> None:
    if pipe is not None and hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def is_oom(exc: BaseException) -> bool:
    import torch

    text = str(exc).lower()
    return (
        isinstance(exc, torch.OutOfMemoryError)
        or type(exc).__name__ == "GenerationOOM"
        or "out of memory" in text
        or "out of gpu memory" in text
    )


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:limit]


# ---------------------------------------------------------------- timing


class Clock:
    """Stage marks on one timeline: CUDA events on a GPU, ``perf_counter`` on CPU."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.marks: list[tuple[str, Any]] = []

    def mark(self, name: str) -> None:
        if self.cuda:
            import torch

            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append((name, event))
        else:
            self.marks.append((name, time.perf_counter()))

    def seconds(self) -> list[tuple[str, float]]:
        """Every mark as seconds after the first one (synchronises the device once)."""
        if not self.marks:
            return []
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            first = self.marks[0][1]
            return [(name, first.elapsed_time(ev) / 1000.0) for name, ev in self.marks]
        first = self.marks[0][1]
        return [(name, t - first) for name, t in self.marks]


@dataclasses.dataclass
class StageTimes:
    """What one pipeline call spent where (seconds)."""

    total: float
    encode_text: float | None = None
    denoise: float | None = None
    decode: float | None = None
    steps: list[float] = dataclasses.field(default_factory=list)
    forwards: int = 0
    peak_allocated_gb: float | None = None
    peak_reserved_gb: float | None = None

    @property
    def step_median(self) -> float | None:
        """Median step time, leaving out the first step (warm-up effects) when there are more."""
        steps = self.steps[1:] if len(self.steps) > 2 else self.steps
        return median(steps)

    @property
    def other(self) -> float | None:
        parts = [self.encode_text, self.denoise, self.decode]
        if any(p is None for p in parts):
            return None
        return self.total - sum(parts)  # type: ignore[arg-type]

    def clip_estimate(self, steps: int) -> float | None:
        """Whole clip at ``steps`` denoising steps: measured stages plus ``steps`` median steps."""
        if self.step_median is None or self.other is None:
            return None
        return self.encode_text + steps * self.step_median + self.decode + self.other  # type: ignore[operator]

    def as_dict(self, extrapolate_to: int | None = None) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["step_median"] = self.step_median
        data["other"] = self.other
        if extrapolate_to:
            data[f"clip_{extrapolate_to}_steps_estimate"] = self.clip_estimate(extrapolate_to)
        return data


def _wrap(obj: Any, name: str, before: Callable[[], None], after: Callable[[], None]) -> Any:
    """Replace ``obj.name`` by a timed wrapper; returns how to undo it."""
    own = name in vars(obj)  # already an instance attribute (someone else's wrapper): put it back
    original = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before()
        try:
            return original(*args, **kwargs)
        finally:
            after()

    setattr(obj, name, wrapper)
    return (obj, name, original if own else None)


@contextlib.contextmanager
def instrumented(pipe: Any, cuda: bool) -> Iterator[Clock]:
    """Mark text encoding, every transformer forward and the VAE decode of calls on ``pipe``.

    Wraps ``pipe.encode_prompt`` and ``pipe.vae.decode`` on the instances and adds a forward
    pre-hook to the transformer; everything is removed on exit. Works under group offload, compile
    (the transformer's own ``__call__`` is not compiled by regional compile) and cache hooks.
    """
    clock = Clock(cuda)
    restore: list[tuple[Any, str, Any]] = []
    handles = []
    try:
        restore.append(
            _wrap(
                pipe,
                "encode_prompt",
                lambda: clock.mark("encode_start"),
                lambda: clock.mark("encode_end"),
            )
        )
        if getattr(pipe, "vae", None) is not None:
            restore.append(
                _wrap(
                    pipe.vae,
                    "decode",
                    lambda: clock.mark("decode_start"),
                    lambda: clock.mark("decode_end"),
                )
            )
        if getattr(pipe, "transformer", None) is not None:
            handles.append(
                pipe.transformer.register_forward_pre_hook(lambda *_: clock.mark("forward"))
            )
        yield clock
    finally:
        for handle in handles:
            handle.remove()
        for obj, name, original in reversed(restore):
            if original is not None:
                setattr(obj, name, original)
            else:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)  # our instance attribute shadowed the class method


def stage_times(clock: Clock, total: float, guidance: bool) -> StageTimes:
    """Turn the marks of one call into stage durations and per-step times."""
    marks = clock.seconds()
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    forwards = []
    for name, t in marks:
        if name == "forward":
            forwards.append(t)
        first.setdefault(name, t)
        last[name] = t
    out = StageTimes(total=total, forwards=len(forwards))
    if "encode_start" in first and "encode_end" in last:
        out.encode_text = last["encode_end"] - first["encode_start"]
    if "decode_start" in first and "decode_end" in last:
        out.decode = last["decode_end"] - first["decode_start"]
    if "encode_end" in last and "decode_start" in first:
        out.denoise = first["decode_start"] - last["encode_end"]
    per_step = 2 if guidance else 1
    starts = forwards[::per_step]
    if starts:
        end = first.get("decode_start", marks[-1][1])
        bounds = [*starts, end]
        out.steps = [b - a for a, b in itertools.pairwise(bounds)]
    return out


def peak_memory(out: StageTimes) -> None:
    import torch

    if torch.cuda.is_available():
        out.peak_allocated_gb = round(torch.cuda.max_memory_allocated() / 1e9, 3)
        out.peak_reserved_gb = round(torch.cuda.max_memory_reserved() / 1e9, 3)


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------- models

PROBE_SHRINK = dict(
    num_layers=1,
    num_attention_heads=2,
    attention_head_dim=8,
    text_dim=16,
    freq_dim=16,
    ffn_dim=16,
    rope_max_seq_len=32,
)
"""A one-block Wan transformer of the same layout, for :func:`float32_parameters`."""


def parameter_pattern(name: str) -> str:
    """``blocks.7.norm2.weight`` → ``blocks.#.norm2.weight``: the same parameter in every block."""
    return re.sub(r"\.\d+\.", ".#.", name)


def float32_parameters(model_class: Any, config: dict[str, Any], dtype: Any) -> set[str]:
    """Patterns (:func:`parameter_pattern`) of the parameters diffusers' loader keeps in float32
    when it loads ``model_class`` in ``dtype``. Asked of the loader itself — ``save_pretrained``
    and ``from_pretrained(torch_dtype=dtype)``, both public — on a one-block copy of ``config``
    (milliseconds), so a random model built directly in ``dtype`` matches a real load."""
    probe = model_class(**{**config, **PROBE_SHRINK})
    with tempfile.TemporaryDirectory() as directory:
        probe.save_pretrained(directory)
        loaded = model_class.from_pretrained(directory, torch_dtype=dtype)
    import torch

    return {
        parameter_pattern(name)
        for name, param in loaded.named_parameters()
        if param.dtype == torch.float32
    }


def build_wan(
    transformer: dict[str, Any],
    text_encoder: dict[str, Any],
    vae: dict[str, Any],
    *,
    device: str = "cpu",
    dtype: Any = None,
    vae_dtype: Any = None,
    scheduler: dict[str, Any] | None = None,
):
    """A random-weight ``WanPipeline`` from component configs, created directly on ``device``.

    ``dtype`` is the transformer's and text encoder's (default float32), ``vae_dtype`` the VAE's;
    parameters diffusers keeps in float32 when loading in bf16 are upcast the same way, so the
    timings match a ``from_pretrained`` load.
    """
    import torch
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    dtype = dtype or torch.float32
    torch.manual_seed(0)
    tokenizer = build_tokenizer(512)
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            denoiser = WanTransformer3DModel(**transformer)
            encoder = UMT5EncoderModel(UMT5Config(**{"vocab_size": len(tokenizer), **text_encoder}))
        torch.set_default_dtype(vae_dtype or dtype)
        with torch.device(device):
            autoencoder = AutoencoderKLWan(**vae)
    finally:
        torch.set_default_dtype(previous)
    keep = float32_parameters(WanTransformer3DModel, transformer, dtype)
    for name, param in denoiser.named_parameters():
        if parameter_pattern(name) in keep:
            param.data = param.data.float()
    for module in (denoiser, encoder, autoencoder):
        module.eval().requires_grad_(False)
    return WanPipeline(
        tokenizer=tokenizer,
        text_encoder=encoder,
        transformer=denoiser,
        vae=autoencoder,
        scheduler=UniPCMultistepScheduler(
            **(
                scheduler
                or {
                    "prediction_type": "flow_prediction",
                    "use_flow_sigmas": True,
                    "flow_shift": 3.0,
                }
            )
        ),
    )


def build_tokenizer(model_max_length: int = 512):
    """A small T5 tokenizer trained here; only the padded sequence length matters for timing."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(TOKENIZER_CORPUS * 4, trainer=trainer)
    return T5TokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=model_max_length,
    )


# ---------------------------------------------------------------- options


def generation_options(
    *,
    steps: int,
    frames: int,
    width: int,
    height: int,
    guidance: float,
    seed: int,
    fps: int = 16,
    quality: str = "best",
):
    """Options of one benchmark call (``best``: the model as it is, like a bare diffusers call)."""
    from pipeline.options import GenerationOptions

    return GenerationOptions(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        steps=steps,
        seed=seed,
        frames=frames,
        fps=fps,
        width=width,
        height=height,
        guidance=guidance,
        quality=quality,
    )
