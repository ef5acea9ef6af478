"""Reading an MP4 back with PyAV, independently of the code under test (which only encodes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Mp4:
    frames: list[np.ndarray]  # every decoded video frame, RGB uint8 [H, W, 3]
    width: int
    height: int
    fps: float  # the video stream's average frame rate
    codecs: list[str]  # one per stream, in order: e.g. ["h264", "aac"]
    pix_fmt: str | None
    audio_channels: int  # 0 without an audio stream


def read_mp4(path: Path | str) -> Mp4:
    """Decode every video frame of ``path`` and describe its streams."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        codecs = [stream.codec_context.name for stream in container.streams]
        audio = container.streams.audio
        channels = audio[0].codec_context.channels if audio else 0
        pix_fmt = video.codec_context.pix_fmt
        fps = float(video.average_rate) if video.average_rate else 0.0
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video)]
    height, width = frames[0].shape[:2]
    return Mp4(frames, width, height, fps, codecs, pix_fmt, channels)
