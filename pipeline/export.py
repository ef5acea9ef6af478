"""uint8 frames → an MP4 that Telegram plays inline, plus its JPEG thumbnail and facts.

Uses imageio-ffmpeg's bundled ffmpeg (no system ffmpeg): H.264 yuv420p with even sides (the
format every phone decodes), ``+faststart`` so playback starts before the download ends, and a
silent AAC track, because Telegram shows a clip without audio like a GIF, with no seek bar.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import VideoTooLarge

__all__ = ["VideoFile", "VideoTooLarge", "export_mp4", "probe", "write_thumbnail"]

THUMB_SIDE = 320
THUMB_MAX_BYTES = 200 * 1024
AUDIO_BITRATE = 32_000  # bits/s of the silent AAC track, counted against a byte cap
CONTAINER_OVERHEAD = 8 * 1024  # moov atom and headers, bytes
MIN_VIDEO_BITRATE = 20_000  # bits/s below which a re-encode is pointless


@dataclass(frozen=True)
class VideoFile:
    """Facts about a written MP4, read back from the file itself."""

    path: Path
    thumbnail: Path
    width: int
    height: int
    duration: float
    frames: int
    fps: int
    size_bytes: int
    has_audio: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts (paths as strings), e.g. for the job's ``video_meta``."""
        data = asdict(self)
        data["path"], data["thumbnail"] = str(self.path), str(self.thumbnail)
        return data


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _check_frames(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def _encode(
    frames: np.ndarray,
    path: Path,
    fps: int,
    *,
    crf: int | None = None,
    bitrate: int | None = None,
    scale: float = 1.0,
) -> int:
    """One ffmpeg run; raw rgb24 frames go in through stdin. Returns the file size."""
    count, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    if scale < 1.0:
        vf = f"scale=trunc(iw*{scale}/2)*2:trunc(ih*{scale}/2)*2:flags=area"
    else:
        vf = "pad=ceil(iw/2)*2:ceil(ih/2)*2"  # yuv420p needs even sides
    rate = ["-crf", str(crf)] if bitrate is None else [
        "-b:v", str(bitrate), "-maxrate", str(bitrate), "-bufsize", str(2 * bitrate),
    ]  # fmt: skip
    cmd = [
        ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps),
        "-i", "-",
        "-f", "lavfi", "-i", "anullsrc=channel_layout=stereo:sample_rate=44100",
        "-map", "0:v:0", "-map", "1:a:0", "-vf", vf,
        "-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p", *rate,
        "-c:a", "aac", "-b:a", str(AUDIO_BITRATE),
        # every frame, and audio cut to the video's length (-shortest may drop trailing frames)
        "-frames:v", str(count), "-t", f"{count / fps:.6f}",
        "-movflags", "+faststart", "-f", "mp4", str(path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=False)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg failed: {message[-1] if message else proc.returncode}")
    return path.stat().st_size


_VIDEO_RE = re.compile(r"Stream #\S+.*?Video: .*?, (\d{1,5})x(\d{1,5})\b")
_AUDIO_RE = re.compile(r"Stream #\S+.*?Audio: ")


def probe(path: Path) -> dict[str, Any]:
    """Width, height, frame count, duration and audio presence, read back from the file."""
    import imageio_ffmpeg

    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, check=False
    )
    info = proc.stderr.decode("utf-8", "replace")
    video = _VIDEO_RE.search(info)
    if video is None:
        raise RuntimeError(f"no video stream in {path}")
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    return {
        "width": int(video.group(1)),
        "height": int(video.group(2)),
        "frames": int(frames),
        "duration": float(seconds),
        "has_audio": bool(_AUDIO_RE.search(info)),
    }


def write_thumbnail(frame: np.ndarray, path: Path) -> Path:
    """JPEG ≤ 320 px on the longest side and ≤ 200 kB, as Telegram requires of thumbnails."""
    from PIL import Image

    image = Image.fromarray(frame).convert("RGB")
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    quality = 90
    while True:
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality, optimize=True)
        if buf.tell() <= THUMB_MAX_BYTES:
            break
        if quality > 30:
            quality -= 15
        else:
            image = image.resize((max(1, image.width // 2), max(1, image.height // 2)))
    path.write_bytes(buf.getvalue())
    return path


def export_mp4(
    frames: np.ndarray,
    path: str | os.PathLike[str],
    fps: int,
    *,
    max_bytes: int | None = None,
    crf: int = 18,
) -> VideoFile:
    """Write ``frames`` (uint8 [F,H,W,3]) to ``path`` and a thumbnail beside it (``.jpg``).

    Over ``max_bytes`` the clip is re-encoded at a bitrate computed from the cap (two tries),
    then at half size; :class:`VideoTooLarge` says by how much it still misses.
    """
    frames = _check_frames(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part.mp4")
    duration = frames.shape[0] / fps
    try:
        size = _encode(frames, tmp, fps, crf=crf)
        if max_bytes is not None and size > max_bytes:
            size = _fit_cap(frames, tmp, fps, max_bytes, size, duration)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    facts = probe(path)
    thumbnail = write_thumbnail(frames[len(frames) // 2], path.with_suffix(".jpg"))
    return VideoFile(
        path=path,
        thumbnail=thumbnail,
        width=facts["width"],
        height=facts["height"],
        duration=round(frames.shape[0] / fps, 3),  # exact; ffmpeg's read-back is rounded
        frames=facts["frames"],
        fps=fps,
        size_bytes=path.stat().st_size,
        has_audio=facts["has_audio"],
    )


def _fit_cap(
    frames: np.ndarray, tmp: Path, fps: int, max_bytes: int, first: int, duration: float
) -> int:
    """Re-encode at bitrates derived from the cap: two tries at full size, one at half size."""
    budget = (max_bytes - CONTAINER_OVERHEAD) * 8 / duration - AUDIO_BITRATE
    bitrate = int(budget * 0.9)
    size = first
    for scale in (1.0, 1.0, 0.5):
        if bitrate < MIN_VIDEO_BITRATE:
            break
        size = _encode(frames, tmp, fps, bitrate=bitrate, scale=scale)
        if size <= max_bytes:
            return size
        bitrate = int(bitrate * max_bytes / size * 0.85)  # overshot: aim lower by the miss
    raise VideoTooLarge(
        f"video is {human_bytes(first)} and cannot be brought under the {human_bytes(max_bytes)}"
        f" limit (best try {human_bytes(size)}): ask for fewer frames or a smaller size"
    )


def human_bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
