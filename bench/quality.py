"""What each quality tier costs in picture quality: fixed Russian prompts, fixed seeds, every tier.

For each prompt of ``bench/data/prompts_ru.json`` (32 Russian requests: people, animals,
landscapes, fast motion, several subjects, styles, text in the scene) and each tier, the project
renders a clip with the prompt's fixed seed (``--seed-base`` + its index, the same in every tier)
and reports, per tier:

* **CLIP**: the mean cosine similarity between ``--clip-frames`` evenly spaced frames and the
  prompt's reference English text (``transformers.CLIPModel``; the model id is ``--clip-model``),
* **PSNR** and **SSIM** of the clip against the best tier's clip of the same prompt and seed
  (SSIM: Gaussian 11x11 window, sigma 1.5, on luma, per frame, averaged),
* **seconds** of the generator call (text encoding, denoising, decoding).

The video model gets the prompt the way a bot user's request reaches it: ``--prompt-source
translated`` (the project's Russian-to-English translator, the default), ``reference`` (the
committed English), or ``native`` (the Russian text itself, for a model that reads Russian such
as Kandinsky 5): the same harness compares translation with native Russian.

    python bench/quality.py --out bench/results/quality.json            # GPU, real weights
    python bench/quality.py --tiny --out /tmp/bench-quality.json        # CPU smoke, ~1 min

With ``--tiny`` every model is a tiny random one built here (Wan, translator, CLIP, a fast LoRA):
the numbers mean nothing, the plumbing is tested. With real weights, these figures are the
quality column of docs/performance.md; no tier becomes a default without them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gpu_tools import quiet
from bench.report import ROOT, JsonReport, fmt, log, machine_info, median

PROMPTS = ROOT / "bench" / "data" / "prompts_ru.json"
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
TIERS = ("best", "balanced", "fast")


# ---------------------------------------------------------------- metrics


def psnr(frames: Any, reference: Any) -> float:
    """PSNR in dB of uint8 clips [F, H, W, 3] (``inf`` when identical)."""
    import numpy as np

    diff = frames.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(frames: Any, reference: Any) -> float:
    """Mean SSIM (Wang et al. 2004) of uint8 clips [F, H, W, 3] on their luma."""
    import torch
    import torch.nn.functional as F

    def luma(x: Any) -> torch.Tensor:
        t = torch.from_numpy(x).double()
        return (0.299 * t[..., 0] + 0.587 * t[..., 1] + 0.114 * t[..., 2]).unsqueeze(1)

    x, y = luma(frames), luma(reference)
    size, sigma = 11, 1.5
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum()).reshape(1, 1, 1, -1)
    window = g.transpose(-1, -2) @ g  # [1, 1, 11, 11]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


class Clip:
    """CLIP text-to-frame similarity with any ``CLIPModel`` checkpoint."""

    def __init__(self, model_id: str, device: str) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.device = device
        self.model = CLIPModel.from_pretrained(model_id).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_id)
        self.images = AutoImageProcessor.from_pretrained(model_id)
        self.max_length = self.model.config.text_config.max_position_embeddings

    @staticmethod
    def _features(out: Any) -> Any:
        import torch

        features = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5
        return torch.nn.functional.normalize(features.float(), dim=-1)

    def text(self, text: str) -> Any:
        import torch

        enc = self.tokenizer(
            [text], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.no_grad():
            return self._features(self.model.get_text_features(**enc))

    def score(self, frames: Any, text_features: Any, count: int) -> float:
        import numpy as np
        import torch

        picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
        pixels = self.images(images=[frames[i] for i in picks], return_tensors="pt")
        with torch.no_grad():
            image_features = self._features(
                self.model.get_image_features(pixel_values=pixels["pixel_values"].to(self.device))
            )
        return float((image_features @ text_features.T).mean())


# ---------------------------------------------------------------- the run


def build_tiny(workdir: Path) -> dict[str, str]:
    """Tiny random stand-ins for every model the harness loads."""
    from tests.fakes.tiny_clip import build_tiny_clip
    from tests.fakes.tiny_loras import build_original_wan_lora
    from tests.fakes.tiny_models import build_tiny_marian, build_tiny_wan

    return {
        "model": str(build_tiny_wan(workdir / "wan")),
        "translator": str(build_tiny_marian(workdir / "marian")),
        "clip": str(build_tiny_clip(workdir / "clip")),
        "fast_lora": str(build_original_wan_lora(workdir / "fast-lora.safetensors")),
    }


def summarize(rows: list[dict[str, Any]], tiers: list[str]) -> dict[str, Any]:
    def mean(values: list[float]) -> float | None:
        values = [v for v in values if v is not None and math.isfinite(v)]
        return sum(values) / len(values) if values else None

    out: dict[str, Any] = {}
    for tier in tiers:
        mine = [r for r in rows if r["tier"] == tier and "error" not in r]
        out[tier] = {
            "n": len(mine),
            "errors": sum(1 for r in rows if r["tier"] == tier and "error" in r),
            "clip": mean([r["clip"] for r in mine]),
            "psnr_vs_best": mean([r.get("psnr") for r in mine]),
            "ssim_vs_best": mean([r.get("ssim") for r in mine]),
            "seconds_mean": mean([r["seconds"] for r in mine]),
            "seconds_median": median([r["seconds"] for r in mine]),
            "steps": mine[0]["steps"] if mine else None,
        }
    return out


def print_table(summary: dict[str, Any]) -> None:
    rows = [("tier", "n", "steps", "CLIP", "PSNR vs best dB", "SSIM vs best", "seconds")]
    for tier, s in summary.items():
        rows.append(
            (
                tier,
                str(s["n"]),
                str(s["steps"]),
                fmt(s["clip"], ".4f"),
                fmt(s["psnr_vs_best"], ".2f"),
                fmt(s["ssim_vs_best"], ".4f"),
                fmt(s["seconds_mean"], ".2f"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        log("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench/results/quality.json"))
    p.add_argument("--tiny", action="store_true", help="tiny random models on CPU (CI smoke)")
    p.add_argument("--model", default=os.environ.get("T2V_MODEL"), help="default: Wan 2.1 1.3B")
    p.add_argument("--translator", default=os.environ.get("TRANSLATOR_MODEL"))
    p.add_argument("--clip-model", default=DEFAULT_CLIP, help="a transformers CLIPModel id or dir")
    p.add_argument("--device", default=os.environ.get("DEVICE", "auto"))
    p.add_argument("--prompts", type=Path, default=PROMPTS)
    p.add_argument("--limit", type=int, help="only the first N prompts")
    p.add_argument("--tiers", default=",".join(TIERS))
    p.add_argument("--seed-base", type=int, default=1000)
    p.add_argument("--clip-frames", type=int, default=8, help="frames per clip CLIP looks at")
    p.add_argument(
        "--prompt-source", choices=("translated", "reference", "native"), default="translated"
    )
    p.add_argument("--size", help="WxH (default: the model's; --tiny: 64x64)")
    p.add_argument("--frames", type=int, help="default: the model's; --tiny: 9")
    p.add_argument("--steps", type=int, help="steps of best and balanced (default: the tier's)")
    p.add_argument("--fast-lora", default=os.environ.get("FAST_LORA") or None)
    p.add_argument("--fast-transformer", default=os.environ.get("FAST_TRANSFORMER") or None)
    p.add_argument("--compile", default=os.environ.get("COMPILE") or "auto")
    p.add_argument("--save-videos", type=Path, help="also write each clip as MP4 here")
    p.add_argument("--budget-s", type=float, default=3000.0, help="stop starting prompts after")
    args = p.parse_args(argv)
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    if unknown := [t for t in tiers if t not in TIERS]:
        p.error(f"unknown tier(s) {unknown}")
    tiers.sort(key=TIERS.index)  # best first: it is the reference of PSNR and SSIM
    start = time.monotonic()

    import torch

    quiet()
    if args.tiny:
        torch.set_num_threads(1)  # tiny models gain nothing from threads on shared cores
    prompts = json.loads(args.prompts.read_text("utf-8"))["prompts"][: args.limit]
    report = JsonReport(
        args.out,
        benchmark="quality",
        command="python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        machine=machine_info(),
        tiers=tiers,
        prompt_source=args.prompt_source,
        prompts_file=str(args.prompts),
        note="--tiny: random tiny models, the numbers mean nothing" if args.tiny else None,
    )
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        tiny = build_tiny(Path(tmp)) if args.tiny else {}
        return run(args, tiers, prompts, tiny, report, start)


def run(
    args: argparse.Namespace,
    tiers: list[str],
    prompts: list[dict[str, Any]],
    tiny: dict[str, str],
    report: JsonReport,
    start: float,
) -> int:
    from pipeline.export import export_mp4
    from pipeline.generator import DEFAULT_MODEL, GeneratorConfig
    from pipeline.options import OptionOverrides, resolve_options
    from pipeline.presets import apply_overrides
    from pipeline.quality import BUILTIN_DATA
    from pipeline.text2video import DEFAULT_TRANSLATOR, TextToVideo

    config = GeneratorConfig(
        model=tiny.get("model") or args.model or DEFAULT_MODEL,
        device="cpu" if args.tiny else args.device,
        compile=args.compile,
        fast_lora=tiny.get("fast_lora") or args.fast_lora,
        fast_transformer=None if args.tiny else args.fast_transformer,
        # the tiny Wan is not 1.3B: give it the built-in ratios (Wan 2.1 1.3B finds them itself)
        cache_ratios=str(ROOT / "pipeline" / "data" / BUILTIN_DATA) if args.tiny else None,
    )
    translator = tiny.get("translator") or args.translator or DEFAULT_TRANSLATOR
    t2v = TextToVideo.load(
        config, translator_model=None if args.prompt_source != "translated" else translator
    )
    clip = Clip(tiny.get("clip") or args.clip_model, "cpu" if args.tiny else t2v.generator.device)
    overrides: dict[str, Any] = {}
    if args.size or args.tiny:
        overrides["width"], overrides["height"] = (
            int(v) for v in (args.size or "64x64").lower().split("x")
        )
    if args.frames or args.tiny:
        overrides["frames"] = args.frames or 9
    defaults, limits = apply_overrides(t2v.defaults, t2v.limits, overrides)
    steps = args.steps or (8 if args.tiny else None)
    report["model"] = config.model
    report["size"] = f"{defaults.width}x{defaults.height}x{defaults.frames}"
    report["clip_model"] = "tiny random CLIP" if args.tiny else args.clip_model
    plans = {t: t2v.tier_plan(t, defaults, limits) for t in tiers}
    report["plans"] = {t: {"steps": plan.steps, "note": plan.note} for t, plan in plans.items()}
    log(f"quality: {config.model}, {report.data['size']}, tiers {', '.join(tiers)}")
    rows: list[dict[str, Any]] = []
    for index, prompt in enumerate(prompts):
        if time.monotonic() - start > args.budget_s:
            report["truncated"] = f"budget: stopped after {index} prompts"
            log(report.data["truncated"])
            break
        seed = args.seed_base + index
        if args.prompt_source == "translated":
            model_prompt = t2v.prompt_for_model(prompt["ru"])
        else:
            model_prompt = prompt["en"] if args.prompt_source == "reference" else prompt["ru"]
        text_features = clip.text(prompt["en"])
        reference = None
        for tier in tiers:
            row: dict[str, Any] = {"prompt": prompt["id"], "tier": tier, "seed": seed}
            try:
                asked = OptionOverrides(seed=seed, steps=steps if tier != "fast" else None)
                options = resolve_options(
                    prompt["ru"],
                    asked.merged_over(t2v.tier_overrides(tier, defaults, limits)),
                    defaults,
                    limits,
                )
                t0 = time.perf_counter()
                video = t2v.generator.generate(options, prompt_en=model_prompt)
                row.update(seconds=time.perf_counter() - t0, steps=options.steps)
                row["clip"] = clip.score(video.frames, text_features, args.clip_frames)
                if tier == "best":
                    reference = video.frames
                elif reference is not None:
                    row["psnr"] = psnr(video.frames, reference)
                    row["ssim"] = ssim(video.frames, reference)
                if args.save_videos:
                    name = f"{prompt['id']:02d}-{tier}.mp4"
                    export_mp4(video.frames, args.save_videos / name, video.fps)
            except Exception as exc:  # one failed clip is a row, not the end of the run
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            rows.append(row)
        report["rows"] = rows
        log(
            f"[{index + 1}/{len(prompts)}] {prompt['category']}: "
            + ", ".join(
                f"{r['tier']} {fmt(r.get('seconds'), '.1f')} s"
                for r in rows
                if r["prompt"] == prompt["id"]
            )
        )
    summary = summarize(rows, tiers)
    report["summary"] = summary
    report["elapsed_s"] = round(time.monotonic() - start, 1)
    log("")
    print_table(summary)
    log("SUMMARY " + json.dumps(summary, separators=(",", ":"), default=str))
    log(f"wrote {args.out} in {report.data['elapsed_s']} s")
    failed = [r for r in rows if "error" in r]
    for row in failed[:5]:
        log(f"error: prompt {row['prompt']} {row['tier']}: {row['error']}")
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    raise SystemExit(main())
