"""uint8 frames → an MP4 that Telegram plays inline, plus its JPEG thumbnail and facts.

Encoded in-process with PyAV (the FFmpeg libraries of its wheel: no ffmpeg binary, no
subprocess): H.264 yuv420p with even sides (the format every phone decodes), ``+faststart`` so
playback starts before the download ends, and a silent AAC track, because Telegram shows a clip
without audio like a GIF, with no seek bar. The facts are read back from the file's streams.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import VideoTooLarge

__all__ = ["VideoFile", "VideoTooLarge", "export_mp4", "probe", "write_thumbnail"]

THUMB_SIDE = 320
THUMB_MAX_BYTES = 200 * 1024
AUDIO_BITRATE = 32_000  # bits/s of the silent AAC track, counted against a byte cap
AUDIO_RATE = 44_100  # samples/s of the silent track
CONTAINER_OVERHEAD = 8 * 1024  # moov atom and headers, bytes
MIN_VIDEO_BITRATE = 20_000  # bits/s below which a re-encode is pointless
X264_PRESET = "medium"


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


def _check_frames(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise ValueError(f"frames must be uint8 [F, H, W, 3], got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def _even_sides(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides: an odd side gets one more row/column, a copy of its edge."""
    height, width = frames.shape[1], frames.shape[2]
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    return np.pad(frames, pad, mode="edge") if any(p[1] for p in pad) else frames


def _encode(
    frames: np.ndarray,
    path: Path,
    fps: int,
    *,
    crf: int | None = None,
    bitrate: int | None = None,
    scale: float = 1.0,
) -> int:
    """One encode of every frame plus a silent stereo AAC track as long as the video.

    ``crf`` (quality) or ``bitrate`` (bits/s, for a byte cap); ``scale`` < 1 shrinks both sides
    (area resampling, even sides). Returns the file size.
    """
    import av

    frames = _even_sides(frames)
    count, height, width = frames.shape[0], frames.shape[1], frames.shape[2]
    if scale < 1.0:
        width = max(2, int(width * scale) // 2 * 2)
        height = max(2, int(height * scale) // 2 * 2)
    if bitrate is None:
        rate_options = {"crf": str(crf if crf is not None else 18)}
    else:
        rate_options = {"maxrate": str(bitrate), "bufsize": str(2 * bitrate)}
    audio_samples = round(count * AUDIO_RATE / fps)  # the audio ends with the last frame
    with av.open(str(path), "w", format="mp4", container_options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": X264_PRESET, **rate_options}
        if bitrate is not None:
            video.bit_rate = bitrate
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        audio.bit_rate = AUDIO_BITRATE
        chunk = audio.codec_context.frame_size or 1024
        silence = np.zeros((2, chunk), dtype=np.float32)
        samples_done = 0
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if scale < 1.0:
                frame = frame.reformat(width, height, interpolation="AREA")
            frame.pts = index
            out.mux(video.encode(frame))
            # Interleave: audio up to the end of this frame, in AAC-sized chunks.
            until = min(audio_samples, round((index + 1) * AUDIO_RATE / fps))
            while samples_done + chunk <= until or (
                index == count - 1 and samples_done < audio_samples
            ):
                n = min(chunk, audio_samples - samples_done)
                sound = av.AudioFrame.from_ndarray(silence[:, :n], format="fltp", layout="stereo")
                sound.sample_rate, sound.pts = AUDIO_RATE, samples_done
                out.mux(audio.encode(sound))
                samples_done += n
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path.stat().st_size


def probe(path: Path) -> dict[str, Any]:
    """Width, height, frame count, duration and audio presence, read back from the file."""
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise RuntimeError(f"unreadable video {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise RuntimeError(f"no video stream in {path}")
        video = container.streams.video[0]
        frames = sum(1 for packet in container.demux(video) if packet.size)
        duration = (
            float(video.duration * video.time_base)
            if video.duration is not None and video.time_base is not None
            else (container.duration or 0) / 1e6
        )
        return {
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "frames": frames,
            "duration": duration,
            "has_audio": bool(container.streams.audio),
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
        duration=round(frames.shape[0] / fps, 3),  # exact; the container's is in time-base units
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
