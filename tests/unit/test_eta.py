"""bot/eta.py: a job's typical time from its tier's transformer passes, learned from recent jobs."""

from __future__ import annotations

import pytest

from bot.eta import REFERENCE, JobClock, cumulative_etas, eta_for_position, fit_cost
from pipeline.options import GenerationOptions
from pipeline.quality import CostModel, TierSupport, load_cache_data, plan_tier
from tests.fakes.backend import WAN_DEFAULTS, WAN_LIMITS

WAN_MAGCACHE = TierSupport(cache=load_cache_data())  # what the generator builds for Wan 2.1 1.3B
WAN_DISTILLED = TierSupport(distilled=True, cache=load_cache_data(), fast_steps=4)


def job(quality: str, support: TierSupport = WAN_DISTILLED) -> GenerationOptions:
    """The options a default Wan 2.1 1.3B job of ``quality`` runs with (as the bot stores them)."""
    plan = plan_tier(quality, WAN_DEFAULTS, WAN_LIMITS, support)
    return GenerationOptions(
        prompt="кот",
        negative_prompt=plan.negative_prompt,
        steps=plan.steps,
        seed=1,
        frames=WAN_DEFAULTS.frames,
        fps=WAN_DEFAULTS.fps,
        width=WAN_DEFAULTS.width,
        height=WAN_DEFAULTS.height,
        guidance=plan.guidance,
        quality=quality,
    )


BEST, BALANCED, FAST = job("best"), job("balanced"), job("fast")


def test_passes_follow_the_tier() -> None:
    clock = JobClock(WAN_DISTILLED)
    assert (clock.passes(BEST), clock.passes(BALANCED), clock.passes(FAST)) == (100, 50, 4)
    # A model without MagCache data runs balanced like best.
    assert JobClock(TierSupport()).passes(job("balanced", TierSupport())) == 100


def test_nothing_measured_is_the_reference_estimate_and_says_so() -> None:
    clock = JobClock.learn([], WAN_MAGCACHE)
    assert not clock.measured and clock.cost == REFERENCE
    assert clock.seconds(BEST) == pytest.approx(REFERENCE.fixed_seconds + 100 * 0.62)
    assert fit_cost([]) is None
    assert fit_cost([(100, 0.0), (100, -1.0)]) is None  # nothing positive was measured


def test_balanced_costs_about_half_of_best_with_the_shipped_magcache_data() -> None:
    """Wan 2.1 T2V 1.3B's published ratios compute 25 of 50 steps; the fixed part is paid by both."""
    clock = JobClock(WAN_MAGCACHE)
    ratio = clock.seconds(BALANCED) / clock.seconds(BEST)
    assert 0.45 < ratio < 0.6
    # Learned from balanced jobs only, a best job is still priced at its own passes.
    learned = JobClock.learn([(30.0, BALANCED)] * 3, WAN_MAGCACHE)
    assert learned.measured
    assert learned.seconds(BALANCED) == pytest.approx(30.0)
    assert learned.seconds(BEST) == pytest.approx(30.0 / ratio)


def test_same_options_give_exactly_the_median_duration() -> None:
    """The one-factor fit reduces to the old estimate (median of durations) for uniform jobs."""
    clock = JobClock.learn([(s, BEST) for s in (50.0, 70.0, 60.0, 300.0, 55.0)], WAN_DISTILLED)
    assert clock.seconds(BEST) == pytest.approx(60.0)  # the compiling outlier does not count


def test_a_fast_job_behind_two_best_jobs_waits_about_two_best_jobs() -> None:
    clock = JobClock.learn([(60.0, BEST), (62.0, BEST), (58.0, BEST)], WAN_DISTILLED)
    fast = clock.seconds(FAST)
    assert fast == pytest.approx(60.0 * (3.2 + 4 * 0.62) / (3.2 + 100 * 0.62))  # ≈ 5.2 s
    etas = clock.queue_etas([BEST, BEST, FAST])
    assert etas == pytest.approx([60.0, 120.0, 120.0 + fast])
    assert etas[2] < 2.2 * 60  # not position × one average (that said 180 s)
    assert eta_for_position(3, 60.0) == 180.0
    # What is left of the running job comes first.
    assert clock.queue_etas([FAST], running_remaining=25.0) == pytest.approx([25.0 + fast])


def test_two_pass_counts_measured_often_enough_fit_both_parts() -> None:
    """A machine whose fixed part is relatively slow (10 s decode, 0.5 s per pass): three jobs
    of each kind recover both figures, so fast jobs are not priced as a slice of best ones."""
    runs = [(0.5 * 100 + 10, BEST)] * 3 + [(0.5 * 4 + 10, FAST)] * 3
    clock = JobClock.learn(runs, WAN_DISTILLED)
    assert clock.cost.seconds_per_forward == pytest.approx(0.5)
    assert clock.cost.fixed_seconds == pytest.approx(10.0)
    assert clock.seconds(FAST) == pytest.approx(12.0)
    assert clock.seconds(BALANCED) == pytest.approx(35.0)
    # With fewer than three fast jobs the fit stays one factor of the reference (the median).
    few = JobClock.learn(runs[:5], WAN_DISTILLED)
    assert few.cost.seconds_per_forward / few.cost.fixed_seconds == pytest.approx(0.62 / 3.2)
    assert few.seconds(BEST) == pytest.approx(60.0)


def test_a_fit_that_makes_no_sense_falls_back_to_one_factor() -> None:
    """Fewer passes measured slower (noise, a busy machine): no negative cost per pass."""
    cost = fit_cost([(100, 10.0)] * 3 + [(4, 20.0)] * 3)
    assert cost is not None and cost.seconds_per_forward > 0
    assert cost.seconds_per_forward / cost.fixed_seconds == pytest.approx(0.62 / 3.2)


def test_a_negative_fixed_part_is_clamped() -> None:
    cost = fit_cost([(100, 50.0)] * 3 + [(4, 1.0)] * 3, CostModel(0.62, 3.2))
    assert cost is not None and cost.fixed_seconds == 0.0
    assert cost.seconds_per_forward == pytest.approx(49 / 96)


def test_plan_seconds_count_the_models_own_cache() -> None:
    """/settings plans tiers from the operator's settings; the passes use the model's cache."""
    clock = JobClock(WAN_MAGCACHE)
    plan = plan_tier("balanced", WAN_DEFAULTS, WAN_LIMITS, TierSupport())  # plans 50 steps
    assert clock.plan_seconds(plan) == pytest.approx(clock.seconds(job("balanced", WAN_MAGCACHE)))
    assert clock.plan_seconds(plan) < JobClock(TierSupport()).plan_seconds(plan)


def test_cumulative_etas() -> None:
    assert cumulative_etas([10.0, 20.0, 5.0], 7.0) == [17.0, 37.0, 42.0]
    assert cumulative_etas([10.0], -3.0) == [10.0]  # a late running job adds nothing
    assert cumulative_etas([]) == []
