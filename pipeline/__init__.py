"""Russian text → short video with Hugging Face diffusers: options, translation, generation, MP4 export."""

from pipeline.options import (
    GenerationDefaults,
    GenerationOptions,
    ModelLimits,
    OptionError,
    OptionOverrides,
    parse_request,
    resolve_options,
)
from pipeline.progress import GenerationCancelled, Progress, Stage

__all__ = [
    "GenerationCancelled",
    "GenerationDefaults",
    "GenerationOptions",
    "ModelLimits",
    "OptionError",
    "OptionOverrides",
    "Progress",
    "Stage",
    "parse_request",
    "resolve_options",
]
