"""Russian text → short video with Hugging Face diffusers: options, translation, generation, MP4 export."""

from pipeline.errors import GenerationOOM, ModelLoadError, VideoTooLarge
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
    "GenerationOOM",
    "GenerationOptions",
    "ModelLimits",
    "ModelLoadError",
    "OptionError",
    "OptionOverrides",
    "Progress",
    "Stage",
    "VideoTooLarge",
    "parse_request",
    "resolve_options",
]
