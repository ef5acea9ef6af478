"""CLI: ``python -m pipeline "кот играет на пианино в космосе" -o cat.mp4 [--steps N ...]``.

Option values go through the same typing code as the bot's ``/generate`` (options written inside
the prompt text work too), so the CLI and the bot accept and reject exactly the same things.
Bad options and missing models end with one line on stderr and a non-zero exit code.

``python -m pipeline calibrate-cache --model DIR -o ratios.json`` measures a model's MagCache
ratios for the balanced tier (:mod:`pipeline.calibrate`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from pipeline.errors import GenerationOOM, ModelLoadError, VideoTooLarge
from pipeline.options import (
    DEFAULT_QUALITY,
    QUALITIES,
    OptionError,
    OptionOverrides,
    overrides_from_values,
    parse_request,
    resolve_options,
)
from pipeline.progress import GenerationCancelled, Progress, Stage

if TYPE_CHECKING:
    from pipeline.image import FittedImage
    from pipeline.text2video import TextToVideo

EXIT_OPTIONS = 2
EXIT_MODEL = 3
EXIT_FAILED = 1
OPTION_FLAGS = ("steps", "seed", "frames", "fps", "size", "guidance", "negative")
MEMORY_MODES = ("auto", "resident", "model_offload", "group_offload")
DISTRIBUTION = "ru-text2video-bot"


def env(name: str, default: str) -> str:
    """A flag's default from the bot's environment variable (bot/config.py); empty = unset."""
    return os.environ.get(name) or default


def version_text() -> str:
    """The installed package's version and the libraries that decide what a run produces."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    libraries = ", ".join(f"{n} {of(n)}" for n in ("diffusers", "transformers", "torch", "av"))
    return f"{DISTRIBUTION} {of(DISTRIBUTION)} ({libraries})"


class _Version(argparse.Action):
    """``--version``: one unwrapped line (argparse's own action re-wraps it), then exit 0."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs):
        kwargs.setdefault("help", "print the version and the libraries' versions, then exit")
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> NoReturn:
        print(version_text())
        parser.exit(0)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line instead of argparse's usage block."""
        self.exit(EXIT_OPTIONS, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from pipeline.generator import DEFAULT_MODEL
    from pipeline.text2video import DEFAULT_TRANSLATOR

    p = _Parser(prog="python -m pipeline", description="Russian or English text → MP4 video.")
    p.add_argument("prompt", nargs="+", help="what the video shows (options may be inside too)")
    p.add_argument("--version", action=_Version)
    p.add_argument("-o", "--output", default="video.mp4", help="MP4 path (default: video.mp4)")
    p.add_argument(
        "--image",
        help="a photo to animate (JPEG, PNG, WebP…): renders with the image-to-video model"
        " (--i2v-model); the video takes the photo's closest aspect (16:9, 9:16 or 1:1)",
    )
    opts = p.add_argument_group("generation options (as in the bot's /generate)")
    opts.add_argument("--steps", help="denoising steps")
    opts.add_argument("--seed", help="random seed (default: random, always printed)")
    opts.add_argument("--frames", help="number of frames (Wan: 4k+1)")
    opts.add_argument("--fps", help="frames per second of the MP4")
    opts.add_argument("--size", help="WxH, e.g. 832x480")
    opts.add_argument("--guidance", help="classifier-free guidance scale")
    opts.add_argument("--negative", help="negative prompt")
    model = p.add_argument_group("model and hardware")
    model.add_argument("--model", default=env("T2V_MODEL", DEFAULT_MODEL))
    model.add_argument(
        "--i2v-model",
        default=os.environ.get("I2V_MODEL") or None,
        help="image-to-video pipeline used with --image (default: $I2V_MODEL)",
    )
    model.add_argument(
        "--translator",
        default=env("TRANSLATOR_MODEL", DEFAULT_TRANSLATOR),
        help="Hub id or directory of a ru→en seq2seq model, or 'none'",
    )
    model.add_argument(
        "--translator-device",
        default=env("TRANSLATOR_DEVICE", "cpu"),
        help="where the translator runs (default: $TRANSLATOR_DEVICE or cpu)",
    )
    model.add_argument("--no-translate", action="store_true", help="give the model the text as is")
    model.add_argument(
        "--improve",
        action="store_true",
        help="turn the text into a detailed English prompt with the prompt model (translation "
        "and extension in one pass; the plain translation if it fails)",
    )
    model.add_argument(
        "--prompt-model",
        default=env("PROMPT_MODEL", ""),
        help="instruct LLM of --improve, Hub id or directory (default: $PROMPT_MODEL)",
    )
    model.add_argument("--device", default=env("DEVICE", "auto"))
    model.add_argument(
        "--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32")
    )
    model.add_argument(
        "--memory-mode",
        default=env("MEMORY_MODE", "auto"),
        choices=MEMORY_MODES,
        help="default: $MEMORY_MODE or auto (picked from free VRAM)",
    )
    model.add_argument("--vae-tiling", action=argparse.BooleanOptionalAction, default=None)
    quality = p.add_argument_group("quality tiers and speed")
    quality.add_argument(
        "--quality",
        choices=QUALITIES,
        default=os.environ.get("DEFAULT_QUALITY") or DEFAULT_QUALITY,
        help="best: the model as published; balanced: + MagCache step cache; fast: 4-step"
        " distilled weights (--fast-lora / --fast-transformer), else fewer steps",
    )
    quality.add_argument(
        "--fast-lora",
        default=os.environ.get("FAST_LORA") or None,
        help="step-distilled LoRA for the fast tier: file, directory, Hub id or"
        " owner/repo/file.safetensors (fused into a copy of the transformer)",
    )
    quality.add_argument("--fast-lora-scale", type=float, default=1.0)
    quality.add_argument(
        "--fast-transformer",
        default=os.environ.get("FAST_TRANSFORMER") or None,
        help="step-distilled transformer for the fast tier (directory, file or Hub id)",
    )
    quality.add_argument(
        "--fast-steps",
        type=int,
        default=int(os.environ["FAST_STEPS"]) if os.environ.get("FAST_STEPS") else None,
        help="steps of the fast tier (default 4 with distilled weights, else half)",
    )
    quality.add_argument("--fast-shift", type=float, help="flow shift of the fast sampler (5)")
    quality.add_argument(
        "--cache-ratios", help="MagCache data file for the balanced tier (calibrate-cache)"
    )
    quality.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default=os.environ.get("COMPILE") or "auto",
        help="regional torch.compile (auto: on CUDA)",
    )
    quality.add_argument("--compile-cache-dir", help="keep compiled code here across runs")
    quality.add_argument(
        "--quantize",
        choices=("none", "fp8"),
        default=os.environ.get("QUANTIZE") or "none",
        help="fp8: torchao float8 weights and activations (Ada/Hopper GPUs)",
    )
    quality.add_argument(
        "--attention-backend",
        default=os.environ.get("ATTENTION_BACKEND") or None,
        help="diffusers attention backend, e.g. _native_cudnn, flash, sage_hub",
    )
    p.add_argument("--max-mb", type=float, help="re-encode to fit this many MB (Telegram: 50)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def request_overrides(
    prompt_words: list[str], args: argparse.Namespace
) -> tuple[str, OptionOverrides]:
    """The prompt and its overrides: options written in the text, then the flags (never both)."""
    parsed = parse_request(" ".join(prompt_words))
    flags = {name: getattr(args, name) for name in OPTION_FLAGS if getattr(args, name) is not None}
    from_flags = overrides_from_values(flags)
    for f in fields(OptionOverrides):
        if (
            getattr(from_flags, f.name) is not None
            and getattr(parsed.overrides, f.name) is not None
        ):
            option = {"width": "size", "height": "size", "negative_prompt": "negative"}.get(
                f.name, f.name
            )
            raise OptionError("duplicate", option, "is given twice (in the text and as a flag)")
    return parsed.prompt, from_flags.merged_over(parsed.overrides)


class ProgressBar:
    """One updating line on stderr per stage; the denoise stage gets a bar."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30):
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()

    def __call__(self, p: Progress) -> None:
        done = p.total > 0 and p.step >= p.total
        if p.stage is Stage.DENOISE:
            filled = int(self.width * p.fraction)
            bar = "#" * filled + "-" * (self.width - filled)
            line = f"{p.stage.value:<12} [{bar}] {p.step}/{p.total}  {p.elapsed:6.1f}s"
        else:
            line = f"{p.stage.value:<12} {'done' if done else '...'}  {p.elapsed:6.1f}s"
        if self.tty:
            self.stream.write("\r" + line.ljust(72) + ("\n" if done else ""))
        elif done:
            self.stream.write(line + "\n")
        self.stream.flush()


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "calibrate-cache":
        from pipeline.calibrate import main as calibrate

        return calibrate(argv[1:])
    args = build_parser().parse_args(argv)
    if args.memory_mode not in MEMORY_MODES:  # argparse checks choices of given flags only
        return _fail(
            EXIT_OPTIONS,
            f"error: MEMORY_MODE={args.memory_mode!r} is not one of {', '.join(MEMORY_MODES)}",
        )
    try:
        prompt, overrides = request_overrides(args.prompt, args)
    except OptionError as exc:
        return _fail(EXIT_OPTIONS, f"error: {_describe(exc)}")
    if args.improve and not args.prompt_model:
        return _fail(
            EXIT_OPTIONS, "error: --improve needs a prompt model (--prompt-model or PROMPT_MODEL)"
        )

    photo: bytes | None = None
    if args.image:
        from pipeline.image import ImageError, open_image, read_image_file

        if not args.i2v_model:
            return _fail(EXIT_OPTIONS, "error: --image needs an image-to-video model (--i2v-model)")
        try:
            photo = read_image_file(args.image)
            open_image(photo)  # a bad photo fails before any model is loaded
        except OSError as exc:
            return _fail(EXIT_OPTIONS, f"error: cannot read {args.image}: {exc.strerror or exc}")
        except ImageError as exc:
            return _fail(EXIT_OPTIONS, f"error: {args.image}: {exc}")
        args.model = args.i2v_model

    from pipeline.presets import looks_like_path, read_class_name

    if looks_like_path(args.model):  # a missing directory fails before torch is even imported
        try:
            read_class_name(args.model)
        except ModelLoadError as exc:
            return _fail(EXIT_MODEL, f"error: {exc}")
    _quiet_libraries()
    from pipeline.generator import GeneratorConfig
    from pipeline.text2video import TextToVideo

    config = GeneratorConfig(
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        memory_mode=args.memory_mode,
        vae_tiling=args.vae_tiling,
        compile=args.compile,
        compile_cache_dir=args.compile_cache_dir,
        attention_backend=args.attention_backend,
        quantize=None if args.quantize == "none" else args.quantize,
        fast_lora=args.fast_lora,
        fast_lora_scale=args.fast_lora_scale,
        fast_transformer=args.fast_transformer,
        fast_steps=args.fast_steps,
        cache_ratios=args.cache_ratios,
        preview=False,  # a terminal shows no pictures: no preview work during the render
        **({"fast_shift": args.fast_shift} if args.fast_shift else {}),
    )
    start = time.perf_counter()
    try:
        t2v = TextToVideo.load(
            config,
            translator_model=args.translator,
            translator_device=args.translator_device,
            prompt_model=args.prompt_model if args.improve else None,
            prompt_device=os.environ.get("PROMPT_DEVICE") or "auto",
        )
        overrides = overrides.merged_over(t2v.tier_overrides(args.quality))  # explicit ones win
        fitted = None
        if photo is not None:
            fitted, overrides = _fit_photo(photo, overrides, t2v)
        options = resolve_options(prompt, overrides, t2v.defaults, t2v.limits)
    except OptionError as exc:
        return _fail(EXIT_OPTIONS, f"error: {_describe(exc)}")
    except (ModelLoadError, ValueError) as exc:
        return _fail(EXIT_MODEL, f"error: {exc}")
    loaded = time.perf_counter()

    def on_progress(p: Progress) -> None:
        if p.stage is Stage.TRANSLATE and p.step == 1:
            print(f"prompt: {p.detail}", flush=True)
        if bar is not None:
            bar(p)

    bar = None if args.quiet else ProgressBar()
    max_bytes = int(args.max_mb * 1e6) if args.max_mb else None
    try:
        result = t2v.run(
            options,
            Path(args.output),
            translate=not args.no_translate,
            on_progress=on_progress,
            max_bytes=max_bytes,
            improve=args.improve,
            **({"image": fitted.data} if fitted is not None else {}),
        )
    except GenerationOOM as exc:
        return _fail(
            EXIT_FAILED,
            f"error: {exc} (try fewer frames, a smaller size or --memory-mode group_offload)",
        )
    except VideoTooLarge as exc:
        return _fail(EXIT_FAILED, f"error: {exc}")
    except (GenerationCancelled, KeyboardInterrupt):
        return _fail(130, "cancelled")
    video = result.video
    if fitted is not None:
        print(
            f"photo: {fitted.source_width}x{fitted.source_height} {fitted.source_format}"
            f" → {fitted.width}x{fitted.height} ({fitted.aspect})"
        )
    print(
        f"saved: {video.path} ({video.width}x{video.height}, {video.frames} frames, {video.fps} fps,"
        f" {video.duration:.2f} s, {video.size_bytes / 1e3:.0f} kB)"
    )
    print(f"seed: {result.seed}")
    print(f"quality: {options.quality}, {options.steps} steps, guidance {options.guidance:g}")
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items() if k != "total")
    print(
        f"time: {result.timings['total']:.1f} s ({stages}; model load {loaded - start:.1f} s)"
        f" on {t2v.device_info()}"
    )
    return 0


def _fit_photo(
    photo: bytes, overrides: OptionOverrides, t2v: TextToVideo
) -> tuple[FittedImage, OptionOverrides]:
    """The photo fitted to the image-to-video model, and the overrides with its size: the
    photo's closest aspect, about the pixels of ``--size`` (or of the model's default size)."""
    from dataclasses import replace

    from pipeline.image import prepare_image

    model = t2v.image_model
    if model is None:
        raise ModelLoadError("the --i2v-model is not an image-to-video pipeline")
    width = overrides.width or model.defaults.width
    height = overrides.height or model.defaults.height
    fitted = prepare_image(photo, width * height, model.limits)
    return fitted, replace(overrides, width=fitted.width, height=fitted.height)


def _describe(exc: OptionError) -> str:
    text = str(exc)
    return f"{text}, got {exc.value}" if exc.value else text


def _fail(code: int, message: str) -> int:
    print(" ".join(message.split()), file=sys.stderr)  # always exactly one line
    return code


if __name__ == "__main__":
    sys.exit(main())
