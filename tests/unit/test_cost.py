"""bot/services/cost.py: the GPU cost of a request in ordinary videos (issue 14, item 1)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.services.cost import CostMeter, gpu_work, job_cost, shown_cost
from pipeline.options import OptionOverrides, parse_request, resolve_options
from pipeline.quality import TierSupport, load_cache_data, plan_tier
from tests.fakes.backend import WAN_DEFAULTS, WAN_LIMITS

MAGCACHE = TierSupport(cache=load_cache_data())
"""Wan 2.1 T2V 1.3B as the bot loads it: the balanced tier runs its built-in MagCache data."""
DISTILLED = TierSupport(distilled=True, cache=load_cache_data(), fast_steps=4)
WAN_MODEL_LIMITS = replace(WAN_LIMITS, max_frames=81, max_pixels=1280 * 720)
"""What pipeline.presets gives the real Wan 2.1 1.3B: up to 1280x720, 81 frames, 100 steps."""


def request(text: str, quality: str = "balanced", limits=WAN_MODEL_LIMITS):
    parsed = parse_request(text)
    overrides = parsed.overrides.merged_over(OptionOverrides(quality=quality))
    return resolve_options(parsed.prompt, overrides, WAN_DEFAULTS, limits)


@pytest.mark.parametrize("support", [TierSupport(), MAGCACHE, DISTILLED])
@pytest.mark.parametrize("quality", ["best", "balanced", "fast"])
def test_the_default_job_of_the_default_quality_costs_one(support, quality) -> None:
    meter = CostMeter(WAN_DEFAULTS, WAN_MODEL_LIMITS, support, default_quality=quality)
    # A request without options in the bot's default tier: exactly one ordinary video.
    tier = plan_tier(quality, WAN_DEFAULTS, WAN_MODEL_LIMITS, support)
    options = resolve_options("кот", tier.overrides(), WAN_DEFAULTS, WAN_MODEL_LIMITS)
    assert meter.cost(options) == 1.0


def test_the_issues_max_request_costs_about_nine_ordinary_videos() -> None:
    """`кот --steps 100 --size 1280x720` on Wan 2.1 1.3B: 2× the steps, 2.3× the pixels."""
    meter = CostMeter(WAN_DEFAULTS, WAN_MODEL_LIMITS, MAGCACHE, "balanced")
    best = meter.cost(request("кот --steps 100 --size 1280x720", "best"))
    balanced = meter.cost(request("кот --steps 100 --size 1280x720", "balanced"))
    pixels = 1280 * 720 / (832 * 480)
    # best: 200 passes against the balanced default job's 50 (MagCache computes 25 of 50 steps).
    assert best == pytest.approx(200 / 50 * pixels) == pytest.approx(9.23, abs=0.01)
    # balanced: MagCache computes 51 of 100 steps.
    assert balanced == pytest.approx(102 / 50 * pixels) == pytest.approx(4.71, abs=0.01)
    # Both are over the default MAX_COST_PER_JOB (4): refused for non-admins.
    assert min(best, balanced) > 4
    # The most the fake's Wan-like bounds allow (832x480, 121 frames, 100 steps), balanced
    # without MagCache data (as tests/fakes/backend.py's wan_like_backend): just under 3.
    fake_max = CostMeter(WAN_DEFAULTS, WAN_LIMITS).cost(
        request("кот --steps 100 --frames 121", limits=WAN_LIMITS)
    )
    assert fake_max == pytest.approx(2 * 121 / 81) == pytest.approx(2.99, abs=0.01)


def test_cost_scales_with_passes_frames_and_pixels() -> None:
    meter = CostMeter(WAN_DEFAULTS, WAN_MODEL_LIMITS, MAGCACHE, "balanced")
    default = request("кот")
    assert meter.cost(default) == 1.0
    assert meter.cost(replace(default, frames=41)) == pytest.approx(41 / 81)
    assert meter.cost(replace(default, width=416, height=240)) == pytest.approx(0.25)
    assert meter.cost(replace(default, guidance=1.0)) == pytest.approx(0.5)  # no second pass
    assert meter.cost(replace(default, quality="best")) == pytest.approx(2.0)
    # The distilled fast tier: 4 unguided passes instead of 50.
    fast = CostMeter(WAN_DEFAULTS, WAN_MODEL_LIMITS, DISTILLED, "balanced")
    fast_options = replace(default, quality="fast", steps=4, guidance=1.0)
    assert fast.cost(fast_options) == pytest.approx(4 / 50)
    assert gpu_work(default, MAGCACHE) == 50 * 81 * 832 * 480
    assert job_cost(default, WAN_DEFAULTS, WAN_MODEL_LIMITS, TierSupport(), "best") == 1.0


def test_status_messages_show_only_costly_requests() -> None:
    assert shown_cost(1.0) is None and shown_cost(1.5) is None and shown_cost(None) is None
    assert shown_cost(1.51) == 1.51 and shown_cost(9.2) == 9.2
