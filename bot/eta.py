"""ETA from measured durations: honest numbers, not the model's nominal speed.

The median of recent generation times ignores the odd outlier (a first run compiling kernels, a
huge request) that a mean would let dominate every user's estimate.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def estimate_seconds(durations: Iterable[float], default: float) -> float:
    """Expected seconds for one job: median of ``durations`` (non-positive ones ignored), else
    ``default`` when nothing has been measured yet."""
    values = [float(d) for d in durations if d is not None and d > 0]
    return statistics.median(values) if values else float(default)


def eta_for_position(position: int, per_job: float, running_remaining: float = 0.0) -> float:
    """Seconds until a queued job at ``position`` (1 = next) is generated: what is left of the
    running job, the jobs ahead of it, and its own run."""
    return max(0.0, running_remaining) + max(0, position) * per_job


def remaining_seconds(fraction: float, elapsed: float, per_job: float) -> float:
    """Seconds left for a running job: extrapolate from its own progress once it has some, else
    fall back to the typical duration."""
    if 0.05 <= fraction < 1 and elapsed > 0:
        return elapsed * (1 - fraction) / fraction
    return max(0.0, per_job - elapsed) if fraction < 1 else 0.0
