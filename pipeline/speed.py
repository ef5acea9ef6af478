"""Opt-in speed settings, each one diffusers call on the denoiser (transformer) or the pipeline.

Nothing here is on by default. Two kinds:

* output-neutral, applied once at load and used by every job: regional ``torch.compile`` and an
  attention backend (the memory mode lives in :mod:`pipeline.memory`);
* output-changing, used only by jobs with ``GenerationOptions.fast``: a cache that skips work
  between similar steps (FirstBlockCache, MagCache) and a LoRA (e.g. a step-distilled one).
  The LoRA is loaded as the adapter ``"fast"`` (not fused) and the cache is not enabled at load:
  :class:`FastSwitch` turns both on or off per job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHES = ("first_block", "mag")


@dataclass(frozen=True)
class SpeedSettings:
    """``cache`` is ``first_block`` or ``mag:<ratios.json>`` (MagCache needs per-model ratios)."""

    compile: bool = False
    attention_backend: str | None = None
    cache: str | None = None
    cache_threshold: float | None = None
    lora_path: str | None = None
    lora_scale: float = 1.0


def denoiser(pipe: Any) -> Any:
    """The network run at every step: ``transformer`` in today's video pipelines, else ``unet``."""
    return getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)


LORA_ADAPTER = "fast"


def load_lora(pipe: Any, path: str, scale: float) -> None:
    """Load a LoRA as the adapter ``"fast"``, switched off: only fast jobs turn it on.

    Not fused: fusing would change every job's output. The unfused adapter costs a little per
    step (two small matmuls per adapted layer), and switching it recompiles a compiled model
    once per state (both states then stay in the compile cache).
    """
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("LORA_PATH needs the peft package: pip install peft") from exc
    pipe.load_lora_weights(path, adapter_name=LORA_ADAPTER)
    pipe.set_adapters([LORA_ADAPTER], [scale])
    pipe.disable_lora()


def cache_config(spec: str, threshold: float | None, steps: int) -> Any:
    """A diffusers cache config from ``first_block`` or ``mag:<ratios.json>``."""
    from diffusers import FirstBlockCacheConfig, MagCacheConfig

    name, _, arg = spec.partition(":")
    if name == "first_block":
        return FirstBlockCacheConfig(threshold=0.05 if threshold is None else threshold)
    if name == "mag":
        if not arg:
            raise ValueError(
                "MagCache needs the model's magnitude ratios: cache='mag:/path/ratios.json' "
                "(calibrate them once with diffusers' MagCacheConfig(calibrate=True))"
            )
        ratios = json.loads(Path(arg).read_text(encoding="utf-8"))
        return MagCacheConfig(
            threshold=0.06 if threshold is None else threshold,
            mag_ratios=ratios,
            num_inference_steps=steps,
        )
    raise ValueError(f"unknown cache {spec!r} (allowed: first_block, mag:<ratios.json>)")


def enable_cache(pipe: Any, settings: SpeedSettings, steps: int) -> None:
    """(Re)enable the cache; MagCache's ratios depend on the step count, so this runs per count."""
    if not settings.cache:
        return
    model = denoiser(pipe)
    if getattr(model, "is_cache_enabled", False):
        model.disable_cache()
    model.enable_cache(cache_config(settings.cache, settings.cache_threshold, steps))


def disable_cache(pipe: Any) -> None:
    model = denoiser(pipe)
    if getattr(model, "is_cache_enabled", False):
        model.disable_cache()


class FastSwitch:
    """Turns the output-changing speed settings (LoRA adapter, cache) on for fast jobs and off
    for the others, calling diffusers only when a state changes (the generator's lock makes the
    calls one job at a time)."""

    def __init__(self, pipe: Any, settings: SpeedSettings) -> None:
        self.pipe = pipe
        self.settings = settings
        self.lora_on = False  # load_lora leaves the adapter disabled
        self.cache_steps: int | None = None  # the step count the cache is enabled for; None = off

    @property
    def available(self) -> bool:
        """Whether a fast job differs from another one here at all."""
        return bool(self.settings.lora_path or self.settings.cache)

    def applied(self, fast: bool) -> list[str]:
        """What a job with this ``fast`` flag runs with (for logs and benchmarks)."""
        if not fast:
            return []
        return [
            *([f"lora={LORA_ADAPTER}"] if self.settings.lora_path else []),
            *([f"cache={self.settings.cache}"] if self.settings.cache else []),
        ]

    def prepare(self, fast: bool, steps: int) -> None:
        """Put the pipeline into the state a job with ``fast`` and ``steps`` needs."""
        if self.settings.lora_path and fast != self.lora_on:
            if fast:
                self.pipe.enable_lora()
            else:
                self.pipe.disable_lora()
            self.lora_on = fast
        if self.settings.cache:
            if fast:
                # FirstBlockCache does not depend on the step count; MagCache's ratios do.
                stale = self.cache_steps is None or (
                    self.settings.cache.startswith("mag") and self.cache_steps != steps
                )
                if stale:
                    enable_cache(self.pipe, self.settings, steps)
                    self.cache_steps = steps
            elif self.cache_steps is not None:
                disable_cache(self.pipe)
                self.cache_steps = None


def apply_speed(pipe: Any, settings: SpeedSettings, default_steps: int) -> list[str]:
    """Apply the output-neutral settings after the pipeline is placed, and check the cache
    settings once (they are enabled per fast job); returns what was applied."""
    import torch

    applied: list[str] = []
    model = denoiser(pipe)
    if settings.attention_backend:
        model.set_attention_backend(settings.attention_backend)
        applied.append(f"attention={settings.attention_backend}")
    if settings.cache:
        # A bad name or a missing ratios file fails at start, not in the first fast job.
        cache_config(settings.cache, settings.cache_threshold, default_steps)
        if not hasattr(model, "enable_cache"):
            raise ValueError(f"{type(model).__name__} does not support a cache")
        applied.append(f"cache={settings.cache} (fast jobs)")
    if settings.lora_path:
        applied.append(f"lora={LORA_ADAPTER} (fast jobs)")
    if settings.compile:
        # Cache hooks call torch.compiler.disable()d code inside the blocks: a full graph is
        # impossible with a cache (seen on an H200 with FirstBlockCache), so allow graph breaks.
        fullgraph = not settings.cache
        if getattr(model, "_repeated_blocks", None):
            model.compile_repeated_blocks(fullgraph=fullgraph)  # one block compiled, reused by all
            applied.append("compile=regional")
        else:
            model.compile()  # nn.Module.compile: in place, whole model
            applied.append("compile=full")
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 32)
    return applied
