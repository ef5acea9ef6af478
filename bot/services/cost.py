"""The GPU cost of a job, in *ordinary videos*: what the daily budgets count.

A job's GPU work is its transformer passes × frames × pixels: the passes of its tier
(:func:`pipeline.quality.options_forwards`: MagCache-skipped steps and a distilled sampler's
single pass per step are counted as such, guidance doubles each step), over every frame and pixel
the model denoises. The unit is the loaded model's own default job in ``DEFAULT_QUALITY``: it
costs exactly 1.0, so "this request costs 3.2 ordinary videos" reads the same on any model.
Wan 2.1 1.3B, balanced: ``cat --steps 100 --size 1280x720`` is 51/25 passes × 2.3 × the pixels ≈
4.7; in best quality (100 passes vs the default job's 50) ≈ 9.2.

Everything here is pure. :class:`CostMeter` is built from what the bot knows of the model
(defaults, limits, ``TierSupport``) and the operator's settings; the request service fixes each
job's cost at admission and stores it with the job (``jobs.cost``), so a later change of the model
or the settings never re-prices the jobs of the day.

Why passes × frames × pixels and not measured seconds: the budget must be known before anything
runs, be the same for everyone, and never depend on which GPU is warm. Attention grows faster than
linearly with the frame and pixel count, so a large video is, if anything, slightly undercharged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.options import DEFAULT_QUALITY, GenerationDefaults, GenerationOptions, ModelLimits
from pipeline.quality import TierSupport, options_forwards, plan_tier

SHOW_COST_ABOVE = 1.5
"""Status messages mention a job's cost only above this many ordinary videos."""


def gpu_work(options: GenerationOptions, support: TierSupport) -> float:
    """Transformer passes × frames × pixels of a job with ``options`` on a model with ``support``."""
    return (
        float(options_forwards(options, support)) * options.frames * options.width * options.height
    )


def reference_work(
    defaults: GenerationDefaults,
    limits: ModelLimits,
    support: TierSupport,
    default_quality: str = DEFAULT_QUALITY,
) -> float:
    """The GPU work of one ordinary video: the model's default job in ``default_quality``."""
    plan = plan_tier(default_quality, defaults, limits, support)
    return float(plan.forwards) * defaults.frames * defaults.width * defaults.height


def job_cost(
    options: GenerationOptions,
    defaults: GenerationDefaults,
    limits: ModelLimits,
    support: TierSupport,
    default_quality: str = DEFAULT_QUALITY,
) -> float:
    """The cost of ``options`` in ordinary videos (the default job in ``default_quality`` = 1)."""
    return gpu_work(options, support) / reference_work(defaults, limits, support, default_quality)


@dataclass(frozen=True)
class CostMeter:
    """:func:`job_cost` for one loaded model and one ``DEFAULT_QUALITY``."""

    defaults: GenerationDefaults
    limits: ModelLimits
    support: TierSupport = field(default_factory=TierSupport)
    default_quality: str = DEFAULT_QUALITY

    def cost(self, options: GenerationOptions) -> float:
        return job_cost(options, self.defaults, self.limits, self.support, self.default_quality)


def shown_cost(cost: float | None) -> float | None:
    """``cost`` if a status message should mention it (above :data:`SHOW_COST_ABOVE`), else None."""
    return cost if cost is not None and cost > SHOW_COST_ABOVE else None
