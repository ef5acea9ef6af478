"""VideoGenerator on the tiny Wan checkpoint: loading, progress, cancel, seeds, failures.

The quality tiers on the same checkpoint: tests/unit/test_tiers.py."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import GenerationOOM, ModelLoadError
from pipeline.generator import GeneratorConfig, VideoGenerator, to_uint8_frames
from pipeline.options import GenerationOptions, OptionOverrides, resolve_options
from pipeline.presets import apply_overrides
from pipeline.progress import GenerationCancelled, Progress, Stage

SMALL = {"width": 64, "height": 64, "frames": 9, "steps": 2}


@pytest.fixture(scope="module")
def generator(tiny_wan_dir: Path) -> VideoGenerator:
    torch.set_num_threads(1)  # tiny models gain nothing from threads; a busy CPU makes them crawl
    return VideoGenerator.load(GeneratorConfig(model=str(tiny_wan_dir), device="cpu"))


def options(gen: VideoGenerator, prompt: str = "a cat plays the piano", **kw) -> GenerationOptions:
    defaults, limits = apply_overrides(gen.defaults, gen.limits, SMALL)
    return resolve_options(prompt, OptionOverrides(seed=1, **kw), defaults, limits)


def test_load_reads_family_and_defaults(generator: VideoGenerator) -> None:
    assert generator.preset.family == "wan"
    assert generator.device == "cpu" and generator.memory_mode == "resident"
    assert generator.pipe.transformer.dtype == torch.float32
    assert (generator.defaults.width, generator.defaults.frames, generator.defaults.fps) == (
        832,
        81,
        16,
    )  # the model's own: the operator's DEFAULT_* go on top with apply_overrides
    assert generator.defaults.steps == 50 and generator.defaults.guidance == 5.0
    assert (generator.limits.frame_multiple, generator.limits.side_multiple) == (4, 16)
    assert generator.max_sequence_length == 512
    assert generator.device_info() == "CPU"


def test_generate_returns_uint8_frames_with_ordered_progress(generator: VideoGenerator) -> None:
    reports: list[Progress] = []
    video = generator.generate(options(generator), on_progress=reports.append)
    assert video.frames.shape == (9, 64, 64, 3) and video.frames.dtype == np.uint8
    assert (video.fps, video.seed) == (16, 1)
    assert set(video.timings) == {"encode_text", "denoise", "decode"}
    stages = [(r.stage, r.step) for r in reports]
    assert stages == [
        (Stage.ENCODE_TEXT, 0), (Stage.ENCODE_TEXT, 1),
        (Stage.DENOISE, 0), (Stage.DENOISE, 1), (Stage.DENOISE, 2),
        (Stage.DECODE, 0), (Stage.DECODE, 1),
    ]  # fmt: skip
    assert all(r.total == 2 for r in reports if r.stage is Stage.DENOISE)
    elapsed = [r.elapsed for r in reports]
    assert elapsed == sorted(elapsed)


def test_progress_total_is_the_pipelines_public_num_timesteps(
    generator: VideoGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """diffusers states the real step count as ``pipe.num_timesteps`` (a sampler may run more
    or fewer steps than asked); progress reports it, not the requested count."""
    monkeypatch.setattr(type(generator.pipe), "num_timesteps", property(lambda pipe: 7))
    reports: list[Progress] = []
    generator.generate(options(generator), on_progress=reports.append)
    assert {r.total for r in reports if r.stage is Stage.DENOISE and r.step > 0} == {7}


def test_same_seed_same_video_other_seed_other_video(generator: VideoGenerator) -> None:
    a = generator.generate(options(generator)).frames
    b = generator.generate(options(generator)).frames
    c = generator.generate(options(generator).with_seed(2)).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_other_sizes_and_frame_counts(generator: VideoGenerator) -> None:
    video = generator.generate(options(generator, width=96, height=64, frames=5, steps=1))
    assert video.frames.shape == (5, 64, 96, 3)


def test_cancel_stops_within_one_step(generator: VideoGenerator) -> None:
    cancel = threading.Event()
    steps: list[int] = []

    def on_progress(p: Progress) -> None:
        if p.stage is Stage.DENOISE and p.step > 0:
            steps.append(p.step)
            cancel.set()  # cancelled after step 1 of 10

    with pytest.raises(GenerationCancelled):
        generator.generate(options(generator, steps=10), on_progress=on_progress, cancel=cancel)
    assert len(steps) <= 2
    assert generator.generate(options(generator)).frames.shape[0] == 9  # still usable


def test_cancel_before_start_runs_nothing(generator: VideoGenerator, monkeypatch) -> None:
    cancel = threading.Event()
    cancel.set()
    monkeypatch.setattr(type(generator.pipe), "__call__", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(GenerationCancelled):
        generator.generate(options(generator), cancel=cancel)


def test_prompt_en_replaces_the_prompt_and_is_cut(generator: VideoGenerator, monkeypatch) -> None:
    seen: dict = {}
    real = type(generator.pipe).__call__

    def spy(pipe, **kwargs):
        seen.update(kwargs)
        return real(pipe, **kwargs)

    monkeypatch.setattr(type(generator.pipe), "__call__", spy)
    monkeypatch.setattr(generator, "max_sequence_length", 16)
    generator.generate(options(generator, "кот"), prompt_en="a cat " * 100)
    assert seen["prompt"].startswith("a cat")
    assert len(generator.pipe.tokenizer(seen["prompt"]).input_ids) <= 16
    assert seen["max_sequence_length"] == 16
    assert seen["num_frames"] == 9 and seen["height"] == 64 and seen["guidance_scale"] == 5.0
    assert seen["negative_prompt"].startswith("Bright tones")


def test_oom_frees_memory_and_is_typed(generator: VideoGenerator, monkeypatch) -> None:
    freed: list[bool] = []

    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(generator.pipe), "__call__", boom)
    monkeypatch.setattr(generator, "free_memory", lambda: freed.append(True))
    with pytest.raises(GenerationOOM, match="out of GPU memory"):
        generator.generate(options(generator))
    assert freed == [True]


def test_other_errors_free_memory_and_propagate(generator: VideoGenerator, monkeypatch) -> None:
    freed: list[bool] = []
    monkeypatch.setattr(type(generator.pipe), "__call__", lambda *a, **k: 1 / 0)
    monkeypatch.setattr(generator, "free_memory", lambda: freed.append(True))
    with pytest.raises(ZeroDivisionError):
        generator.generate(options(generator))
    assert freed == [True]


def test_missing_or_broken_model_is_a_load_error(tmp_path: Path, tiny_wan_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        VideoGenerator.load(GeneratorConfig(model=str(tmp_path / "missing"), device="cpu"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text(
        (tiny_wan_dir / "model_index.json").read_text(encoding="utf-8"), encoding="utf-8"
    )
    with pytest.raises(ModelLoadError) as info:
        VideoGenerator.load(GeneratorConfig(model=str(broken), device="cpu"))
    assert "\n" not in str(info.value)


def test_bad_settings_are_load_errors(tiny_wan_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="memory mode"):
        VideoGenerator.load(GeneratorConfig(model=str(tiny_wan_dir), device="cpu", memory_mode="x"))
    with pytest.raises(ModelLoadError, match="device"):
        VideoGenerator.load(GeneratorConfig(model=str(tiny_wan_dir), device="tpu"))
    with pytest.raises(ModelLoadError, match="speed"):
        VideoGenerator.load(
            GeneratorConfig(model=str(tiny_wan_dir), device="cpu", attention_backend="nonsense")
        )
    with pytest.raises(ModelLoadError, match="COMPILE"):
        VideoGenerator.load(GeneratorConfig(model=str(tiny_wan_dir), device="cpu", compile="x"))
    with pytest.raises(ModelLoadError, match="MagCache data"):
        VideoGenerator.load(
            GeneratorConfig(model=str(tiny_wan_dir), device="cpu", cache_ratios="/no/such.json")
        )


@pytest.mark.parametrize(
    "video",
    [
        np.full((1, 4, 8, 8, 3), 0.5, dtype=np.float32),  # np output, batched
        torch.full((4, 3, 8, 8), 0.5),  # torch [F, C, H, W]
    ],
)
def test_to_uint8_frames(video) -> None:
    frames = to_uint8_frames(video)
    assert frames.shape == (4, 8, 8, 3) and frames.dtype == np.uint8
    assert int(frames[0, 0, 0, 0]) == 128


def test_to_uint8_frames_from_pil_lists() -> None:
    from PIL import Image

    frames = to_uint8_frames([[Image.new("RGB", (8, 6), (255, 0, 0))] * 3])
    assert frames.shape == (3, 6, 8, 3) and frames[0, 0, 0].tolist() == [255, 0, 0]


def test_torch_frames_are_quantised_like_numpy_frames_and_input_is_untouched() -> None:
    """GPU-side quantisation (output_type="pt") must give the exact bytes of the numpy path."""
    import torch

    from pipeline.generator import to_uint8_frames

    video = torch.rand(1, 9, 3, 8, 10) * 1.2 - 0.1  # a little outside [0, 1] on both sides
    original = video.clone()
    from_numpy = to_uint8_frames(video.permute(0, 1, 3, 4, 2).numpy())
    from_torch = to_uint8_frames(video)
    assert from_torch.shape == (9, 8, 10, 3) and from_torch.dtype == np.uint8
    assert np.array_equal(from_torch, from_numpy)
    assert torch.equal(video, original)
