"""Opt-in speed settings, each one diffusers call on the denoiser (transformer) or the pipeline.

Nothing here is on by default: regional ``torch.compile``, an attention backend, a cache that
skips work between similar steps (FirstBlockCache, MagCache) and a LoRA (e.g. a step-distilled
one, used with ``fast_steps``).
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


def load_lora(pipe: Any, path: str, scale: float) -> None:
    """Fuse a LoRA into the weights (no per-step adapter cost, compiles cleanly)."""
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("LORA_PATH needs the peft package: pip install peft") from exc
    pipe.load_lora_weights(path, adapter_name="fast")
    pipe.fuse_lora(adapter_names=["fast"], lora_scale=scale)
    pipe.unload_lora_weights()


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


def apply_speed(pipe: Any, settings: SpeedSettings, default_steps: int) -> list[str]:
    """Apply everything asked for after the pipeline is placed; returns what was applied."""
    import torch

    applied: list[str] = []
    model = denoiser(pipe)
    if settings.attention_backend:
        model.set_attention_backend(settings.attention_backend)
        applied.append(f"attention={settings.attention_backend}")
    if settings.cache:
        enable_cache(pipe, settings, default_steps)
        applied.append(f"cache={settings.cache}")
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
