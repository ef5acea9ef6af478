"""ETA from measured durations: honest numbers, not the model's nominal speed.

**What a job costs.** Jobs differ by their quality tier: a best job runs 100 transformer passes
(50 steps with guidance), a balanced one about half of them (MagCache skips steps), a fast one 4.
So a job's cost is its passes (:func:`pipeline.quality.options_forwards`, from its stored options
and the model's :class:`~pipeline.quality.TierSupport`), and its time is ``fixed + passes ×
per_pass`` (:class:`pipeline.quality.CostModel`: the fixed part is text encoding, VAE decode and
MP4 encoding, which every tier pays).

**What the bot learns** (:func:`fit_cost`, from the last jobs it generated). Both figures are
medians, so the odd outlier (a first run compiling kernels, a huge request) does not dominate
every user's estimate:

* by default one factor: the median of ``measured ÷ reference estimate`` over the recent jobs
  scales the reference cost model (``pipeline.quality.H200_WAN_1_3B_480P``, measured on an H200)
  as a whole. When every recent job had the same options this is exactly the median duration.
* once at least :data:`MIN_RUNS_PER_GROUP` recent jobs share each of two or more pass counts (say
  balanced and fast jobs), both parts are fitted: Theil–Sen (the median of the pairwise slopes) over
  the median duration of each pass count gives the seconds per pass, the median of what is left
  the fixed part. A GPU whose decode is relatively slower than its passes (offloading, a small
  card) gets its fast jobs right that way, which one factor cannot do.

**Nothing measured yet.** :class:`JobClock` then holds the reference cost model with
``measured=False``: /settings shows its times marked as a reference estimate, while status
messages and /queue show no ETA at all rather than another machine's figures (as before the
tiers).

A queued job's ETA is what is left of the running job, plus the estimate of every job ahead of it,
plus its own (:func:`cumulative_etas`); the running job's remainder comes from its own step rate
once it has one (``bot/notify/status.py``), else from its own estimate.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.options import GenerationOptions
from pipeline.quality import (
    H200_WAN_1_3B_480P,
    CostModel,
    TierPlan,
    TierSupport,
    denoise_forwards,
    options_forwards,
)
from pipeline.quality import estimate_seconds as cost_seconds

if TYPE_CHECKING:
    from bot.storage.jobs import JobStore

MIN_RUNS_PER_GROUP = 3
"""Recent jobs of one pass count needed before that count takes part in a two-part fit."""

REFERENCE = H200_WAN_1_3B_480P
"""What a job costs before this bot has measured any (Wan 2.1 1.3B, 832×480×81, one H200)."""


def estimate_seconds(durations: Iterable[float], default: float) -> float:
    """Expected seconds for one job: median of ``durations`` (non-positive ones ignored), else
    ``default`` when nothing has been measured yet."""
    values = [float(d) for d in durations if d is not None and d > 0]
    return statistics.median(values) if values else float(default)


def eta_for_position(position: int, per_job: float, running_remaining: float = 0.0) -> float:
    """Seconds until a queued job at ``position`` (1 = next) is generated when every job costs
    ``per_job``: what is left of the running job, the jobs ahead of it, and its own run."""
    return max(0.0, running_remaining) + max(0, position) * per_job


def cumulative_etas(costs: Iterable[float], running_remaining: float = 0.0) -> list[float]:
    """Seconds until each job of a queue (in claim order, each with its own cost) is generated:
    what is left of the running job, the costs of the jobs ahead, and its own."""
    return list(itertools.accumulate(costs, initial=max(0.0, running_remaining)))[1:]


def remaining_seconds(fraction: float, elapsed: float, per_job: float) -> float:
    """Seconds left for a running job: extrapolate from its own progress once it has some, else
    fall back to the typical duration."""
    if 0.05 <= fraction < 1 and elapsed > 0:
        return elapsed * (1 - fraction) / fraction
    return max(0.0, per_job - elapsed) if fraction < 1 else 0.0


# ---------------------------------------------------------------- cost per tier


def fit_cost(
    runs: Iterable[tuple[int, float]],
    reference: CostModel = REFERENCE,
    *,
    min_runs_per_group: int = MIN_RUNS_PER_GROUP,
) -> CostModel | None:
    """The cost model of this machine from ``(passes, seconds)`` of recent jobs (see the module
    docstring); None when no run has a positive duration."""
    pairs = [(int(f), float(s)) for f, s in runs if s is not None and s > 0 and f >= 0]
    if not pairs:
        return None
    groups: dict[int, list[float]] = {}
    for forwards, seconds in pairs:
        groups.setdefault(forwards, []).append(seconds)
    medians = sorted(
        (f, statistics.median(s)) for f, s in groups.items() if len(s) >= min_runs_per_group
    )
    if len(medians) >= 2:
        slope = statistics.median(
            (s2 - s1) / (f2 - f1) for (f1, s1), (f2, s2) in itertools.combinations(medians, 2)
        )
        if slope > 0:
            fixed = statistics.median(s - slope * f for f, s in medians)
            return CostModel(slope, max(0.0, fixed), reference="fitted to recent jobs")
    factor = statistics.median(s / cost_seconds(f, reference) for f, s in pairs)
    return CostModel(
        reference.seconds_per_forward * factor,
        reference.fixed_seconds * factor,
        reference=f"{reference.reference} × {factor:.3g} (recent jobs)",
    )


@dataclass(frozen=True)
class JobClock:
    """Typical seconds of a job on this bot: its transformer passes through a cost model."""

    tiers: TierSupport
    cost: CostModel = REFERENCE
    measured: bool = False
    """True when ``cost`` comes from this bot's own jobs; else it is the reference estimate."""

    @classmethod
    def learn(cls, runs: Iterable[tuple[float, GenerationOptions]], tiers: TierSupport) -> JobClock:
        """From ``(seconds, options)`` of recent generated jobs (``JobStore.recent_runs``)."""
        cost = fit_cost((options_forwards(options, tiers), seconds) for seconds, options in runs)
        if cost is None:
            return cls(tiers)
        return cls(tiers, cost, measured=True)

    def passes(self, options: GenerationOptions) -> int:
        return options_forwards(options, self.tiers)

    def seconds(self, options: GenerationOptions) -> float:
        """Typical seconds of a job with ``options``, from claim to generated."""
        return cost_seconds(self.passes(options), self.cost)

    def plan_seconds(self, plan: TierPlan) -> float:
        """Typical seconds of a job of a tier as :func:`pipeline.quality.plan_tier` plans it,
        with the MagCache schedule of this model (``plan`` may come from another support)."""
        forwards = denoise_forwards(plan.quality, plan.steps, plan.guidance, self.tiers)
        return cost_seconds(forwards, self.cost)

    def queue_etas(
        self, queued: Sequence[GenerationOptions], running_remaining: float = 0.0
    ) -> list[float]:
        """ETA of each queued job (in claim order): :func:`cumulative_etas` of their costs."""
        return cumulative_etas((self.seconds(o) for o in queued), running_remaining)


async def job_clock(jobs: JobStore, tiers: TierSupport) -> JobClock:
    """:meth:`JobClock.learn` from the recent generated jobs of ``jobs``."""
    return JobClock.learn(await jobs.recent_runs(), tiers)
