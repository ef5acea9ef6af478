"""Typed failures of loading and generation, importable without torch so the bot can word them."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model (video or translator) cannot be loaded; the message is one line a person can act on."""


class GenerationOOM(RuntimeError):
    """The accelerator ran out of memory; fewer frames, a smaller size or another memory mode may fit."""


class VideoTooLarge(RuntimeError):
    """The encoded video cannot be brought under the byte cap, even at lower quality and size."""
