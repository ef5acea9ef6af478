"""A check of finished videos: a transformers image classifier on a few of their frames.

``NSFW_MODEL`` names any image-classification checkpoint (``AutoImageProcessor`` +
``AutoModelForImageClassification``; a Hub id read from the local cache, or a directory). Which
of its labels mean "not safe" is read from the model's own ``id2label``: every label whose name
contains ``nsfw``, ``porn``, ``explicit``, ``unsafe`` or ``hentai`` (``Falconsai/nsfw_image_detection``:
``nsfw``; GantMan-style five-class models: ``porn`` and ``hentai``); a checkpoint with no such
label is refused at load. A frame's score is the summed probability of those labels; a video is
flagged when its highest-scoring sampled frame reaches ``threshold``.

Frames are decoded with PyAV from the encoded MP4 — exactly what would be sent — evenly spread
over the clip (first and last included). Blocking: the bot calls it in its worker thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ModelLoadError
from pipeline.presets import looks_like_path, one_line

UNSAFE_WORDS = ("nsfw", "porn", "explicit", "unsafe", "hentai")
"""A label naming any of these is an "unsafe" label (case-insensitive)."""
DEFAULT_SAMPLES = 4
"""Frames looked at per video."""


def unsafe_labels(id2label: dict[Any, str]) -> list[int]:
    """The class ids whose label means not safe (``nsfw`` but not ``sfw``, ``porn``…)."""
    return [
        int(index)
        for index, label in id2label.items()
        if any(word in str(label).lower() for word in UNSAFE_WORDS)
    ]


def sample_frames(path: Path, samples: int = DEFAULT_SAMPLES) -> list[np.ndarray]:
    """Up to ``samples`` RGB frames (uint8 [H, W, 3]) evenly spread over the video at ``path``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads: decoding is most of the cost
        count = stream.frames  # from the MP4's index; 0 when unknown
        if count <= 0:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            return _spread(decoded, samples)
        picks = set(np.linspace(0, count - 1, min(samples, count)).round().astype(int).tolist())
        # Every frame must be decoded (inter-frame coding), only the picked ones converted.
        frames = [
            frame.to_ndarray(format="rgb24")
            for index, frame in enumerate(container.decode(video=0))
            if index in picks
        ]
    if not frames:
        raise RuntimeError(f"no frames in {path}")
    return frames


def _spread(frames: list[np.ndarray], samples: int) -> list[np.ndarray]:
    if not frames:
        raise RuntimeError("no frames in the video")
    if len(frames) <= samples:
        return frames
    picks = np.linspace(0, len(frames) - 1, samples).round().astype(int)
    return [frames[i] for i in sorted(set(picks.tolist()))]


def pick_device(device: str) -> str:
    """Where the classifier runs: the video model's GPU when there is one (``DEVICE`` ``auto``
    or ``cuda[:N]``; a ViT-Base takes ~0.4 GB and milliseconds there), else the CPU."""
    import torch

    if device.startswith("cuda"):
        return device
    if device == "auto" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


@dataclass(frozen=True)
class NsfwVerdict:
    flagged: bool
    score: float
    """The highest unsafe probability over the sampled frames."""
    label: str
    """The unsafe label that scored highest."""


class NsfwClassifier:
    """One loaded classifier; :meth:`check_video` is thread-safe (one call at a time)."""

    def __init__(
        self, processor: Any, model: Any, device: str = "cpu", threshold: float = 0.5
    ) -> None:
        self.processor = processor
        self.model = model
        self.device = device
        self.threshold = threshold
        self.unsafe = unsafe_labels(model.config.id2label)
        if not self.unsafe:
            labels = ", ".join(str(v) for v in model.config.id2label.values())
            raise ModelLoadError(
                f"NSFW_MODEL has no label meaning nsfw (labels: {labels}); one must contain "
                + "/".join(UNSAFE_WORDS)
            )
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str, device: str = "cpu", threshold: float = 0.5) -> NsfwClassifier:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        if looks_like_path(model) and not Path(model).expanduser().is_dir():
            raise ModelLoadError(f"NSFW_MODEL directory not found: {model}")
        try:
            processor = AutoImageProcessor.from_pretrained(model)
            classifier = AutoModelForImageClassification.from_pretrained(model)
        except Exception as exc:
            raise ModelLoadError(f"cannot load NSFW_MODEL {model}: {one_line(exc)}") from exc
        classifier.to(device).eval()
        return cls(processor, classifier, device, threshold)

    def score_frames(self, frames: list[np.ndarray]) -> tuple[float, str]:
        """The highest unsafe probability over ``frames`` and the label that gave it."""
        import torch

        with self._lock, torch.inference_mode():
            inputs = self.processor(images=list(frames), return_tensors="pt").to(self.device)
            probs = self.model(**inputs).logits.float().softmax(dim=-1)
        unsafe = probs[:, self.unsafe]
        best = unsafe.max(dim=0).values  # per unsafe label, over frames
        index = int(best.argmax())
        score = float(unsafe.sum(dim=-1).max())
        return score, str(self.model.config.id2label[self.unsafe[index]])

    def check_video(self, path: Path, samples: int = DEFAULT_SAMPLES) -> NsfwVerdict:
        score, label = self.score_frames(sample_frames(Path(path), samples))
        return NsfwVerdict(score >= self.threshold, score, label)
