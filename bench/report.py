"""Figures and their output, shared by every benchmark: small statistics, machine facts, a JSON
report written after every change, and one print helper."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repository root
    sys.path.insert(0, str(ROOT))

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


def run_timed(
    main: Callable[[Any, dict[str, Any]], Coroutine[Any, Any, int]],
    args: Any,
    report: dict[str, Any],
) -> int:
    """Run a benchmark's ``main(args, report)`` coroutine, record its wall time in ``report`` and
    say where the figures went; returns its exit code."""
    start = time.perf_counter()
    code = asyncio.run(main(args, report))
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    log(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return code
