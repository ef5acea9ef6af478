"""Quality tiers: what ``best``, ``balanced`` and ``fast`` run, and what each costs.

* **best**: the model as published, with its own sampler, steps, guidance and negative prompt
  (Wan 2.1: 50 UniPC steps, guidance 5).
* **balanced** (the default): the same sampler with MagCache, a step cache that reuses the
  transformer's residual on steps where its magnitude barely changes. MagCache decides from a
  per-model list of *magnitude ratios*, not from the weights at run time, so the skipped steps
  are known in advance (:meth:`MagCacheData.schedule`). Wan 2.1 T2V 1.3B ships with the
  authors' published ratios (``pipeline/data/``); other models get theirs from
  ``python -m pipeline calibrate-cache``. A model without ratios runs balanced like best.
* **fast**: a step-distilled denoiser (``FAST_LORA`` fused into a copy of the transformer, or a
  ``FAST_TRANSFORMER``) with the sampler it was trained for: flow-matching Euler with its shift,
  4 steps, guidance 1 (one transformer call per step) and no negative prompt. Without distilled
  weights it falls back to half the steps of the base model (with MagCache where there is data).

Everything here is pure: the generator builds a :class:`TierSupport` at load and turns a tier
into option overrides with :func:`plan_tier`; the bot uses the same functions for /settings and
for its ETA (:func:`denoise_forwards`, :func:`estimate_seconds`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline.options import (
    DEFAULT_QUALITY,
    QUALITIES,
    GenerationDefaults,
    GenerationOptions,
    ModelLimits,
    OptionOverrides,
)

__all__ = [
    "DEFAULT_QUALITY",
    "QUALITIES",
    "CostModel",
    "MagCacheData",
    "TierPlan",
    "TierSupport",
    "builtin_cache_data",
    "denoise_forwards",
    "estimate_seconds",
    "load_cache_data",
    "plan_tier",
]

FAST_STEPS = 4
"""Steps of a distilled fast tier (lightx2v and CausVid distill Wan 2.1 to 4 steps or fewer)."""
FAST_SHIFT = 5.0
"""Flow shift of the fast tier's Euler sampler (lightx2v's 4-step Wan 2.1 models use 5)."""
DISTILLED_GUIDANCE = 1.0
"""Step-distilled models are trained without classifier-free guidance: 1 turns it off."""
FALLBACK_FAST_FACTOR = 0.5
"""Without distilled weights, the fast tier runs this share of the default steps."""
BUILTIN_DATA = "magcache_wan2.1_t2v_1.3b.json"

# Wan 2.1 T2V 1.3B's transformer, as its config.json states it; the built-in ratios fit it only.
WAN21_T2V_1_3B = {
    "num_layers": 30,
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "ffn_dim": 8960,
}


def classifier_free_guidance(guidance: float) -> bool:
    """Whether a step runs the transformer twice (conditional and unconditional), as diffusers'
    video pipelines decide it (``guidance_scale > 1``)."""
    return guidance > 1.0


# ---------------------------------------------------------------- MagCache data


@dataclass(frozen=True)
class MagCacheData:
    """One model's MagCache ratios and the settings to run them with."""

    mag_ratios: tuple[float, ...]
    threshold: float = 0.12
    max_skip_steps: int = 2
    retention_ratio: float = 0.2
    source: str = ""

    def ratios_for(self, steps: int) -> list[float]:
        """The ratios stretched or shrunk to ``steps`` (nearest neighbour, as diffusers does)."""
        src = self.mag_ratios
        if steps == len(src):
            return list(src)
        if steps == 1:
            return [src[-1]]
        scale = (len(src) - 1) / (steps - 1)
        return [src[round(i * scale)] for i in range(steps)]

    def schedule(self, steps: int) -> tuple[bool, ...]:
        """Which of ``steps`` steps MagCache computes (``True``) or skips: the decision rule of
        ``diffusers.hooks.mag_cache.MagCacheHeadHook``, replayed on the ratios alone."""
        ratios = self.ratios_for(steps)
        retention = int(self.retention_ratio * steps + 0.5)
        acc_ratio, acc_steps, acc_err = 1.0, 0, 0.0
        computed: list[bool] = []
        for i, ratio in enumerate(ratios):
            compute = True
            if i >= retention:
                acc_ratio *= ratio
                acc_steps += 1
                acc_err += abs(1.0 - acc_ratio)
                if computed and acc_err <= self.threshold and acc_steps <= self.max_skip_steps:
                    compute = False
                else:
                    acc_ratio, acc_steps, acc_err = 1.0, 0, 0.0
            computed.append(compute)
        return tuple(computed)

    def skipped_share(self, steps: int) -> float:
        plan = self.schedule(steps)
        return plan.count(False) / len(plan) if plan else 0.0

    def config(self, steps: int) -> Any:
        """diffusers' ``MagCacheConfig`` for a run of ``steps`` steps."""
        from diffusers import MagCacheConfig

        return MagCacheConfig(
            threshold=self.threshold,
            max_skip_steps=self.max_skip_steps,
            retention_ratio=self.retention_ratio,
            num_inference_steps=steps,
            mag_ratios=list(self.mag_ratios),
        )

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "source": self.source,
            "threshold": self.threshold,
            "max_skip_steps": self.max_skip_steps,
            "retention_ratio": self.retention_ratio,
            "num_inference_steps": len(self.mag_ratios),
            "mag_ratios": list(self.mag_ratios),
        }


def load_cache_data(path: str | Path | None = None) -> MagCacheData:
    """A MagCache data file (as ``calibrate-cache`` writes it); ``None`` = the built-in Wan 2.1
    T2V 1.3B data. Raises ``ValueError`` naming the file when it is unusable."""
    try:
        if path is None:
            text = resources.files("pipeline.data").joinpath(BUILTIN_DATA).read_text("utf-8")
            where = f"built-in {BUILTIN_DATA}"
        else:
            text = Path(path).expanduser().read_text("utf-8")
            where = str(path)
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read MagCache data {path}: {exc}") from exc
    if isinstance(data, list):  # a bare list of ratios, as diffusers prints them
        data = {"mag_ratios": data}
    ratios = data.get("mag_ratios") if isinstance(data, dict) else None
    if not ratios or not all(isinstance(r, (int, float)) and r > 0 for r in ratios):
        raise ValueError(f"MagCache data {where} has no list of positive 'mag_ratios'")
    return MagCacheData(
        mag_ratios=tuple(float(r) for r in ratios),
        threshold=float(data.get("threshold", MagCacheData.threshold)),
        max_skip_steps=int(data.get("max_skip_steps", MagCacheData.max_skip_steps)),
        retention_ratio=float(data.get("retention_ratio", MagCacheData.retention_ratio)),
        source=str(data.get("source", where)),
    )


def builtin_cache_data(transformer: Any) -> MagCacheData | None:
    """The shipped ratios when ``transformer`` is Wan 2.1 T2V 1.3B (by its config), else None."""
    config = getattr(transformer, "config", None)
    if type(transformer).__name__ != "WanTransformer3DModel" or config is None:
        return None
    if any(getattr(config, key, None) != value for key, value in WAN21_T2V_1_3B.items()):
        return None
    if getattr(config, "image_dim", None) is not None:  # the image-to-video variant
        return None
    return load_cache_data(None)


# ---------------------------------------------------------------- tiers


@dataclass(frozen=True)
class TierSupport:
    """What the loaded model offers the tiers: distilled fast weights, MagCache data."""

    distilled: bool = False
    cache: MagCacheData | None = None
    fast_steps: int | None = None
    """Steps of the fast tier (``FAST_STEPS``): default 4 distilled, else half the default."""

    def uses_cache(self, quality: str) -> bool:
        """Whether jobs of ``quality`` run with MagCache on this model."""
        if self.cache is None:
            return False
        return quality == "balanced" or (quality == "fast" and not self.distilled)

    def uses_distilled(self, quality: str) -> bool:
        return quality == "fast" and self.distilled


@dataclass(frozen=True)
class TierPlan:
    """What a job of one tier runs where the request names nothing else."""

    quality: str
    steps: int
    guidance: float
    negative_prompt: str
    cache: bool
    distilled: bool
    forwards: int
    """Transformer calls of the denoising loop (skipped steps and guidance counted)."""
    note: str = ""

    def overrides(self) -> OptionOverrides:
        """The tier as option overrides; merge a request's overrides over these."""
        return OptionOverrides(
            quality=self.quality,
            steps=self.steps,
            guidance=self.guidance,
            negative_prompt=self.negative_prompt,
        )


def plan_tier(
    quality: str, defaults: GenerationDefaults, limits: ModelLimits, support: TierSupport
) -> TierPlan:
    """The steps, guidance and negative prompt of ``quality`` on a model with ``support``."""
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r} (allowed: {', '.join(QUALITIES)})")
    steps, guidance, note = defaults.steps, defaults.guidance, ""
    negative = defaults.negative_prompt
    if quality == "fast":
        if support.distilled:
            steps = support.fast_steps or FAST_STEPS
            guidance, negative = DISTILLED_GUIDANCE, ""
        else:
            steps = support.fast_steps or round(defaults.steps * FALLBACK_FAST_FACTOR)
            note = "no FAST_LORA or FAST_TRANSFORMER: fewer steps of the base model"
    elif quality == "balanced" and support.cache is None:
        note = "no MagCache data for this model: balanced runs like best"
    steps = max(1, min(limits.max_steps, steps))
    return TierPlan(
        quality=quality,
        steps=steps,
        guidance=guidance,
        negative_prompt=negative,
        cache=support.uses_cache(quality),
        distilled=support.uses_distilled(quality),
        forwards=denoise_forwards(quality, steps, guidance, support),
        note=note,
    )


def denoise_forwards(quality: str, steps: int, guidance: float, support: TierSupport) -> int:
    """Transformer calls a job makes while denoising: the unit of :func:`estimate_seconds`."""
    computed = steps
    if support.uses_cache(quality):
        assert support.cache is not None
        computed = sum(support.cache.schedule(steps))
    return computed * (2 if classifier_free_guidance(guidance) else 1)


def options_forwards(options: GenerationOptions, support: TierSupport) -> int:
    """:func:`denoise_forwards` of resolved options (a request may name its own steps)."""
    return denoise_forwards(options.quality, options.steps, options.guidance, support)


# ---------------------------------------------------------------- time


@dataclass(frozen=True)
class CostModel:
    """Seconds of one transformer call and of the rest of a clip (text encoding, VAE decode,
    frame conversion) at one size on one machine."""

    seconds_per_forward: float
    fixed_seconds: float
    reference: str = ""


H200_WAN_1_3B_480P = CostModel(
    seconds_per_forward=0.62,
    fixed_seconds=3.2,
    reference=(
        "Wan 2.1 T2V 1.3B, 832x480x81, bf16, resident, one H200, no compile "
        "(docs/performance.md: 1.24 s per guided step, 0.1 s text encoding, 2.8 s decode)"
    ),
)
"""The measured reference; a bot scales it with its own recent jobs."""


def estimate_seconds(forwards: int, cost: CostModel = H200_WAN_1_3B_480P) -> float:
    """Typical seconds of a clip whose denoising makes ``forwards`` transformer calls."""
    return cost.fixed_seconds + forwards * cost.seconds_per_forward
