"""MagCache calibration: ``python -m pipeline calibrate-cache --model DIR -o ratios.json``.

MagCache needs each model's *magnitude ratios*: for every step, how the norm of the transformer's
residual (output minus input of its blocks) compares with the previous step's. diffusers measures
them in one ordinary run with ``MagCacheConfig(calibrate=True)`` (nothing is skipped) and reports
one series per cache context at the end of the run; Wan-style pipelines run the conditional and
the unconditional pass in separate contexts, the conditional first, and the data file keeps the
conditional series as ``mag_ratios`` (what diffusers' MagCache documentation advises for
sequential classifier-free guidance). The written file is what ``GeneratorConfig.cache_ratios``
and ``--cache-ratios`` read (:func:`pipeline.quality.load_cache_data`).

One prompt is enough (the MagCache paper calibrates with a single sample), but the ratios depend
on the model, the sampler and its shift: calibrate with the settings the bot runs.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pipeline.quality import MagCacheData

CALIBRATION_PROMPT = (
    "Two anthropomorphic cats in comfy boxing gear and bright gloves fight intensely on a "
    "spotlighted stage."
)  # the MagCache authors' calibration prompt for Wan 2.1
_RESULTS = "MagCache Calibration Results:"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.series: list[list[float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(_RESULTS):
            self.series.append([float(x) for x in ast.literal_eval(message[len(_RESULTS) :])])


@contextlib.contextmanager
def _calibration_results() -> Any:
    """Collect the series diffusers logs (and prints) at the end of a calibration run."""
    logger = logging.getLogger("diffusers.hooks.mag_cache")
    handler = _Collect()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # not into diffusers' own stderr handler
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # diffusers also print()s them
            yield handler.series
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def calibrate(
    generator: Any,
    *,
    prompt: str = CALIBRATION_PROMPT,
    steps: int | None = None,
    width: int | None = None,
    height: int | None = None,
    frames: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
) -> tuple[list[float], list[float] | None]:
    """Run ``generator``'s pipeline once with MagCache in calibration mode; returns the
    conditional ratios and, with classifier-free guidance, the unconditional ones."""
    import torch
    from diffusers import MagCacheConfig

    from pipeline.speed import denoiser

    defaults = generator.defaults
    steps = steps or defaults.steps
    guidance = defaults.guidance if guidance is None else guidance
    model = denoiser(generator.pipe)
    if not hasattr(model, "enable_cache"):
        raise ValueError(f"{type(model).__name__} does not support diffusers' caches")
    generator.switch.prepare("best", steps)  # the base transformer and sampler, no cache
    model.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=steps))
    kwargs = {
        "prompt": prompt,
        "negative_prompt": defaults.negative_prompt or None,
        "height": height or defaults.height,
        "width": width or defaults.width,
        "num_frames": frames or defaults.frames,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "latent",  # the ratios come from the transformer; skip the VAE
    }
    params = generator.call_parameters
    try:
        with _calibration_results() as series:
            generator.pipe(**{k: v for k, v in kwargs.items() if k in params and v is not None})
    finally:
        model.disable_cache()
    if not series:
        raise RuntimeError("diffusers reported no MagCache calibration results")
    if any(len(s) != steps for s in series):
        raise RuntimeError(f"expected {steps} ratios per series, got {[len(s) for s in series]}")
    return series[0], (series[1] if len(series) > 1 else None)


def main(argv: list[str] | None = None) -> int:
    from pipeline.generator import DEFAULT_MODEL

    p = argparse.ArgumentParser(
        prog="python -m pipeline calibrate-cache",
        description="Measure a model's MagCache ratios for the balanced quality tier.",
    )
    p.add_argument("--model", default=os.environ.get("T2V_MODEL", DEFAULT_MODEL))
    p.add_argument("-o", "--output", default="magcache.json", help="data file to write")
    p.add_argument("--prompt", default=CALIBRATION_PROMPT)
    p.add_argument("--steps", type=int, help="default: the model's")
    p.add_argument("--size", help="WxH, default: the model's")
    p.add_argument("--frames", type=int, help="default: the model's")
    p.add_argument("--guidance", type=float, help="default: the model's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=os.environ.get("DEVICE", "auto"))
    p.add_argument("--threshold", type=float, default=MagCacheData.threshold)
    p.add_argument("--max-skip-steps", type=int, default=MagCacheData.max_skip_steps)
    p.add_argument("--retention-ratio", type=float, default=MagCacheData.retention_ratio)
    args = p.parse_args(argv)
    width = height = None
    if args.size:
        try:
            width, height = (int(x) for x in args.size.lower().replace("х", "x").split("x"))
        except ValueError:
            p.error(f"--size {args.size!r} is not WxH")

    import diffusers

    from pipeline.errors import ModelLoadError
    from pipeline.generator import GeneratorConfig, VideoGenerator

    start = time.perf_counter()
    try:
        generator = VideoGenerator.load(
            GeneratorConfig(model=args.model, device=args.device, compile="off")
        )
        cond, uncond = calibrate(
            generator,
            prompt=args.prompt,
            steps=args.steps,
            width=width,
            height=height,
            frames=args.frames,
            guidance=args.guidance,
            seed=args.seed,
        )
    except (ModelLoadError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, ModelLoadError) else 1
    defaults = generator.defaults
    data = MagCacheData(
        mag_ratios=tuple(round(r, 5) for r in cond),
        threshold=args.threshold,
        max_skip_steps=args.max_skip_steps,
        retention_ratio=args.retention_ratio,
        source=f"python -m pipeline calibrate-cache on {time.strftime('%Y-%m-%d')}",
    )
    calibration = {
        "model": args.model,
        "pipeline": type(generator.pipe).__name__,
        "sampler": type(generator.pipe.scheduler).__name__,
        "steps": len(cond),
        "size": f"{width or defaults.width}x{height or defaults.height}",
        "frames": args.frames or defaults.frames,
        "guidance": defaults.guidance if args.guidance is None else args.guidance,
        "prompt": args.prompt,
        "seed": args.seed,
        "device": generator.device_info(),
        "diffusers": diffusers.__version__,
    }
    out = data.to_json(calibration=calibration)
    if uncond is not None:
        out["mag_ratios_unconditional"] = [round(r, 5) for r in uncond]
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    skipped = data.skipped_share(len(cond))
    print(f"saved: {args.output} ({len(cond)} ratios, {time.perf_counter() - start:.1f} s)")
    print(
        f"balanced tier at {len(cond)} steps: skips {skipped:.0%} of the steps"
        f" (threshold {data.threshold}, max {data.max_skip_steps} in a row,"
        f" first {data.retention_ratio:.0%} always computed)"
    )
    return 0
