"""Full-size Wan2.1-T2V-1.3B throughput on one GPU: the project's generator against a bare diffusers call.

Builds the transformer, VAE and umT5-XXL text encoder from their published configs (written below)
with random weights, directly on the GPU in bf16 (nothing is downloaded), and times 832x480, 81
frames with classifier-free guidance (guidance 5.0, two transformer forwards per step): seconds per
denoising step, text encoding, VAE decode, the whole clip (a few steps, extrapolated to 50), and
peak memory, for each setting in ``--configs``. Random weights are valid for latency and memory,
NOT for cache skip rates: a first-block cache skips whatever random residuals happen to allow.

Per setting the same pipeline object is called bare (``pipe(...)``) and through the project
(``VideoGenerator.generate``), alternating A/B, after one warm-up call of each; the settings are
applied by the project (``VideoGenerator.from_pipe(pipe, config)``) when it can wrap a built
pipeline, else by this script with the documented diffusers calls (and only the bare call runs).

    python bench/gpu_throughput.py --out bench/results/gpu.json          # H200: < 8 min
    python bench/gpu_throughput.py --tiny --out bench/results/tiny.json  # CPU smoke: < 60 s

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
    NEGATIVE,
    PROMPT,
    Project,
    StageTimes,
    build_wan,
    free_memory,
    generation_options,
    instrumented,
    is_oom,
    load_project,
    no_progress_bar,
    one_line,
    peak_memory,
    quiet,
    reset_peak_memory,
    stage_times,
    sync,
)
from bench.report import JsonReport, fmt, log, machine_info, median, ratio

CACHE_NOTE = (
    "random weights: latency and memory figures are valid; cache skip rates (first_block_cache) are NOT "
    "representative of the trained model"
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

FULL = dict(width=832, height=480, frames=81, guidance=5.0, steps=4, extrapolate=50)
TINY = dict(width=64, height=64, frames=9, guidance=5.0, steps=3, extrapolate=50)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One measured configuration: a memory mode and speed settings, named as GeneratorConfig names them."""

    memory_mode: str = "resident"
    compile: bool = False
    attention: str | None = None  # "auto": the best installed of _flash_3, flash, _native_cudnn
    cache: str | None = None
    cap_gb: float | None = None  # torch.cuda.set_per_process_memory_fraction for this setting
    repeats_key: str = "other"  # which --repeats applies
    min_left_s: float = 45  # not started with less budget left (compile needs time to compile)


SETTINGS: dict[str, Setting] = {
    "plain": Setting(repeats_key="main"),
    "group_offload_24g": Setting(memory_mode="group_offload", cap_gb=24),
    "compile": Setting(compile=True, min_left_s=110),
    "attention": Setting(attention="auto"),
    "first_block_cache": Setting(cache="first_block"),
    "compile_attention": Setting(compile=True, attention="auto", min_left_s=110),
    "resident_24g": Setting(cap_gb=24),
    "model_offload_24g": Setting(memory_mode="model_offload", cap_gb=24),
}
DEFAULT_CONFIGS = "plain,group_offload_24g,compile,attention,first_block_cache"
TINY_CONFIGS = "plain,group_offload_24g,attention,first_block_cache"


# ---------------------------------------------------------------- building the model


def build_full_pipe(device: str, vae_dtype):
    """Wan2.1-T2V-1.3B with random weights, created on ``device`` in bf16 (VAE in ``vae_dtype``)."""
    import torch

    return build_wan(
        WAN_1_3B_TRANSFORMER, UMT5_XXL, WAN_VAE, device=device, dtype=torch.bfloat16,
        vae_dtype=vae_dtype, scheduler=SCHEDULER,
    )  # fmt: skip


def param_counts(pipe) -> dict[str, float]:
    """Millions of parameters per component."""
    return {
        name: round(sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6, 1)
        for name in ("transformer", "text_encoder", "vae")
    }


# ---------------------------------------------------------------- settings


def resolve_attention(name: str | None, cuda: bool) -> str | None:
    """``auto``: the fastest backend diffusers can use here without downloads; None keeps SDPA."""
    if name != "auto":
        return name
    if not cuda:
        return "native"
    from diffusers.models import attention_dispatch as ad

    if getattr(ad, "_CAN_USE_FLASH_ATTN_3", False):
        return "_flash_3"
    if getattr(ad, "_CAN_USE_FLASH_ATTN", False):
        return "flash"
    return "_native_cudnn"


def attention_probe() -> dict[str, Any]:
    found = {}
    for pkg in ("flash_attn", "flash_attn_interface", "sageattention", "xformers", "kernels"):
        found[pkg] = importlib.util.find_spec(pkg) is not None
    return found


def apply_bench_settings(pipe, setting: Setting, attention: str | None, cuda: bool) -> list[str]:
    """The documented diffusers calls for ``setting`` (used when the project cannot apply them)."""
    import torch

    done = []
    if setting.memory_mode == "group_offload":
        onload = torch.device("cuda" if cuda else "cpu")
        pipe.enable_group_offload(
            onload_device=onload,
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
            use_stream=cuda,
        )
        done.append(f"pipe.enable_group_offload(leaf_level, use_stream={cuda})")
    elif setting.memory_mode == "model_offload" and cuda:
        pipe.enable_model_cpu_offload()
        done.append("pipe.enable_model_cpu_offload()")
    if attention:
        pipe.transformer.set_attention_backend(attention)
        done.append(f"transformer.set_attention_backend({attention!r})")
    if setting.cache == "first_block":
        from diffusers import FirstBlockCacheConfig

        pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.05))
        done.append("transformer.enable_cache(FirstBlockCacheConfig(threshold=0.05))")
    if setting.compile:
        pipe.transformer.compile_repeated_blocks(fullgraph=True)
        done.append("transformer.compile_repeated_blocks(fullgraph=True)")
    return done


def reset_global_state(cuda: bool) -> None:
    """Undo process-wide side effects of a setting: the active attention backend, dynamo caches, the cap."""
    import torch

    with contextlib.suppress(Exception):
        from diffusers.models.attention_dispatch import (
            AttentionBackendName,
            _AttentionBackendRegistry,
        )

        _AttentionBackendRegistry.set_active_backend(AttentionBackendName.NATIVE)
    with contextlib.suppress(Exception):
        torch._dynamo.reset()
    if cuda:
        torch.cuda.set_per_process_memory_fraction(1.0)
    free_memory()


# ---------------------------------------------------------------- one call


def bare_call(pipe, size: dict[str, Any], steps: int, seed: int):
    import torch

    def call():
        out = pipe(
            prompt=PROMPT,
            negative_prompt=NEGATIVE,
            height=size["height"],
            width=size["width"],
            num_frames=size["frames"],
            num_inference_steps=steps,
            guidance_scale=size["guidance"],
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
            max_sequence_length=512,
        )
        return out.frames

    return call


def project_call(gen, size: dict[str, Any], steps: int, seed: int):
    options = generation_options(
        steps=steps,
        frames=size["frames"],
        width=size["width"],
        height=size["height"],
        guidance=size["guidance"],
        seed=seed,
        # The cache and a LoRA are "fast" settings: the project applies them to fast jobs only.
        fast=bool(gen.config.cache or gen.config.lora_path),
    )

    def call():
        return gen.generate(options, prompt_en=PROMPT)

    return call


def measure(call, pipe, cuda: bool, guidance: bool, extrapolate: int) -> dict[str, Any]:
    """Run ``call`` once with stage marks on ``pipe`` (None: wall time only)."""
    gc.collect()  # no empty_cache: the allocator stays warm between runs, as in the bot
    reset_peak_memory()
    with contextlib.ExitStack() as stack:
        clock = stack.enter_context(instrumented(pipe, cuda)) if pipe is not None else None
        start = time.perf_counter()
        result = call()
        sync()
        total = time.perf_counter() - start
    times = stage_times(clock, total, guidance) if clock is not None else StageTimes(total=total)
    peak_memory(times)
    data = times.as_dict(extrapolate)
    own = getattr(result, "timings", None)
    if isinstance(own, dict):
        data["project_timings"] = own
    del result
    return data


# ---------------------------------------------------------------- one setting


class Deadline:
    def __init__(self, budget_s: float):
        self.start = time.monotonic()
        self.budget_s = budget_s

    @property
    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)


def summarize(runs: list[dict[str, Any]], extrapolate: int) -> dict[str, Any]:
    key = f"clip_{extrapolate}_steps_estimate"

    def med(field: str) -> float | None:
        return median([r.get(field) for r in runs])

    peaks = [r.get("peak_allocated_gb") for r in runs if r.get("peak_allocated_gb") is not None]
    return {
        "n": len(runs),
        "total_s": med("total"),
        "step_s": med("step_median"),
        "encode_text_s": med("encode_text"),
        "decode_s": med("decode"),
        "other_s": med("other"),
        key: med(key),
        "peak_allocated_gb": max(peaks) if peaks else None,
        "peak_reserved_gb": max(
            [r["peak_reserved_gb"] for r in runs if r.get("peak_reserved_gb") is not None],
            default=None,
        ),
    }


def _measure_setting(
    entry: dict[str, Any],
    setting: Setting,
    *,
    attention: str | None,
    repeats: int,
    args,
    project: Project,
    cuda: bool,
    size: dict[str, Any],
    tiny_dir: Path | None,
    deadline: Deadline,
    report: JsonReport,
) -> None:
    """Build, apply the setting, warm up, then alternate bare and project calls into ``entry``.

    Every model reference lives in this frame, so returning (or the caller's ``except`` ending)
    frees the models before the next setting is built.
    """
    import torch

    pipe = gen = None
    if setting.cap_gb and cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, setting.cap_gb * 1e9 / total))
        entry["cap_gb"] = setting.cap_gb
    t0 = time.monotonic()
    gen_config = None
    if project.available:
        gen_config = project.config(
            model=str(tiny_dir) if tiny_dir else "wan-1.3b-random (in memory)",
            device="cuda" if cuda else "cpu",
            dtype="bfloat16" if cuda else "float32",
            memory_mode=setting.memory_mode,
            compile=setting.compile,
            attention_backend=attention,
            cache=setting.cache,
        )
    if project.available:
        pipe = build_pipe(args, cuda, tiny_dir)
        try:
            gen, how = project.wrap(pipe, gen_config)
            entry["settings_applied_by"] = how
            entry["project_applied"] = getattr(gen, "speed_applied", None)
            entry["project_memory_mode"] = getattr(gen, "memory_mode", None)
        except Exception as exc:
            entry["project_error"] = one_line(exc)
            log(f"  project could not wrap the pipeline: {one_line(exc)}")
            gen = pipe = None
        if gen is None:
            reset_global_state(cuda)  # outside the except: its traceback would keep the pipe alive
    else:
        entry["project_error"] = project.error
    if gen is None:  # the bare call alone, with the documented diffusers calls
        pipe = build_pipe(args, cuda, tiny_dir)
        entry["bench_applied"] = apply_bench_settings(pipe, setting, attention, cuda)
        entry["settings_applied_by"] = "bench (documented diffusers calls)"
    entry["build_s"] = round(time.monotonic() - t0, 2)
    no_progress_bar(pipe)
    if "parameters_million" not in report.data:
        report.data["parameters_million"] = param_counts(pipe)
    if cuda:
        entry["allocated_after_build_gb"] = round(torch.cuda.memory_allocated() / 1e9, 3)
    log(f"  built in {entry['build_s']} s; settings applied by {entry['settings_applied_by']}")
    report.flush()

    guidance = size["guidance"] > 1.0
    variants: list[tuple[str, Any, Any]] = [("bare", bare_call(pipe, size, size["steps"], 0), pipe)]
    if gen is not None:
        variants.append(("project", project_call(gen, size, size["steps"], 0), pipe))
    # warm-up: one short call of each (compile, autotuning, lazy hooks), recorded apart
    for variant, _, target in variants:
        call = (
            bare_call(target, size, args.warmup_steps, 0)
            if variant == "bare"
            else project_call(gen, size, args.warmup_steps, 0)
        )
        if deadline.left < 5:
            raise TimeoutError("budget spent during warm-up")
        data = measure(call, target, cuda, guidance, size["extrapolate"])
        data.update(variant=variant, warmup=True, n_steps=args.warmup_steps)
        entry["runs"].append(data)
        report.flush()
        log(f"  warm-up {variant}: {data['total']:.2f} s")
    # measured: A B B A ... so drift hits both variants alike
    order: list[tuple[str, Any, Any]] = []
    for i in range(repeats):
        order += variants if i % 2 == 0 else list(reversed(variants))
    last = 0.0
    for variant, call, target in order:
        if deadline.left < last * 1.2 + 5:
            entry["truncated"] = "budget: remaining runs skipped"
            log("  budget: remaining runs of this config skipped")
            break
        data = measure(call, target, cuda, guidance, size["extrapolate"])
        data.update(variant=variant, warmup=False, n_steps=size["steps"])
        last = data["total"]
        entry["runs"].append(data)
        report.flush()
        log(
            f"  {variant:8s} total {data['total']:.2f} s, step {fmt(data['step_median'], '.3f')} s,"
            f" peak {fmt(data['peak_allocated_gb'], '.1f')} GB"
        )
    if gen is not None and callable(getattr(gen, "free_memory", None)):
        with contextlib.suppress(Exception):
            gen.free_memory()


def run_setting(
    name: str,
    setting: Setting,
    *,
    args,
    project: Project,
    cuda: bool,
    size: dict[str, Any],
    tiny_dir: Path | None,
    deadline: Deadline,
    report: JsonReport,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"config": name, "setting": dataclasses.asdict(setting), "runs": []}
    results = report.data.setdefault("configs", {})
    results[name] = entry
    attention = resolve_attention(setting.attention, cuda)
    entry["attention_backend"] = attention
    repeats = args.repeats if setting.repeats_key == "main" else args.repeats_other
    t_setting = time.monotonic()
    try:
        _measure_setting(
            entry,
            setting,
            attention=attention,
            repeats=repeats,
            args=args,
            project=project,
            cuda=cuda,
            size=size,
            tiny_dir=tiny_dir,
            deadline=deadline,
            report=report,
        )
    except Exception as exc:
        entry["error"] = ("OOM: " if is_oom(exc) else "") + one_line(exc)
        log(f"  error: {entry['error']}")
    finally:
        for variant in ("bare", "project"):
            runs = [r for r in entry["runs"] if r["variant"] == variant and not r["warmup"]]
            if runs:
                entry[variant] = summarize(runs, size["extrapolate"])
        if "bare" in entry and "project" in entry:
            entry["project_over_bare"] = {
                "total": ratio(entry["project"]["total_s"], entry["bare"]["total_s"]),
                "step": ratio(entry["project"]["step_s"], entry["bare"]["step_s"]),
            }
        warm = {r["variant"]: r["total"] for r in entry["runs"] if r["warmup"]}
        if warm:
            entry["warmup_total_s"] = warm
        entry["wall_s"] = round(time.monotonic() - t_setting, 1)
        reset_global_state(cuda)
        report.flush()
    return entry


def build_pipe(args, cuda: bool, tiny_dir: Path | None):
    import torch

    if tiny_dir is not None:
        from diffusers import WanPipeline

        return WanPipeline.from_pretrained(tiny_dir)
    vae_dtype = torch.float32 if args.vae_dtype == "float32" else torch.bfloat16
    return build_full_pipe("cuda" if cuda else "cpu", vae_dtype)


# ---------------------------------------------------------------- table


def print_table(report: JsonReport, extrapolate: int) -> None:
    """Medians per config and variant; proj/bare is the ratio of median whole-call times."""
    key = f"clip_{extrapolate}_steps_estimate"
    header = ("config", "variant", "step s", "text s", "decode s", f"clip@{extrapolate} s")
    header += ("peak GB", "proj/bare")
    rows: list[tuple[str, ...]] = [header]
    notes: list[tuple[str, str, str]] = []  # (config, what, message): printed unpadded
    for name, entry in report.data.get("configs", {}).items():
        for variant in ("bare", "project"):
            s = entry.get(variant)
            if not s:
                continue
            r = entry.get("project_over_bare", {}).get("total") if variant == "project" else None
            rows.append(
                (
                    name,
                    variant,
                    fmt(s["step_s"], ".3f"),
                    fmt(s["encode_text_s"], ".3f"),
                    fmt(s["decode_s"], ".2f"),
                    fmt(s[key], ".1f"),
                    fmt(s["peak_allocated_gb"], ".1f"),
                    fmt(r, ".3f"),
                )
            )
        if "project" not in entry and entry.get("project_error"):
            notes.append((name, "project skipped", entry["project_error"]))
        if entry.get("error"):
            notes.append((name, "error", entry["error"]))
        if entry.get("truncated"):
            notes.append((name, "truncated", entry["truncated"]))
    for name in report.data.get("skipped", []):
        notes.append((name, "skipped", "budget spent before it could start"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        log("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for name, what, message in notes:
        log(f"{name}: {what}: {message[:160]}")


def compact_summary(report: JsonReport) -> dict[str, Any]:
    """The medians on one line, for a log tail when the JSON file cannot be fetched."""
    out: dict[str, Any] = {}
    for name, entry in report.data.get("configs", {}).items():
        item: dict[str, Any] = {}
        for variant in ("bare", "project"):
            if entry.get(variant):
                item[variant] = {
                    k: round(v, 3) if isinstance(v, float) else v for k, v in entry[variant].items()
                }
        for key in ("project_over_bare", "warmup_total_s"):
            if entry.get(key):
                item[key] = {k: round(v, 3) for k, v in entry[key].items() if v is not None}
        for key in ("error", "attention_backend", "settings_applied_by"):
            if entry.get(key) is not None:
                item[key] = entry[key]
        out[name] = item
    return out


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"))
    parser.add_argument("--tiny", action="store_true", help="tiny random Wan on CPU (CI smoke)")
    parser.add_argument("--configs", default=None, help=f"comma list of {', '.join(SETTINGS)}")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps per measured call")
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="A/B pairs for the 'plain' config")
    parser.add_argument(
        "--repeats-other", type=int, default=1, help="A/B pairs for the other configs"
    )
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="hard deadline for the whole run"
    )
    parser.add_argument("--vae-dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--no-project", action="store_true", help="bare diffusers only")
    args = parser.parse_args(argv)
    deadline = Deadline(args.budget_s)

    import torch

    quiet()
    cuda = torch.cuda.is_available() and not args.tiny
    if not args.tiny and not cuda:
        log("no CUDA device: use --tiny for the CPU smoke run")
        return 2
    size = dict(TINY if args.tiny else FULL)
    if args.steps:
        size["steps"] = args.steps
    names = [
        n.strip()
        for n in (args.configs or (TINY_CONFIGS if args.tiny else DEFAULT_CONFIGS)).split(",")
    ]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; known: {', '.join(SETTINGS)}")

    project = Project(error="--no-project") if args.no_project else load_project()
    report = JsonReport(
        args.out,
        benchmark="gpu_throughput",
        command="python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        machine=machine_info(),
        size=size,
        model="tiny random Wan (tests/tiny_models.py)"
        if args.tiny
        else "Wan2.1-T2V-1.3B, random weights",
        configs_requested=names,
        note=CACHE_NOTE,
        extrapolation=(
            f"clip_{size['extrapolate']}_steps_estimate = text encoding + {size['extrapolate']} x median step"
            f" (steps 2..{size['steps']}) + VAE decode + rest, from runs of {size['steps']} steps"
        ),
        attention_packages=attention_probe(),
        project=project.error or "pipeline.generator",
        project_has_from_pipe=project.has_from_pipe(),
    )
    log(
        f"gpu_throughput: {report.data['model']}, {size['width']}x{size['height']}x{size['frames']},"
        f" {size['steps']} steps, guidance {size['guidance']}; budget {args.budget_s:.0f} s"
    )
    log(f"NOTE: {CACHE_NOTE}")
    if project.error:
        log(f"project path: {project.error}")
    elif not project.has_from_pipe():
        log(
            "project path: VideoGenerator.from_pipe is missing; the bench wraps the built pipeline with the"
            " project's own memory/speed functions instead (see bench/common.py: _emulated_from_pipe)"
        )

    with tempfile.TemporaryDirectory(prefix="bench-tiny-") as tmp:
        tiny_dir = None
        if args.tiny:
            from tests.fakes.tiny_models import build_tiny_wan

            tiny_dir = build_tiny_wan(Path(tmp) / "tiny-wan")
        for name in names:
            if deadline.left < (5 if args.tiny else SETTINGS[name].min_left_s):
                report.data.setdefault("skipped", []).append(name)
                report.flush()
                log(f"[{name}] skipped: budget spent ({deadline.left:.0f} s left)")
                continue
            log(f"[{name}] {deadline.left:.0f} s left")
            run_setting(
                name,
                SETTINGS[name],
                args=args,
                project=project,
                cuda=cuda,
                size=size,
                tiny_dir=tiny_dir,
                deadline=deadline,
                report=report,
            )
    report["elapsed_s"] = round(time.monotonic() - deadline.start, 1)
    log("")
    print_table(report, size["extrapolate"])
    log(f"NOTE: {CACHE_NOTE}")
    log("SUMMARY " + json.dumps(compact_summary(report), separators=(",", ":")))
    log(f"wrote {args.out} in {report.data['elapsed_s']} s")
    if args.tiny:  # CI smoke: every code path must have run
        broken = [
            name
            for name, entry in report.data.get("configs", {}).items()
            if entry.get("error") or (not args.no_project and "project" not in entry)
        ]
        if broken or report.data.get("skipped"):
            log(f"smoke check failed: {broken or report.data.get('skipped')}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
