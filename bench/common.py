"""Shared helpers of the benchmarks: timing marks, stage instrumentation, JSON output, project access.

Benchmarks print their figures and write them to JSON; they are measurements, not timed tests.
Everything here works on CPU and on CUDA: on CUDA the stage marks are CUDA events (no extra
synchronisation inside the run), on CPU they are ``time.perf_counter`` readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repository root
    sys.path.insert(0, str(ROOT))

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


# ---------------------------------------------------------------- small statistics


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str = ".2f", empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


# ---------------------------------------------------------------- machine and output


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    for name in ("diffusers", "transformers", "accelerate"):
        try:
            info[name] = __import__(name).__version__
        except Exception:  # a missing package is a fact to report, not a failure
            info[name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gb"] = round(props.total_memory / 1e9, 1)
        info["cuda"] = torch.version.cuda
    else:
        info["gpu"] = None
    return info


class JsonReport:
    """A dict written atomically to ``path`` after every change, so a killed run keeps its figures."""

    def __init__(self, path: Path | None, **header: Any):
        self.path = path
        self.data: dict[str, Any] = dict(header)
        self.flush()

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.flush()

    def append(self, key: str, value: Any) -> None:
        self.data.setdefault(key, []).append(value)
        self.flush()

    def flush(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def log(*parts: Any) -> None:
    print(*parts, flush=True)


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
    keep = denoiser._keep_in_fp32_modules or []
    for name, param in denoiser.named_parameters():
        if any(part in keep for part in name.split(".")):
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


# ---------------------------------------------------------------- the project under test


@dataclasses.dataclass
class Project:
    """The project's generator API, or why it cannot be used."""

    generator: Any = None  # the pipeline.generator module
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.generator is not None

    def config(self, **values: Any) -> Any:
        """A ``GeneratorConfig`` with the fields it has (unknown ones are dropped and reported)."""
        cls = self.generator.GeneratorConfig
        names = {f.name for f in dataclasses.fields(cls)}
        dropped = sorted(set(values) - names)
        if dropped:
            log(f"  note: GeneratorConfig has no field(s) {dropped}; left out")
        return cls(**{k: v for k, v in values.items() if k in names})

    def has_from_pipe(self) -> bool:
        return self.available and callable(
            getattr(self.generator.VideoGenerator, "from_pipe", None)
        )

    def can_wrap(self) -> bool:
        return self.available

    def wrap(self, pipe: Any, config: Any) -> tuple[Any, str]:
        """The project around an already built pipeline, and how it was wrapped.

        ``VideoGenerator.from_pipe(pipe, config)`` when the project has it; else the same steps as
        ``VideoGenerator.load`` after its ``from_pretrained``, spelled out here with the project's own
        functions (memory mode, speed settings, defaults), so the bench still measures the project.
        """
        vg = self.generator.VideoGenerator
        if self.has_from_pipe():
            return vg.from_pipe(pipe, config), "project (VideoGenerator.from_pipe)"
        return _emulated_from_pipe(self.generator, pipe, config), (
            "project (from_pipe missing: VideoGenerator built from the project's memory/speed functions)"
        )

    def load(self, config: Any) -> Any:
        return self.generator.VideoGenerator.load(config)


def _emulated_from_pipe(g: Any, pipe: Any, config: Any) -> Any:
    """What ``VideoGenerator.load`` does after loading, applied to ``pipe`` (see ``Project.wrap``)."""
    import torch

    from pipeline import memory, presets, speed

    device = g.resolve_device(config.device)
    dtype = g.resolve_dtype(config.dtype, device)
    preset = presets.preset_for(type(pipe).__name__)
    pipe.set_progress_bar_config(disable=True)
    defaults, limits = presets.defaults_and_limits(pipe, preset)
    mode = config.memory_mode
    tiling = bool(config.vae_tiling)
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        sizes = memory.component_bytes(pipe, torch.finfo(dtype).bits // 8)
        if mode == "auto":
            mode = memory.choose_memory_mode(free, sizes)
        if config.vae_tiling is None:
            tiling = memory.needs_vae_tiling(mode, free, sizes)
    else:
        mode = "resident"
    memory.apply_memory_mode(pipe, mode, device, vae_tiling=tiling)
    gen = g.VideoGenerator(pipe, config, preset, defaults, limits, device, mode)
    gen.speed_applied = speed.apply_speed(pipe, config.speed, defaults.steps)
    gen._cache_steps = defaults.steps
    return gen


def load_project() -> Project:
    try:
        import pipeline.generator as generator
    except Exception as exc:  # not written yet, or broken: the bench still measures diffusers
        return Project(error=f"pipeline.generator is not importable ({one_line(exc)})")
    missing = [n for n in ("GeneratorConfig", "VideoGenerator") if not hasattr(generator, n)]
    if missing:
        return Project(error=f"pipeline.generator lacks {missing}")
    return Project(generator=generator)


def pipe_of(generator: Any) -> Any:
    """The diffusers pipeline inside a ``VideoGenerator`` (for stage timing), if it exposes one."""
    for name in ("pipe", "pipeline", "_pipe", "_pipeline"):
        pipe = getattr(generator, name, None)
        if pipe is not None and hasattr(pipe, "encode_prompt"):
            return pipe
    return None


def generation_options(
    *,
    steps: int,
    frames: int,
    width: int,
    height: int,
    guidance: float,
    seed: int,
    fps: int = 16,
    fast: bool = False,
):
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
        fast=fast,
    )


# ---------------------------------------------------------------- bot benchmarks (no torch)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def spread(values: list[float]) -> dict[str, float | None]:
    """Median, min and max of repeated figures: the noise between repeats, in one place."""
    data = [v for v in values if v is not None]
    return {
        "median": median(data),
        "min": min(data) if data else None,
        "max": max(data) if data else None,
        "n": len(data),
    }


def light_machine_info() -> dict[str, Any]:
    """``machine_info`` without importing torch (the bot benchmarks never load it)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    with contextlib.suppress(Exception):
        info["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    with contextlib.suppress(Exception):
        info["loadavg_at_start"] = [round(x, 2) for x in os.getloadavg()]
    for name in ("aiogram", "aiohttp", "numpy"):
        try:
            info[name] = __import__(name).__version__
        except Exception:
            info[name] = None
    return info


class LoopLagProbe:
    """Event-loop lag inside the bot's own process: a task that sleeps ``interval`` seconds over
    and over and records how late each wake-up came (the overshoot). Anything that holds the
    loop (a blocking call, a long callback, a thread that keeps the GIL) shows up here."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: Any = None
        self.recording = False

    def start(self) -> None:
        import asyncio

        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-probe")

    async def _run(self) -> None:
        import asyncio

        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            if self.recording:
                self.samples.append(time.perf_counter() - start - self.interval)

    async def stop(self) -> None:
        import asyncio

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, Any]:
        ms = [s * 1000 for s in self.samples]
        return {
            "interval_ms": self.interval * 1000,
            "samples": len(ms),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else None,
        }


def burn(seconds: float, gil_share: float, chunk: float = 0.002) -> None:
    """Keep one core busy for ``seconds`` the way a model's worker thread does.

    Alternates, per ``chunk`` seconds, between numpy work that runs with the GIL released (as
    torch kernels and large numpy ufuncs do) for ``1 - gil_share`` of the chunk and pure Python
    that holds the GIL (as the Python glue of a pipeline — module calls, hooks, schedulers, CUDA
    kernel launches — does) for ``gil_share`` of it. ``gil_share=1`` is the worst case: a thread
    that wants the GIL all the time, released only at the interpreter's switch interval.
    """
    import numpy as np

    array = np.linspace(0.0, 1.0, 65536, dtype=np.float32)
    out = np.empty_like(array)
    end = time.perf_counter() + seconds
    held = chunk * gil_share
    released = chunk - held
    while True:
        now = time.perf_counter()
        if now >= end:
            return
        stop = min(now + released, end)
        while time.perf_counter() < stop:  # ~0.2 ms per ufunc, GIL released inside
            np.sin(array, out=out)
            np.multiply(out, 1.0001, out=out)
        stop = min(time.perf_counter() + held, end)
        x = 0
        while time.perf_counter() < stop:  # GIL held
            for i in range(200):
                x += i * i


class BurnBackend:
    """A ``VideoBackend`` whose run costs ``steps × step_seconds`` of real CPU in the worker
    thread (see :func:`burn`), reports progress like the pipeline (translate, one report per
    denoising step, encode), honours the cancel event at each step, and writes a real small MP4
    with the project's ``export_mp4``. ``runs`` records ``(start, end)`` monotonic times of
    every completed run (``time.monotonic`` is system-wide on Linux: comparable across
    processes)."""

    reads_russian = False

    def __init__(self, step_seconds: float = 0.1, gil_share: float = 0.5) -> None:
        from tests.fake_backend import FAKE_DEFAULTS, FAKE_LIMITS

        self.defaults = FAKE_DEFAULTS
        self.limits = FAKE_LIMITS
        self.step_seconds = step_seconds
        self.gil_share = gil_share
        self.runs: list[tuple[float, float]] = []
        self.steps_done = 0
        self.started_runs = 0

    def run(
        self,
        options: Any,
        output: Path,
        *,
        translate: bool = True,
        on_progress: Any = None,
        cancel: Any = None,
        max_bytes: int | None = None,
        prompt_en: str | None = None,
    ) -> Any:
        from pipeline.export import export_mp4
        from pipeline.progress import GenerationCancelled, Progress, Stage
        from tests.fake_backend import FakeRunResult, frames_for

        start = time.monotonic()
        self.started_runs += 1

        def report(stage: Any, step: int, total: int, detail: str | None = None) -> None:
            if on_progress is not None:
                on_progress(Progress(stage, step, total, time.monotonic() - start, detail))

        prompt_en = prompt_en or options.prompt
        report(Stage.TRANSLATE, 1, 1, prompt_en)
        for step in range(1, options.steps + 1):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("cancelled")
            burn(self.step_seconds, self.gil_share)
            self.steps_done += 1
            report(Stage.DENOISE, step, options.steps)
        report(Stage.ENCODE_VIDEO, 0, 1)
        video = export_mp4(frames_for(options), output, options.fps, max_bytes=max_bytes)
        report(Stage.ENCODE_VIDEO, 1, 1)
        end = time.monotonic()
        self.runs.append((start, end))
        return FakeRunResult(video, prompt_en, options.seed, {"total": end - start})

    def device_info(self) -> str:
        return f"CPU (bench BurnBackend, gil_share={self.gil_share})"

    def free_memory(self) -> None:
        pass


# ---------------------------------------------------------------- the fake Bot API in its own process

_SERVE = "import bench.common as c; c.serve_fake_telegram()"


def serve_fake_telegram() -> None:
    """Child process: ``tests.fake_telegram.FakeTelegram`` on 127.0.0.1, driven by JSON lines on
    stdin (one answer line on stdout per request). Own process, own event loop and own GIL, as
    Telegram's servers would be: its work never shows up as the bot's loop lag."""
    import asyncio

    asyncio.run(_serve())


async def _serve() -> None:
    import asyncio

    from tests.fake_telegram import FakeTelegram

    class RecordingTelegram(FakeTelegram):
        """Also records when each update left in a getUpdates answer and when calls were answered."""

        def __init__(self) -> None:
            super().__init__()
            self.delivered: dict[int, float] = {}
            self.pushed: list[dict[str, Any]] = []

        async def _m_getUpdates(self, call: Any) -> Any:
            result = await super()._m_getUpdates(call)
            now = time.monotonic()
            for update in result:
                self.delivered.setdefault(update["update_id"], now)
            return result

    tg = RecordingTelegram()
    await tg.start()

    def answered(call: Any) -> None:  # hooks run after an injected delay, just before the answer
        call.answered = time.monotonic()

    for method in ("sendMessage", "sendVideo", "editMessageText"):
        tg.hooks[method] = answered

    def push(user_id: int, text: str, offset: float = 0.0) -> dict[str, Any]:
        message = tg.push_message(text, user_id=user_id)
        record = {
            "offset": offset,
            "user_id": user_id,
            "chat_id": user_id,
            "text": text,
            "message_id": message["message_id"],
            "update_id": tg._updates[-1]["update_id"] if tg._updates else None,
            "pushed": time.monotonic(),
        }
        tg.pushed.append(record)
        return record

    async def push_many(schedule: list[list[Any]]) -> list[dict[str, Any]]:
        t0 = time.monotonic()
        records = []
        for offset, user_id, text in sorted(schedule, key=lambda s: s[0]):
            delay = t0 + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            records.append(push(int(user_id), str(text), float(offset)))
        return records

    def done(method: str) -> int:
        """Calls of ``method`` answered successfully (a call is recorded, with status 200, on
        arrival: an injected delay is still running until the hook marks it answered)."""
        calls = tg.calls_of(method, ok=True)
        if method in tg.hooks:
            calls = [c for c in calls if getattr(c, "answered", None) is not None]
        return len(calls)

    def summary(call: Any) -> dict[str, Any]:
        reply = call.params.get("reply_parameters")
        return {
            "method": call.method,
            "chat_id": call.chat_id,
            "time": call.time,
            "answered": getattr(call, "answered", None),
            "status": call.status,
            "reply_to": reply.get("message_id") if isinstance(reply, dict) else None,
        }

    def out(data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    out({"port": tg.port, "token": tg.token})
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        op = request.pop("op")
        try:
            if op == "stop":
                out({"ok": True})
                break
            if op == "push":
                out(push(int(request["user_id"]), str(request["text"])))
            elif op == "push_many":
                out({"pushed": await push_many(request["schedule"])})
            elif op == "slow":
                tg.slow(request["method"], float(request["seconds"]))
                out({"ok": True})
            elif op == "wait":  # until `count` calls of `method` were answered, or `timeout`
                method, count = request["method"], int(request["count"])
                with contextlib.suppress(TimeoutError):
                    await tg.wait_for(
                        lambda m=method, n=count: done(m) >= n,
                        timeout=float(request.get("timeout", 30)),
                        interval=0.01,
                    )
                out({"count": done(method)})
            elif op == "count":
                out({"count": done(request["method"])})
            elif op == "report":
                out(
                    {
                        "calls": [summary(c) for c in tg.calls],
                        "delivered": {str(k): v for k, v in tg.delivered.items()},
                        "pushed": tg.pushed,
                    }
                )
            else:
                out({"error": f"unknown op {op}"})
        except Exception as exc:  # answer every request, or the parent waits forever
            out({"error": one_line(exc)})
    await tg.stop()


class FakeTelegramProcess:
    """The parent's handle on :func:`serve_fake_telegram` (``async with``); quacks enough like
    ``FakeTelegram`` (``token``, ``base_url``) for ``tests.fake_telegram.bot_settings``."""

    def __init__(self) -> None:
        self.proc: Any = None
        self.port: int | None = None
        self.token: str = ""
        self._lock: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeTelegramProcess:
        import asyncio

        self._lock = asyncio.Lock()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVE,
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,  # a report line holds every call: far over the 64 kB default
        )
        hello = await self._read(timeout=60)
        self.port, self.token = hello["port"], hello["token"]
        return self

    async def _read(self, timeout: float) -> dict[str, Any]:
        import asyncio

        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
        if not line:
            raise RuntimeError("the fake Bot API process ended")
        return json.loads(line)

    async def request(self, op: str, timeout: float = 120, **params: Any) -> dict[str, Any]:
        async with self._lock:
            self.proc.stdin.write((json.dumps({"op": op, **params}) + "\n").encode())
            await self.proc.stdin.drain()
            answer = await self._read(timeout)
        if "error" in answer:
            raise RuntimeError(f"fake Bot API: {answer['error']}")
        return answer

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self.request("stop", timeout=5)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def bot_log_to(path: Path, level: str = "INFO") -> None:
    """The bot's logging as in production (INFO, aiogram logs every update), into a file, so the
    benchmark's own output stays readable and the logging cost is still paid."""
    import logging

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` (a flag a worker thread sets) until it holds or ``timeout`` passes."""
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


@contextlib.asynccontextmanager
async def bench_bot(tg: Any, backend: Any, data_dir: str, **overrides: Any):
    """The real bot (``build_app``, what ``python -m bot`` runs) polling ``tg`` with production
    cadences and INFO logging to a file, started and stopped the way SIGTERM stops it."""
    from bot.__main__ import build_app
    from tests.fake_telegram import bot_settings

    bot_log_to(Path(data_dir) / "bot.log")
    settings = bot_settings(
        SimpleNamespace(token=tg.token, base_url=tg.base_url),
        data_dir,
        # production cadences, not the tests' fast ones
        status_min_interval=3.0,
        queue_refresh_interval=10.0,
        polling_timeout=10,
        log_level="INFO",
        **overrides,
    )
    app = await build_app(settings, backend)
    task = asyncio.create_task(app.run(handle_signals=False))
    try:
        await asyncio.wait_for(app.started.wait(), timeout=30)
        yield app
    finally:
        with contextlib.suppress(RuntimeError):
            await app.stop()
        await asyncio.wait_for(task, timeout=60)
