"""What the live preview (``PREVIEW=on``, ``pipeline/preview.py``) costs a render.

The same ``VideoGenerator`` renders the same options and seed with the preview off and on,
interleaved A B B A so drift hits both alike. Two figures: the median pair ratio on / off
(target <= 1.03; on a shared, busy CPU its noise is larger than the effect), and — robust to that
noise — the share of each render spent inside the preview itself (``LatentPreview.step`` timed
in the denoising callback: projection, copy to the host, JPEG), which is the cost. Two "on" variants: the shipped cadence (at most one preview per
``MIN_INTERVAL`` seconds, at least ``MIN_STEPS`` steps apart) and the worst case (a preview every
``MIN_STEPS`` steps whatever the time), whose per-preview milliseconds bound the cost on any
machine: cost share <= ms per preview / (1000 x MIN_INTERVAL).

    python bench/preview.py                  # CPU, tiny random Wan, 50 steps at 256x256x17
    python bench/preview.py --quick          # CI smoke, 2 pairs of 8 steps at 64x64
    python bench/preview.py --gpu            # CUDA: random-weight Wan 2.1 1.3B, 832x480x81,
                                             # 50 steps, bf16 (the published configs)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu_tools import generation_options, no_progress_bar, one_line, quiet
from bench.report import JsonReport, fmt, log, machine_info, median

TARGET = 1.03
SIZES = {
    "quick": dict(width=64, height=64, frames=9, steps=8, guidance=5.0),
    "cpu": dict(width=256, height=256, frames=17, steps=50, guidance=5.0),
    "gpu": dict(width=832, height=480, frames=81, steps=50, guidance=5.0),
}


def load(args: argparse.Namespace, workdir: Path) -> Any:
    from pipeline.generator import GeneratorConfig, VideoGenerator

    if args.gpu:
        import torch

        from bench.gpu_throughput import SCHEDULER, UMT5_XXL, WAN_1_3B_TRANSFORMER, WAN_VAE
        from bench.gpu_tools import build_wan

        pipe = build_wan(
            WAN_1_3B_TRANSFORMER, UMT5_XXL, WAN_VAE, device="cuda", dtype=torch.bfloat16,
            vae_dtype=torch.float32, scheduler=SCHEDULER,
        )  # fmt: skip
        no_progress_bar(pipe)
        config = GeneratorConfig(model="random-wan-1.3b", device="cuda", compile="off")
        return VideoGenerator.from_pipe(pipe, config)
    from tests.fakes.tiny_models import build_tiny_wan

    model = build_tiny_wan(workdir / "tiny-wan")
    return VideoGenerator.load(GeneratorConfig(model=str(model), device="cpu", compile="off"))


def measure(gen: Any, size: dict[str, Any], repeats: int) -> dict[str, Any]:
    from pipeline.preview import MIN_INTERVAL

    options = generation_options(seed=0, **size)
    from pipeline.preview import LatentPreview

    previews: dict[str, list[int]] = {"shipped": [], "every_steps": []}
    inside: dict[str, list[float]] = {"shipped": [], "every_steps": []}
    spent = [0.0]
    make_preview = gen.preview_for

    def timed_preview(options: Any) -> LatentPreview | None:
        preview = make_preview(options)
        if preview is None:
            return None
        step = preview.step

        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return step(*args)
            finally:
                spent[0] += time.perf_counter() - start

        preview.step = timed  # type: ignore[method-assign]
        return preview

    gen.preview_for = timed_preview
    variants = {"off": (False, MIN_INTERVAL), "shipped": (True, MIN_INTERVAL)}
    variants["every_steps"] = (True, 0.0)

    def run(name: str) -> float:
        enabled, interval = variants[name]
        gen.config.preview, gen.config.preview_interval = enabled, interval
        made: list[int] = []

        def on_progress(progress: Any) -> None:
            if progress.preview is not None:
                made.append(len(progress.preview.jpeg))

        spent[0] = 0.0
        start = time.perf_counter()
        gen.generate(options, on_progress=on_progress)
        seconds = time.perf_counter() - start
        if name in previews:
            previews[name].append(len(made))
            inside[name].append(spent[0] / seconds)
        return seconds

    run("off")  # warm-up
    times: dict[str, list[float]] = {name: [] for name in variants}
    pairs: dict[str, list[float]] = {"shipped": [], "every_steps": []}
    for i in range(repeats):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        got = {name: run(name) for name in order}
        for name, seconds in got.items():
            times[name].append(seconds)
        for name in pairs:
            pairs[name].append(got[name] / got["off"])
    entry: dict[str, Any] = {"size": size, "times_s": times}
    for name in pairs:
        made = statistics.median(previews[name]) if previews[name] else 0
        extra = (median(times[name]) or 0.0) - (median(times["off"]) or 0.0)
        entry[name] = {
            "share_inside_preview": statistics.median(inside[name]),
            "ms_inside_per_preview": 1000
            * statistics.median(inside[name])
            * (median(times[name]) or 0.0)
            / made
            if made
            else None,
            "median_pair_ratio": statistics.median(pairs[name]),
            "ratio_of_minimums": min(times[name]) / min(times["off"]),
            "previews_per_render": made,
            "ms_per_preview": 1000 * extra / made if made else None,
        }
    entry["meets_target"] = entry["shipped"]["share_inside_preview"] <= TARGET - 1
    return entry


def full_size_preview_ms(device: str, repeats: int = 20) -> float:
    """Median milliseconds of one preview from Wan 2.1's 832x480x81 latents ([1, 16, 21, 60, 104])
    on ``device``: the velocity, the clean estimate, the projection, the copy to the host and the
    JPEG — what one preview adds to a full-size render, whatever the model's own step costs."""
    from types import SimpleNamespace

    import torch

    from pipeline.preview import LatentPreview

    # The two public facts LatentPreview reads from a diffusers flow-matching scheduler.
    sampler = SimpleNamespace(config={"use_flow_sigmas": True}, sigmas=torch.linspace(1, 0, 51))

    preview = LatentPreview(
        SimpleNamespace(scheduler=sampler), "wan", size=(832, 480), min_interval=0.0, min_steps=1
    )
    latents = torch.randn(1, 16, 21, 60, 104, device=device)
    seconds: list[float] = []
    for index in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        preview.step(index % 48, 50, latents)
        seconds.append(time.perf_counter() - start)
    return 1000 * statistics.median(seconds[2:])  # past the first (lazy set-up)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/preview.json"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 pairs (CI smoke)")
    parser.add_argument("--gpu", action="store_true", help="full-size random Wan 1.3B on CUDA")
    parser.add_argument("--repeats", type=int, default=None, help="A/B pairs (default 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    args = parser.parse_args(argv)

    import torch

    quiet()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 4)
    size = SIZES["gpu" if args.gpu else "quick" if args.quick else "cpu"]
    report = JsonReport(
        args.out,
        benchmark="preview",
        command="python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        machine=machine_info(),
        torch_threads=torch.get_num_threads(),
        target=f"preview on / off <= {TARGET}",
        repeats=repeats,
    )
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        try:
            entry = measure(load(args, Path(tmp)), size, repeats)
        except Exception as exc:
            report["error"] = one_line(exc)
            log(f"error: {report['error']}")
            return 1
    entry["full_size_preview_ms"] = full_size_preview_ms("cuda" if args.gpu else "cpu")
    report["result"] = entry
    shipped, worst = entry["shipped"], entry["every_steps"]
    log(
        f"{size['width']}x{size['height']}x{size['frames']}, {size['steps']} steps:"
        f" off {fmt(median(entry['times_s']['off']), '.3f')} s,"
        f" on {fmt(median(entry['times_s']['shipped']), '.3f')} s;"
        f" shipped cadence: {shipped['previews_per_render']} previews,"
        f" {100 * shipped['share_inside_preview']:.2f} % of the render inside the preview"
        f" (A/B ratio {shipped['median_pair_ratio']:.3f}; target <= {TARGET});"
        f" worst case every {_min_steps()} steps: {worst['previews_per_render']} previews,"
        f" {100 * worst['share_inside_preview']:.2f} %,"
        f" {fmt(worst['ms_inside_per_preview'], '.1f')} ms each"
        f" (A/B ratio {worst['median_pair_ratio']:.3f})"
    )
    log(
        f"one preview from full-size Wan latents (832x480x81) on {'cuda' if args.gpu else 'cpu'}:"
        f" {entry['full_size_preview_ms']:.1f} ms"
    )
    log(f"wrote {args.out}")
    return 0


def _min_steps() -> int:
    from pipeline.preview import MIN_STEPS

    return MIN_STEPS


if __name__ == "__main__":
    raise SystemExit(main())
