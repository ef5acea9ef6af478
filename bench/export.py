"""Seconds to export a default-size clip to MP4: the project's in-process PyAV encoder, and side by
side in the same run the ffmpeg subprocess it replaced (raw frames piped to an ``ffmpeg`` binary,
the pre-PyAV ``pipeline/export.py``) where a binary is found.

The clip is Wan 2.1's default, 832x480x81 at 16 fps: smooth moving gradients and shapes plus mild
grain (generated video is smooth; pure noise would time x264's worst case instead). Runs are
interleaved A B B A so drift hits both alike; each figure is the median of the repeats.

    python bench/export.py --out bench/results/export.json   # about a minute on 2 CPU cores
    python bench/export.py --tiny                             # CI smoke, a few seconds
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import JsonReport, fmt, light_machine_info, log, median, ratio, spread
from pipeline.export import AUDIO_BITRATE, X264_PRESET, export_mp4

DEFAULT = dict(width=832, height=480, frames=81, fps=16)
TINY = dict(width=64, height=64, frames=9, fps=16)


def synthetic_clip(width: int, height: int, frames: int, seed: int = 0) -> np.ndarray:
    """uint8 [F, H, W, 3]: drifting colour gradients, a moving disc, light grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    clip = np.empty((frames, height, width, 3), np.uint8)
    for i in range(frames):
        t = i / max(frames - 1, 1)
        r = 128 + 100 * np.sin(2 * np.pi * (x / width + t))
        g = 128 + 100 * np.sin(2 * np.pi * (y / height - t))
        b = 128 + 100 * np.cos(2 * np.pi * ((x + y) / (width + height) + 2 * t))
        cx, cy = width * (0.2 + 0.6 * t), height * 0.5
        disc = ((x - cx) ** 2 + (y - cy) ** 2) < (min(width, height) * 0.15) ** 2
        frame = np.stack([r, g, b], axis=-1)
        frame[disc] = (250, 240, 60)
        frame += rng.normal(0, 4, frame.shape)
        clip[i] = np.clip(frame, 0, 255).astype(np.uint8)
    return clip


def find_ffmpeg() -> str | None:
    """An ``ffmpeg`` binary for the reference encoder: imageio-ffmpeg's if installed, else PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return shutil.which("ffmpeg")


def ffmpeg_subprocess_export(exe: str, frames: np.ndarray, path: Path, fps: int) -> None:
    """The encode the project ran before PyAV: same codec settings, rgb24 frames through stdin."""
    count, height, width = frames.shape[:3]
    cmd = [
        exe, "-y", "-hide_banner", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps),
        "-i", "-",
        "-f", "lavfi", "-i", "anullsrc=channel_layout=stereo:sample_rate=44100",
        "-map", "0:v:0", "-map", "1:a:0", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v", "libx264", "-preset", X264_PRESET, "-pix_fmt", "yuv420p", "-crf", "18",
        "-c:a", "aac", "-b:a", str(AUDIO_BITRATE),
        "-frames:v", str(count), "-t", f"{count / fps:.6f}",
        "-movflags", "+faststart", "-f", "mp4", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, input=frames.tobytes(), capture_output=True, check=True)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="64x64x9 smoke run (CI)")
    parser.add_argument("--repeats", type=int, help="runs per encoder (default 3, --tiny 1)")
    parser.add_argument("--no-ffmpeg", action="store_true", help="skip the subprocess reference")
    parser.add_argument("--out", type=Path, help="JSON report path")
    args = parser.parse_args(argv)

    size = TINY if args.tiny else DEFAULT
    repeats = args.repeats or (1 if args.tiny else 3)
    exe = None if args.no_ffmpeg else find_ffmpeg()
    import av

    report = JsonReport(
        args.out,
        benchmark="export",
        clip=size,
        repeats=repeats,
        machine={**light_machine_info(), "av": av.__version__, "ffmpeg_reference": exe},
    )
    clip = synthetic_clip(size["width"], size["height"], size["frames"])
    fps = size["fps"]
    log(f"clip {size['width']}x{size['height']}x{size['frames']} at {fps} fps, {repeats} repeat(s)")
    times: dict[str, list[float]] = {"pyav": [], "ffmpeg_subprocess": []}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        encoders: dict[str, Callable[[], object]] = {
            "pyav": lambda: export_mp4(clip, out / "pyav.mp4", fps)
        }
        if exe is not None:
            encoders["ffmpeg_subprocess"] = lambda: ffmpeg_subprocess_export(
                exe, clip, out / "ffmpeg_subprocess.mp4", fps
            )
        else:
            log("no ffmpeg binary found (pip install imageio-ffmpeg): PyAV only")
        names = list(encoders)
        for r in range(repeats):
            order = names if r % 2 == 0 else names[::-1]  # A B, B A, ...
            for name in order:
                times[name].append(timed(encoders[name]))
        for name in names:
            sizes[name] = os.path.getsize(out / f"{name}.mp4")
    for name in names:
        report[name] = {"seconds": spread(times[name]), "bytes": sizes[name]}
        log(f"{name:<18} {fmt(median(times[name]), '.3f')} s   {sizes[name] / 1e3:.0f} kB")
    if len(names) == 2:
        speedup = ratio(median(times["ffmpeg_subprocess"]), median(times["pyav"]))
        report["speedup_pyav_vs_subprocess"] = speedup
        log(f"PyAV is {fmt(speedup)}x the speed of the subprocess (> 1: faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
