"""VideoGenerator on the tiny Wan checkpoint: loading, progress, cancel, seeds, failures."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import GenerationOOM, ModelLoadError
from pipeline.generator import GeneratorConfig, VideoGenerator, to_uint8_frames
from pipeline.options import GenerationOptions, OptionOverrides, resolve_options
from pipeline.progress import GenerationCancelled, Progress, Stage

SMALL = {"width": 64, "height": 64, "frames": 9, "steps": 2}


@pytest.fixture(scope="module")
def generator(tiny_wan_dir: Path) -> VideoGenerator:
    torch.set_num_threads(1)  # tiny models gain nothing from threads; a busy CPU makes them crawl
    return VideoGenerator.load(
        GeneratorConfig(model=str(tiny_wan_dir), device="cpu", defaults_override=SMALL)
    )


def options(gen: VideoGenerator, prompt: str = "a cat plays the piano", **kw) -> GenerationOptions:
    return resolve_options(prompt, OptionOverrides(seed=1, **kw), gen.defaults, gen.limits)


def test_load_reads_family_and_defaults(generator: VideoGenerator) -> None:
    assert generator.preset.family == "wan"
    assert generator.device == "cpu" and generator.memory_mode == "resident"
    assert generator.pipe.transformer.dtype == torch.float32
    assert (generator.defaults.width, generator.defaults.frames, generator.defaults.fps) == (
        64,
        9,
        16,
    )
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


def test_default_steps_are_not_changed_by_speed_settings(tiny_wan_dir: Path) -> None:
    gen = VideoGenerator.load(
        GeneratorConfig(model=str(tiny_wan_dir), device="cpu", cache="first_block")
    )
    assert gen.defaults.steps == 50 and gen.defaults.guidance == 5.0  # the model's own
    assert gen.speed_applied == ["cache=first_block (fast jobs)"]
    assert not gen.pipe.transformer.is_cache_enabled  # enabled per fast job, not at load


class Spy:
    """Wraps a method and records each call (the real method still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, obj: object, name: str, log: list) -> None:
        real = getattr(obj, name)

        def spy(*args, **kwargs):
            log.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(obj, name, spy)


def test_cache_is_on_for_fast_jobs_only(tiny_wan_dir: Path, monkeypatch) -> None:
    gen = VideoGenerator.load(
        GeneratorConfig(
            model=str(tiny_wan_dir), device="cpu", cache="first_block", defaults_override=SMALL
        )
    )
    transformer = gen.pipe.transformer
    calls: list[str] = []
    Spy(monkeypatch, transformer, "enable_cache", calls)
    Spy(monkeypatch, transformer, "disable_cache", calls)
    seen: list[bool] = []

    def on_progress(p: Progress) -> None:
        if p.stage is Stage.DENOISE and p.step == 1:
            seen.append(transformer.is_cache_enabled)

    for fast in (False, True, True, False, False, True):
        video = gen.generate(options(gen, fast=fast), on_progress=on_progress)
        assert video.frames.shape == (9, 64, 64, 3)
    assert seen == [False, True, True, False, False, True]
    assert calls == ["enable_cache", "disable_cache", "enable_cache"]  # only on a change


def test_fast_switch_calls_diffusers_only_when_the_state_changes(tmp_path: Path) -> None:
    """A fake pipe: the LoRA adapter and MagCache follow ``fast`` (MagCache also the steps)."""
    from pipeline.speed import FastSwitch, SpeedSettings

    class FakeTransformer:
        is_cache_enabled = False

        def __init__(self, log: list) -> None:
            self.log = log

        def enable_cache(self, config) -> None:
            assert not self.is_cache_enabled
            self.is_cache_enabled = True
            self.log.append(f"enable_cache({config.num_inference_steps})")

        def disable_cache(self) -> None:
            self.is_cache_enabled = False
            self.log.append("disable_cache")

    class FakePipe:
        def __init__(self) -> None:
            self.log: list[str] = []
            self.transformer = FakeTransformer(self.log)

        def enable_lora(self) -> None:
            self.log.append("enable_lora")

        def disable_lora(self) -> None:
            self.log.append("disable_lora")

    ratios = tmp_path / "ratios.json"
    ratios.write_text("[1.0, 0.99, 0.98, 0.97]", "utf-8")
    pipe = FakePipe()
    switch = FastSwitch(pipe, SpeedSettings(cache=f"mag:{ratios}", lora_path="lora.safetensors"))
    assert switch.available and switch.applied(True) == ["lora=fast", f"cache=mag:{ratios}"]
    assert switch.applied(False) == []
    switch.prepare(False, 8)
    assert pipe.log == []  # loaded disabled, the cache off: nothing to switch
    switch.prepare(True, 4)
    switch.prepare(True, 4)
    assert pipe.log == ["enable_lora", "enable_cache(4)"]
    switch.prepare(True, 6)  # MagCache's ratios depend on the step count
    assert pipe.log[2:] == ["disable_cache", "enable_cache(6)"]
    switch.prepare(False, 6)
    switch.prepare(False, 30)
    assert pipe.log[4:] == ["disable_lora", "disable_cache"]
    assert not FastSwitch(pipe, SpeedSettings(compile=True)).available


@pytest.fixture(scope="module")
def tiny_lora_dir(tiny_wan_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA for the tiny Wan, saved as diffusers saves a trained one."""
    pytest.importorskip("peft")
    from diffusers import WanPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    torch.manual_seed(0)
    pipe.transformer.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
            init_lora_weights=False,  # random B too: the adapter changes the output
        )
    )
    path = tmp_path_factory.mktemp("lora")
    WanPipeline.save_lora_weights(
        path, transformer_lora_layers=get_peft_model_state_dict(pipe.transformer)
    )
    return path


def test_lora_is_on_for_fast_jobs_only(
    tiny_wan_dir: Path, tiny_lora_dir: Path, generator: VideoGenerator, monkeypatch
) -> None:
    gen = VideoGenerator.load(
        GeneratorConfig(
            model=str(tiny_wan_dir),
            device="cpu",
            lora_path=str(tiny_lora_dir),
            defaults_override=SMALL,
        )
    )
    assert gen.speed_applied == ["lora=fast (fast jobs)"]
    assert gen.defaults == generator.defaults  # no step or guidance change for anyone
    assert gen.pipe.get_active_adapters() == ["fast"]
    calls: list[str] = []
    Spy(monkeypatch, gen.pipe, "enable_lora", calls)
    Spy(monkeypatch, gen.pipe, "disable_lora", calls)

    without_lora = generator.generate(options(generator)).frames
    plain = gen.generate(options(gen)).frames
    fast = gen.generate(options(gen, fast=True)).frames
    fast_again = gen.generate(options(gen, fast=True)).frames
    plain_again = gen.generate(options(gen)).frames
    assert np.array_equal(plain, without_lora)  # not fused: other jobs never see the LoRA
    assert not np.array_equal(fast, plain)
    assert np.array_equal(fast, fast_again) and np.array_equal(plain_again, plain)
    assert calls == ["enable_lora", "disable_lora"]  # only on a change


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
