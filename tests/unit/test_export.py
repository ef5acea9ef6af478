"""MP4 export: exact frame count, audio track, even sides, thumbnail limits, byte cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.export import THUMB_MAX_BYTES, VideoTooLarge, export_mp4, probe
from tests.fakes.mp4 import read_mp4


def noise(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("frames", "fps"), [(9, 16), (1, 16), (17, 24), (49, 8)])
def test_every_frame_and_a_silent_audio_track(tmp_path: Path, frames: int, fps: int) -> None:
    video = export_mp4(noise(frames, 64, 64), tmp_path / "v.mp4", fps)
    mp4 = read_mp4(video.path)
    assert len(mp4.frames) == frames == video.frames
    assert (mp4.width, mp4.height) == (64, 64) == (video.width, video.height)
    assert mp4.fps == pytest.approx(fps)
    assert mp4.codecs == ["h264", "aac"] and mp4.audio_channels == 2 and video.has_audio
    assert video.fps == fps and video.duration == pytest.approx(frames / fps, abs=1e-3)
    assert video.size_bytes == video.path.stat().st_size


def test_mp4_is_h264_yuv420p_with_faststart(tmp_path: Path) -> None:
    video = export_mp4(noise(9, 64, 64), tmp_path / "v.mp4", 16)
    mp4 = read_mp4(video.path)
    assert mp4.codecs[0] == "h264" and mp4.pix_fmt == "yuv420p"
    data = video.path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: index before the media


def test_audio_is_silent_and_as_long_as_the_video(tmp_path: Path) -> None:
    import av

    video = export_mp4(noise(17, 64, 64), tmp_path / "v.mp4", 16)
    with av.open(str(video.path)) as container:
        stream = container.streams.audio[0]
        samples = [f.to_ndarray() for f in container.decode(stream)]
        seconds = float(stream.duration * stream.time_base)
    assert max(float(np.abs(s).max()) for s in samples) == 0.0
    assert seconds == pytest.approx(17 / 16, abs=0.03)


def test_frames_keep_their_content(tmp_path: Path) -> None:
    """Not just the right count: frame i shows what frame i was (a moving bright square)."""
    clip = np.zeros((8, 64, 64, 3), np.uint8)
    for i in range(8):
        clip[i, 8 * i : 8 * i + 8, 8 * i : 8 * i + 8] = 255
    decoded = read_mp4(export_mp4(clip, tmp_path / "sq.mp4", 16).path).frames
    for i, frame in enumerate(decoded):
        gray = frame.mean(axis=-1)
        y, x = np.unravel_index(np.argmax(gray), gray.shape)
        assert (y // 8, x // 8) == (i, i)


def test_odd_sides_become_even(tmp_path: Path) -> None:
    video = export_mp4(noise(5, 33, 65), tmp_path / "odd.mp4", 16)
    assert (video.width, video.height) == (66, 34)
    assert probe(video.path)["frames"] == 5
    assert (read_mp4(video.path).width, read_mp4(video.path).height) == (66, 34)


def test_probe_reads_the_file(tmp_path: Path) -> None:
    video = export_mp4(noise(17, 48, 80), tmp_path / "p.mp4", 24)
    facts = probe(video.path)
    assert facts == {
        "width": 80,
        "height": 48,
        "frames": 17,
        "duration": pytest.approx(17 / 24, abs=1e-3),
        "has_audio": True,
    }
    with pytest.raises(RuntimeError):
        (tmp_path / "junk.mp4").write_bytes(b"not a video")
        probe(tmp_path / "junk.mp4")


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
    assert len(read_mp4(capped.path).frames) == 16


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


def test_no_subprocess_and_no_ffmpeg_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding and probing run in-process: spawning anything fails this test."""
    import subprocess

    def refuse(*args, **kwargs):
        raise AssertionError(f"subprocess started: {args[:1]}")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    video = export_mp4(noise(3, 32, 32), tmp_path / "n.mp4", 16, max_bytes=10_000_000)
    assert probe(video.path)["frames"] == 3
