"""What each text-to-video family needs beyond its pipeline's ``__call__`` signature.

diffusers already puts each model's height, width, frame count, steps and guidance in the
signature of ``__call__``; a preset adds only what the signature lacks: the playback fps, the frame
and side rules, whether the text encoder reads Russian, and a default negative prompt.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pipeline.errors import ModelLoadError
from pipeline.options import (
    GenerationDefaults,
    ModelLimits,
    OptionError,
    OptionOverrides,
    fit_size,
    resolve_options,
)

WAN_NEGATIVE = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, "
    "static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, "
    "extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, "
    "fused fingers, still picture, messy background, three legs, many people in the background, "
    "walking backwards"
)
LTX_NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"
KANDINSKY_NEGATIVE = (
    "Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, "
    "ugly, deformed, walking backwards"
)


@dataclass(frozen=True)
class ModelPreset:
    """Facts about a family that its ``__call__`` signature does not state.

    ``max_sequence_length`` is ``None`` when the family's signature default should be used.
    The ``default_*`` fields are used only where the signature gives ``None`` (CogVideoX).
    """

    family: str
    fps: int
    frame_multiple: int = 1
    frame_remainder: int = 0
    side_multiple: int = 16
    reads_russian: bool = False
    negative_prompt: str = ""
    max_sequence_length: int | None = None
    max_pixels: int | None = None
    default_width: int = 832
    default_height: int = 480
    default_frames: int = 49


PRESETS: dict[str, ModelPreset] = {
    "WanPipeline": ModelPreset(
        family="wan",
        fps=16,
        frame_multiple=4,
        frame_remainder=1,
        side_multiple=16,
        negative_prompt=WAN_NEGATIVE,
        max_sequence_length=512,
        max_pixels=1280 * 720,
    ),
    "LTXPipeline": ModelPreset(
        family="ltx",
        fps=24,
        frame_multiple=8,
        frame_remainder=1,
        side_multiple=32,
        negative_prompt=LTX_NEGATIVE,
        max_sequence_length=128,
    ),
    "CogVideoXPipeline": ModelPreset(
        family="cogvideox",
        fps=8,
        frame_multiple=4,
        frame_remainder=1,
        side_multiple=16,
        max_sequence_length=226,
        default_width=720,
        default_height=480,
        default_frames=49,
    ),
    "Kandinsky5T2VPipeline": ModelPreset(
        family="kandinsky5",
        fps=24,
        frame_multiple=4,
        frame_remainder=1,
        side_multiple=16,
        reads_russian=True,
        negative_prompt=KANDINSKY_NEGATIVE,
        max_sequence_length=512,
    ),
}
# Image-to-video pipelines of the same families: same fps, frame and side rules, same encoder.
PRESETS["WanImageToVideoPipeline"] = PRESETS["WanPipeline"]
PRESETS["LTXImageToVideoPipeline"] = PRESETS["LTXPipeline"]
GENERIC = ModelPreset(family="generic", fps=16)


def preset_for(pipeline_class_name: str) -> ModelPreset:
    """The preset of a pipeline class, or the generic one (signature defaults, 16 fps)."""
    return PRESETS.get(pipeline_class_name, GENERIC)


def looks_like_path(model: str) -> bool:
    """A local directory rather than a Hub id ("org/name" has exactly one slash and no prefix)."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
        or Path(model).expanduser().exists()
    )


def read_class_name(model: str, revision: str | None = None) -> str:
    """``_class_name`` from ``model_index.json`` of a local dir or a (cached) Hub snapshot
    (``revision``: a branch, tag or commit of the Hub repository)."""
    if looks_like_path(model):
        index = Path(model).expanduser() / "model_index.json"
        if not Path(model).expanduser().is_dir():
            raise ModelLoadError(f"model directory not found: {model}")
        if not index.is_file():
            raise ModelLoadError(f"not a diffusers pipeline (no model_index.json): {model}")
        try:
            config = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"unreadable model_index.json in {model}: {exc}") from exc
    else:
        from diffusers import DiffusionPipeline

        try:
            config = DiffusionPipeline.load_config(model, revision=revision)
        except Exception as exc:  # offline without cache, typo, gated repo...
            raise ModelLoadError(
                f"cannot read {model} from the Hub or its local cache: {one_line(exc)}"
            ) from exc
    name = config.get("_class_name") if isinstance(config, dict) else None
    if not name:
        raise ModelLoadError(f"model_index.json of {model} names no pipeline class")
    return str(name)


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's text, for one-line user-facing errors."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:300]
    return type(exc).__name__


def signature_defaults(pipe: Any) -> dict[str, Any]:
    """The generation defaults diffusers wrote into ``pipe.__call__``'s signature."""
    wanted = (
        "height",
        "width",
        "num_frames",
        "num_inference_steps",
        "guidance_scale",
        "max_sequence_length",
        "frame_rate",
    )
    params = inspect.signature(pipe.__call__).parameters
    return {
        name: params[name].default
        for name in wanted
        if name in params and params[name].default is not inspect.Parameter.empty
    }


def _config_value(module: Any, name: str) -> Any:
    config = getattr(module, "config", None)
    return getattr(config, name, None) if config is not None else None


def side_multiple_of(pipe: Any, preset: ModelPreset) -> int:
    """Sides must be a multiple of the VAE's spatial factor times the patch size (Wan 2.2 5B: 32)."""
    vae_factor = getattr(pipe, "vae_scale_factor_spatial", None)
    patch = _config_value(getattr(pipe, "transformer", None), "patch_size")
    if isinstance(vae_factor, int) and patch is not None:
        p = patch[-1] if isinstance(patch, (list, tuple)) else patch
        if isinstance(p, int) and p > 0:
            return max(preset.side_multiple, vae_factor * p)
    return preset.side_multiple


def defaults_and_limits(pipe: Any, preset: ModelPreset) -> tuple[GenerationDefaults, ModelLimits]:
    """The model's own defaults and limits (the operator's ``DEFAULT_*`` / ``MAX_*`` go on top
    with :func:`apply_overrides`, the one place that does it)."""
    sig = signature_defaults(pipe)
    transformer = getattr(pipe, "transformer", None)
    vae_spatial = getattr(pipe, "vae_scale_factor_spatial", 8)
    width = sig.get("width")
    height = sig.get("height")
    frames = sig.get("num_frames")
    if width is None:  # CogVideoX: "defaults to transformer.config.sample_width * vae factor"
        sample = _config_value(transformer, "sample_width")
        width = sample * vae_spatial if sample else preset.default_width
    if height is None:
        sample = _config_value(transformer, "sample_height")
        height = sample * vae_spatial if sample else preset.default_height
    if frames is None:
        frames = _config_value(transformer, "sample_frames") or preset.default_frames
    defaults = GenerationDefaults(
        steps=int(sig.get("num_inference_steps") or 50),
        frames=int(frames),
        fps=int(sig.get("frame_rate") or preset.fps),  # LTX states its own frame rate
        width=int(width),
        height=int(height),
        guidance=float(sig.get("guidance_scale") or 5.0),
        negative_prompt=preset.negative_prompt,
    )
    limits = ModelLimits(
        max_steps=max(100, defaults.steps),
        max_frames=max(defaults.frames, preset.frame_multiple + preset.frame_remainder),
        frame_multiple=preset.frame_multiple,
        frame_remainder=preset.frame_remainder,
        side_multiple=side_multiple_of(pipe, preset),
        max_pixels=max(defaults.width * defaults.height, preset.max_pixels or 0),
    )
    return defaults, limits


def apply_overrides(
    defaults: GenerationDefaults,
    limits: ModelLimits,
    defaults_override: dict[str, Any] | None = None,
    limits_override: dict[str, Any] | None = None,
) -> tuple[GenerationDefaults, ModelLimits]:
    """Operator bounds over model limits, operator defaults over model defaults, checked together.

    The only implementation of ``DEFAULT_*`` / ``MAX_*``: ``defaults_override`` takes
    :class:`GenerationDefaults` field names (``steps``, ``frames``, ``fps``, ``width``, ``height``,
    ``guidance``, ``negative_prompt``), ``limits_override`` :class:`ModelLimits` field names
    (``max_steps``, ``max_frames``, ``max_pixels``...); ``None`` values are ignored. Model
    defaults are lowered to fit the operator's limits; explicit operator defaults that do not
    fit raise ``ValueError`` naming the setting.
    """
    limits = replace(limits, **_known(ModelLimits, limits_override or {}, "limit"))
    explicit = _known(GenerationDefaults, defaults_override or {}, "default")
    # Model defaults shrink to the operator's bounds; explicit operator defaults are checked below.
    shrunk: dict[str, Any] = {}
    if "steps" not in explicit and defaults.steps > limits.max_steps:
        shrunk["steps"] = limits.max_steps
    if "frames" not in explicit and defaults.frames > limits.last_valid_frames():
        shrunk["frames"] = limits.last_valid_frames()
    if (
        "width" not in explicit
        and "height" not in explicit
        and defaults.width * defaults.height > limits.max_pixels
    ):
        shrunk["width"], shrunk["height"] = fit_size(
            defaults.width, defaults.height, limits.max_pixels, limits
        )
    defaults = replace(defaults, **shrunk, **explicit)
    try:
        resolve_options("check", OptionOverrides(seed=0), defaults, limits)
    except OptionError as exc:
        raise ValueError(f"default settings do not fit the model: {exc}") from exc
    return defaults, limits


def _known(cls: type, values: dict[str, Any], what: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {what} setting(s): {', '.join(sorted(unknown))}")
    return {k: v for k, v in values.items() if v is not None}
