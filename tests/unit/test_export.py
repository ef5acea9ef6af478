"""MP4 export: exact frame count, audio track, even sides, thumbnail limits, byte cap."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from pipeline.export import THUMB_MAX_BYTES, VideoTooLarge, export_mp4, probe


def noise(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


def decoded(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


@pytest.mark.parametrize(("frames", "fps"), [(9, 16), (1, 16), (17, 24), (49, 8)])
def test_every_frame_and_a_silent_audio_track(tmp_path: Path, frames: int, fps: int) -> None:
    video = export_mp4(noise(frames, 64, 64), tmp_path / "v.mp4", fps)
    meta, decoded_frames = decoded(video.path)
    assert len(decoded_frames) == frames == video.frames
    assert meta["size"] == (64, 64) and (video.width, video.height) == (64, 64)
    assert meta["audio_codec"] == "aac" and video.has_audio
    assert video.fps == fps and video.duration == pytest.approx(frames / fps, abs=1e-3)
    assert video.size_bytes == video.path.stat().st_size


def test_mp4_is_h264_yuv420p_with_faststart(tmp_path: Path) -> None:
    import subprocess

    video = export_mp4(noise(9, 64, 64), tmp_path / "v.mp4", 16)
    info = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(video.path)],
        capture_output=True, text=True, check=False,
    ).stderr  # fmt: skip
    assert "Video: h264" in info and "yuv420p" in info
    data = video.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: index before the media


def test_odd_sides_become_even(tmp_path: Path) -> None:
    video = export_mp4(noise(5, 33, 65), tmp_path / "odd.mp4", 16)
    assert (video.width, video.height) == (66, 34)
    assert probe(video.path)["frames"] == 5


def test_thumbnail_fits_telegram_limits(tmp_path: Path) -> None:
    video = export_mp4(noise(2, 1080, 1920), tmp_path / "big.mp4", 16)
    with Image.open(video.thumbnail) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) <= 320 and thumb.size == (320, 180)
    assert video.thumbnail.stat().st_size <= THUMB_MAX_BYTES
    assert video.to_dict()["thumbnail"] == str(tmp_path / "big.jpg")


def test_byte_cap_triggers_a_smaller_reencode(tmp_path: Path) -> None:
    clip = noise(16, 128, 128)
    first = export_mp4(clip, tmp_path / "a.mp4", 16)
    cap = first.size_bytes // 2
    capped = export_mp4(clip, tmp_path / "b.mp4", 16, max_bytes=cap)
    assert capped.size_bytes <= cap < first.size_bytes
    assert capped.frames == 16 and capped.has_audio


def test_impossible_cap_says_so(tmp_path: Path) -> None:
    with pytest.raises(VideoTooLarge, match="limit"):
        export_mp4(noise(16, 128, 128), tmp_path / "c.mp4", 16, max_bytes=2_000)
    assert not (tmp_path / "c.mp4").exists()
    assert not list(tmp_path.glob(".*part*"))  # no half-written file left behind


def test_rejects_frames_of_the_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        export_mp4(np.zeros((4, 8, 8, 3), np.float32), tmp_path / "f.mp4", 16)
    with pytest.raises(ValueError, match="shape"):
        export_mp4(np.zeros((8, 8, 3), np.uint8), tmp_path / "f.mp4", 16)
