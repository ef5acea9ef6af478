"""Progress reports and cancellation, the only two hooks between a run and whoever watches it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Stage(str, Enum):
    TRANSLATE = "translate"
    ENCODE_TEXT = "encode_text"
    DENOISE = "denoise"
    DECODE = "decode"
    ENCODE_VIDEO = "encode_video"


@dataclass(frozen=True)
class PreviewImage:
    """A small JPEG of what the render is forming (``pipeline/preview.py``), made at ``step``."""

    jpeg: bytes
    width: int
    height: int
    step: int


@dataclass(frozen=True)
class Progress:
    """One report: ``step`` of ``total`` in ``stage``; ``elapsed`` is seconds since the run started.

    ``preview``: now and then a denoising report carries a :class:`PreviewImage` (``PREVIEW=on``)."""

    stage: Stage
    step: int
    total: int
    elapsed: float
    detail: str | None = None
    preview: PreviewImage | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


class GenerationCancelled(Exception):
    """The run was stopped by its cancel flag; nothing was produced."""
