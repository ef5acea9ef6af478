"""Wan 2.1 T2V 1.3B on one GPU: the quality tiers and the speed options side by side.

Builds the transformer, VAE and umT5-XXL text encoder from their published configs (written below)
with random weights, directly on the GPU in bf16 (nothing is downloaded), wraps the pipeline with
the project (``VideoGenerator.from_pipe``, the same code as ``VideoGenerator.load``) and renders
832x480, 81 frames per setting in ``--configs``:

* a warm-up call (2 steps; with compile, this is the compile: its seconds are reported),
* one real clip at the tier's own step count (best 50, balanced 50 with MagCache, fast 4): seconds
  per step, text encoding, VAE decode, end-to-end seconds, peak memory, and the share of
  transformer passes the step cache skipped. When the budget left cannot hold the full clip, the
  setting runs ``--short-steps`` and extrapolates (the row says so).

What random weights can and cannot tell: latency and memory are those of the trained model (same
shapes, same kernels). MagCache decides from its magnitude ratios, not from the weights, so the
balanced tier skips exactly the steps its ratio schedule skips with the trained model too (the
built-in Wan 2.1 T2V 1.3B data): its time is the trained model's time. Picture quality is not
measured here (``bench/quality.py`` with real weights). The fast tier fuses a random rank-64 LoRA
in the original Wan key naming, as ``FAST_LORA`` does with a real step-distilled one.

    python bench/gpu_throughput.py --out bench/results/gpu.json          # one GPU, < 9 min
    python bench/gpu_throughput.py --tiny --out bench/results/tiny.json  # CPU smoke: < 2 min

Results are flushed to JSON after every run, and a hard deadline (``--budget-s``) skips what is
left, so a killed or slow run still leaves figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu_tools import (
    PROMPT,
    build_wan,
    free_memory,
    instrumented,
    is_oom,
    no_progress_bar,
    one_line,
    peak_memory,
    quiet,
    reset_peak_memory,
    stage_times,
    sync,
)
from bench.report import JsonReport, fmt, log, machine_info

NOTE = (
    "random weights: latency, memory and the balanced tier's skipped steps (decided from the "
    "MagCache ratios, not the weights) are those of the trained model; picture quality is not "
    "measured (bench/quality.py)"
)

# ---------------------------------------------------------------- published configs
# Wan-AI/Wan2.1-T2V-1.3B-Diffusers: transformer/config.json, vae/config.json, text_encoder/config.json
# (google/umt5-xxl encoder), scheduler/scheduler_config.json with flow_shift 3.0 for 480p.

WAN_1_3B_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    image_dim=None,
    added_kv_proj_dim=None,
    rope_max_seq_len=1024,
)
WAN_VAE = dict(  # AutoencoderKLWan defaults, spelled out; latents_mean/std stay the defaults
    base_dim=96,
    z_dim=16,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
    dropout=0.0,
)
UMT5_XXL = dict(
    d_model=4096,
    d_ff=10240,
    d_kv=64,
    num_heads=64,
    num_layers=24,
    vocab_size=256384,
    feed_forward_proj="gated-gelu",
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    layer_norm_epsilon=1e-6,
    dropout_rate=0.1,
    tie_word_embeddings=False,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
)
SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)

FULL = dict(width=832, height=480, frames=81)
TINY = dict(width=64, height=64, frames=9)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One measured configuration, in the names of ``GeneratorConfig`` and the tiers."""

    quality: str = "best"
    compile: bool = False
    attention: str | None = None
    quantize: str | None = None
    fast_weights: bool = False  # a FAST_LORA for the fast tier (else it falls back)
    memory_mode: str = "resident"
    cap_gb: float | None = None  # torch.cuda.set_per_process_memory_fraction
    short: bool = False  # always --short-steps (comparisons of per-step cost)
    bare: bool = False  # a bare diffusers call of the same pipeline, for the project's overhead
    min_left_s: float = 40  # not started with less budget left

    @property
    def fresh_pipe(self) -> bool:
        """Whether the setting changes the pipeline for good (it then gets its own build); an
        attention backend is set back to SDPA afterwards instead."""
        changes = (self.compile, self.quantize, self.cap_gb)
        return any(changes) or self.memory_mode != "resident"


SETTINGS: dict[str, Setting] = {
    # the tiers, as the bot runs them by default (COMPILE=auto is on with CUDA: see *_compile)
    "best": Setting(quality="best", min_left_s=90),
    "balanced": Setting(quality="balanced", min_left_s=60),
    "fast": Setting(quality="fast", fast_weights=True),
    "fast_fallback": Setting(quality="fast"),
    "best_compile": Setting(quality="best", compile=True, min_left_s=110),
    "balanced_compile": Setting(quality="balanced", compile=True, min_left_s=90),
    "fast_compile": Setting(quality="fast", fast_weights=True, compile=True, min_left_s=70),
    "balanced_fp8": Setting(quality="balanced", quantize="fp8", min_left_s=70),
    "fast_fp8": Setting(quality="fast", fast_weights=True, quantize="fp8"),
    # attention backends: per-step cost of the best tier (short runs)
    "attention_sdpa": Setting(attention="native", short=True),
    "attention_cudnn": Setting(attention="_native_cudnn", short=True),
    "attention_flash": Setting(attention="flash", short=True),
    "attention_flash3_hub": Setting(attention="_flash_3_hub", short=True),
    "attention_sage_hub": Setting(attention="sage_hub", short=True),
    # memory on smaller cards
    "group_offload_24g": Setting(memory_mode="group_offload", cap_gb=24, short=True),
    "resident_24g": Setting(cap_gb=24, short=True),
    "model_offload_24g": Setting(memory_mode="model_offload", cap_gb=24, short=True),
    # the project against a bare diffusers call (issue 2's overhead check on the GPU)
    "bare_best": Setting(quality="best", bare=True, short=True),
}
DEFAULT_CONFIGS = (
    "best,balanced,fast,fast_fallback,balanced_compile,fast_compile,"
    "attention_sdpa,attention_cudnn,attention_flash,attention_flash3_hub,attention_sage_hub,"
    "balanced_fp8"
)
TINY_CONFIGS = "best,balanced,fast,fast_fallback,attention_sdpa,group_offload_24g,bare_best"
ATTENTION_PACKAGES = ("flash_attn", "flash_attn_interface", "sageattention", "kernels", "torchao")


# ---------------------------------------------------------------- building


class Models:
    """Builds the pipeline (full-size on the GPU, or the tiny checkpoint) and the fast LoRA."""

    def __init__(self, args: argparse.Namespace, cuda: bool, workdir: Path) -> None:
        self.args = args
        self.cuda = cuda
        self.workdir = workdir
        self.tiny_dir: Path | None = None
        self.lora: Path | None = None
        self.shared: Any = None  # the plain pipeline, reused by settings that do not change it

    def pipe(self, fresh: bool) -> Any:
        if not fresh and self.shared is not None:
            return self.shared
        import torch

        if self.args.tiny:
            from diffusers import WanPipeline

            from tests.fakes.tiny_models import build_tiny_wan

            if self.tiny_dir is None:
                self.tiny_dir = build_tiny_wan(self.workdir / "tiny-wan")
            pipe = WanPipeline.from_pretrained(self.tiny_dir)
        else:
            vae_dtype = torch.float32 if self.args.vae_dtype == "float32" else torch.bfloat16
            pipe = build_wan(
                WAN_1_3B_TRANSFORMER, UMT5_XXL, WAN_VAE, device="cuda", dtype=torch.bfloat16,
                vae_dtype=vae_dtype, scheduler=SCHEDULER,
            )  # fmt: skip
        no_progress_bar(pipe)
        if not fresh:
            self.shared = pipe
        return pipe

    def fast_lora(self) -> Path:
        from tests.fakes.tiny_loras import TINY, WAN_1_3B, build_original_wan_lora

        if self.lora is None:
            shape = TINY if self.args.tiny else WAN_1_3B
            self.lora = build_original_wan_lora(self.workdir / "fast-lora.safetensors", shape=shape)
        return self.lora

    def drop_shared(self) -> None:
        self.shared = None
        free_memory()


def param_counts(pipe: Any) -> dict[str, float]:
    """Millions of parameters per component."""
    return {
        name: round(sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6, 1)
        for name in ("transformer", "text_encoder", "vae")
    }


def attention_probe() -> dict[str, bool]:
    return {pkg: importlib.util.find_spec(pkg) is not None for pkg in ATTENTION_PACKAGES}


# ---------------------------------------------------------------- one call


def block_counter(models: list[Any]) -> list[int]:
    """Counts real transformer passes: a pass the step cache skips never reaches the last
    block's feed-forward layer."""
    calls: list[int] = []
    for model in models:
        if model is not None:
            model.blocks[-1].ffn.register_forward_hook(lambda *_: calls.append(1))
    return calls


def measure(gen: Any, options: Any, cuda: bool, passes: list[int]) -> dict[str, Any]:
    """One ``VideoGenerator.generate`` call with stage marks: times, memory, skipped passes."""
    gen.switch.prepare(options.quality, options.steps)  # the tier's transformer, before marking
    gc.collect()  # no empty_cache: the allocator stays warm between runs, as in the bot
    reset_peak_memory()
    passes.clear()
    with instrumented(gen.pipe, cuda) as clock:
        start = time.perf_counter()
        video = gen.generate(options, prompt_en=PROMPT)
        sync()
        total = time.perf_counter() - start
    guided = options.guidance > 1.0
    times = stage_times(clock, total, guided)
    peak_memory(times)
    data = times.as_dict()
    per_step = 2 if guided else 1
    data.update(
        steps=options.steps,
        transformer_passes=options.steps * per_step,
        computed_passes=len(passes),
        skipped_share=1 - len(passes) / (options.steps * per_step),
        project_timings=video.timings,
    )
    return data


def bare_measure(pipe: Any, options: Any, cuda: bool) -> dict[str, Any]:
    """The same call as plain diffusers (float frames, no progress, no cancel hook)."""
    import torch

    gc.collect()
    reset_peak_memory()
    with instrumented(pipe, cuda) as clock:
        start = time.perf_counter()
        pipe(
            prompt=PROMPT, negative_prompt=options.negative_prompt, height=options.height,
            width=options.width, num_frames=options.frames, num_inference_steps=options.steps,
            guidance_scale=options.guidance, output_type="np", max_sequence_length=512,
            generator=torch.Generator("cpu").manual_seed(options.seed),
        )  # fmt: skip
        sync()
        total = time.perf_counter() - start
    times = stage_times(clock, total, options.guidance > 1.0)
    peak_memory(times)
    return {**times.as_dict(), "steps": options.steps}


def clip_seconds(run: dict[str, Any], full_passes: int) -> float | None:
    """End-to-end seconds of a clip with ``full_passes`` computed transformer passes, from a
    shorter run: its fixed stages plus its cost per computed pass."""
    if run.get("denoise") is None or not run.get("computed_passes"):
        return None
    fixed = run["total"] - run["denoise"]
    return fixed + run["denoise"] / run["computed_passes"] * full_passes


# ---------------------------------------------------------------- one setting


class Deadline:
    def __init__(self, budget_s: float):
        self.start = time.monotonic()
        self.budget_s = budget_s

    @property
    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)


def _run_setting(
    entry: dict[str, Any],
    setting: Setting,
    *,
    args: argparse.Namespace,
    models: Models,
    cuda: bool,
    size: dict[str, int],
    deadline: Deadline,
    report: JsonReport,
) -> None:
    import torch

    from pipeline.generator import GeneratorConfig, VideoGenerator
    from pipeline.options import OptionOverrides, resolve_options
    from pipeline.presets import apply_overrides
    from pipeline.quality import BUILTIN_DATA

    if setting.cap_gb and cuda:
        models.drop_shared()  # the cap counts every allocation of the process
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, setting.cap_gb * 1e9 / total))
        entry["cap_gb"] = setting.cap_gb
    t0 = time.monotonic()
    pipe = models.pipe(fresh=setting.fresh_pipe)
    config = GeneratorConfig(
        model="tiny random Wan" if args.tiny else "wan-2.1-t2v-1.3b-random (in memory)",
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32",
        memory_mode=setting.memory_mode,
        compile="on" if setting.compile else "off",
        compile_cache_dir=args.compile_cache_dir,
        attention_backend=setting.attention,
        quantize=setting.quantize,
        fast_lora=str(models.fast_lora()) if setting.fast_weights else None,
        # the tiny Wan is not 1.3B: give it the built-in ratios (the full model finds them itself)
        cache_ratios=str(Path(__file__).resolve().parents[1] / "pipeline" / "data" / BUILTIN_DATA)
        if args.tiny
        else None,
    )
    gen = VideoGenerator.from_pipe(pipe, config)
    entry["build_s"] = round(time.monotonic() - t0, 2)
    entry["applied"] = [*gen.speed_applied, *gen.switch.applied(setting.quality)]
    entry["memory_mode"] = gen.memory_mode
    if "parameters_million" not in report.data:
        report.data["parameters_million"] = param_counts(pipe)
    defaults, limits = apply_overrides(gen.defaults, gen.limits, size)
    plan = gen.tier_plan(setting.quality, defaults, limits)
    entry["plan"] = dataclasses.asdict(plan) | {"negative_prompt": bool(plan.negative_prompt)}

    def options(steps: int) -> Any:
        overrides = OptionOverrides(seed=0, steps=steps).merged_over(plan.overrides())
        return resolve_options("benchmark", overrides, defaults, limits)

    passes = block_counter([gen.switch.base, gen.switch.fast])
    log(f"  built in {entry['build_s']} s; {', '.join(entry['applied']) or 'no speed settings'}")
    report.flush()

    warm = options(min(args.warmup_steps, plan.steps))
    start = time.perf_counter()
    gen.generate(warm, prompt_en=PROMPT)
    sync()
    entry["warmup_s"] = round(time.perf_counter() - start, 2)
    log(f"  warm-up ({warm.steps} steps): {entry['warmup_s']:.1f} s")
    report.flush()

    full = options(plan.steps)
    short_steps = min(args.short_steps, plan.steps)
    per_pass = entry["warmup_s"] / max(1, warm.steps * (2 if warm.guidance > 1 else 1))
    expected = entry["warmup_s"] + per_pass * plan.forwards
    if setting.short or setting.bare or deadline.left < 1.3 * expected + 10:
        run_options, entry["extrapolated"] = options(short_steps), True
    else:
        run_options, entry["extrapolated"] = full, False
    if deadline.left < 10:
        raise TimeoutError("budget spent after the warm-up")
    run = measure(gen, run_options, cuda, passes)
    entry["run"] = run
    entry["clip_s"] = (
        run["total"] if not entry["extrapolated"] else clip_seconds(run, plan.forwards)
    )
    entry["full_steps"] = plan.steps
    entry["skipped_share_full"] = 1 - plan.forwards / (plan.steps * (2 if plan.guidance > 1 else 1))
    log(
        f"  {run_options.steps} steps: total {run['total']:.2f} s, step {fmt(run['step_median'], '.3f')} s,"
        f" skipped {run['skipped_share']:.0%}, peak {fmt(run['peak_allocated_gb'], '.1f')} GB;"
        f" clip@{plan.steps} {fmt(entry['clip_s'], '.1f')} s"
        + (" (extrapolated)" if entry["extrapolated"] else "")
    )
    if setting.bare:
        bare_measure(pipe, run_options, cuda)  # warm
        entry["bare_run"] = bare_measure(pipe, run_options, cuda)
        entry["project_over_bare"] = run["total"] / entry["bare_run"]["total"]
        log(f"  bare diffusers: {entry['bare_run']['total']:.2f} s")
    gen.free_memory()


def run_setting(name: str, setting: Setting, **kw: Any) -> dict[str, Any]:
    import torch

    report: JsonReport = kw["report"]
    entry: dict[str, Any] = {"config": name, "setting": dataclasses.asdict(setting)}
    report.data.setdefault("configs", {})[name] = entry
    t0 = time.monotonic()
    try:
        _run_setting(entry, setting, **kw)
    except Exception as exc:
        entry["error"] = ("OOM: " if is_oom(exc) else "") + one_line(exc)
        log(f"  error: {entry['error']}")
    finally:
        entry["wall_s"] = round(time.monotonic() - t0, 1)
        if setting.attention:
            with contextlib.suppress(Exception):  # back to SDPA (the active backend is global)
                kw["models"].pipe(fresh=False).transformer.set_attention_backend("native")
        if setting.fresh_pipe:
            torch.compiler.reset()
        if kw["cuda"]:
            torch.cuda.set_per_process_memory_fraction(1.0)
        free_memory()
        report.flush()
    return entry


# ---------------------------------------------------------------- table


def print_table(report: JsonReport) -> None:
    header = ("config", "steps", "s/step", "text s", "decode s", "clip s", "skipped", "peak GB")
    # s/step: median step of the run (cached tiers mix computed and skipped steps); skipped:
    # transformer passes of the run the step cache skipped
    header += ("warm-up s",)
    rows: list[tuple[str, ...]] = [header]
    notes: list[str] = []
    for name, entry in report.data.get("configs", {}).items():
        run = entry.get("run")
        if run:
            rows.append(
                (
                    name,
                    f"{run['steps']}/{entry['full_steps']}",
                    fmt(run["step_median"], ".3f"),
                    fmt(run["encode_text"], ".2f"),
                    fmt(run["decode"], ".2f"),
                    fmt(entry["clip_s"], ".1f") + ("*" if entry["extrapolated"] else ""),
                    f"{run['skipped_share']:.0%}",
                    fmt(run["peak_allocated_gb"], ".1f"),
                    fmt(entry.get("warmup_s"), ".1f"),
                )
            )
        if entry.get("project_over_bare"):
            notes.append(f"{name}: project / bare diffusers = {entry['project_over_bare']:.3f}")
        if entry.get("error"):
            notes.append(f"{name}: error: {entry['error'][:160]}")
    for name in report.data.get("skipped", []):
        notes.append(f"{name}: skipped: budget spent before it could start")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        log("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    log("* extrapolated from a shorter run to the tier's full step count")
    for note in notes:
        log(note)


def compact_summary(report: JsonReport) -> dict[str, Any]:
    """The figures on one line, for a log tail when the JSON file cannot be fetched."""
    out: dict[str, Any] = {}
    for name, entry in report.data.get("configs", {}).items():
        run = entry.get("run") or {}
        item = {
            "clip_s": entry.get("clip_s"),
            "extrapolated": entry.get("extrapolated"),
            "step_s": run.get("step_median"),
            "skipped": entry.get("skipped_share_full"),
            "peak_gb": run.get("peak_allocated_gb"),
            "warmup_s": entry.get("warmup_s"),
            "error": entry.get("error"),
        }
        out[name] = {k: round(v, 3) if isinstance(v, float) else v for k, v in item.items()}
    return out


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    parser.add_argument("--tiny", action="store_true", help="tiny random Wan on CPU (CI smoke)")
    parser.add_argument("--configs", default=None, help=f"comma list of {', '.join(SETTINGS)}")
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument(
        "--short-steps", type=int, default=4, help="steps of runs that are extrapolated"
    )
    parser.add_argument(
        "--budget-s", type=float, default=540.0, help="hard deadline for the whole run"
    )
    parser.add_argument("--vae-dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument(
        "--compile-cache-dir", default=None, help="COMPILE's on-disk cache (default: torch's)"
    )
    args = parser.parse_args(argv)
    deadline = Deadline(args.budget_s)

    import torch

    quiet()
    if args.tiny:  # tiny models gain nothing from threads; on busy shared cores they crawl
        torch.set_num_threads(1)
    cuda = torch.cuda.is_available() and not args.tiny
    if not args.tiny and not cuda:
        log("no CUDA device: use --tiny for the CPU smoke run")
        return 2
    size = dict(TINY if args.tiny else FULL)
    names = [
        n.strip()
        for n in (args.configs or (TINY_CONFIGS if args.tiny else DEFAULT_CONFIGS)).split(",")
    ]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; known: {', '.join(SETTINGS)}")

    report = JsonReport(
        args.out,
        benchmark="gpu_throughput",
        command="python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        machine=machine_info(),
        size=size,
        model="tiny random Wan (tests/fakes/tiny_models.py)"
        if args.tiny
        else "Wan2.1-T2V-1.3B, random weights",
        configs_requested=names,
        note=NOTE,
        packages=attention_probe(),
    )
    log(
        f"gpu_throughput: {report.data['model']}, {size['width']}x{size['height']}x{size['frames']};"
        f" budget {args.budget_s:.0f} s"
    )
    log(f"NOTE: {NOTE}")
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        models = Models(args, cuda, Path(tmp))
        for name in names:
            setting = SETTINGS[name]
            if deadline.left < (5 if args.tiny else setting.min_left_s):
                report.data.setdefault("skipped", []).append(name)
                report.flush()
                log(f"[{name}] skipped: budget spent ({deadline.left:.0f} s left)")
                continue
            log(f"[{name}] {deadline.left:.0f} s left")
            run_setting(
                name, setting, args=args, models=models, cuda=cuda, size=size,
                deadline=deadline, report=report,
            )  # fmt: skip
    report["elapsed_s"] = round(time.monotonic() - deadline.start, 1)
    log("")
    print_table(report)
    log("SUMMARY " + json.dumps(compact_summary(report), separators=(",", ":")))
    log(f"wrote {args.out} in {report.data['elapsed_s']} s")
    if args.tiny:  # CI smoke: every code path must have run
        broken = [n for n, e in report.data.get("configs", {}).items() if e.get("error")]
        if broken or report.data.get("skipped"):
            log(f"smoke check failed: {broken or report.data.get('skipped')}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
