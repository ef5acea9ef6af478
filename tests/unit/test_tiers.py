"""The quality tiers on the tiny Wan: what each runs, seeds that repeat, distilled fast weights.

The tiny Wan is not Wan 2.1 1.3B, so it gets no built-in MagCache data; the tests pass the
shipped file explicitly (MagCache decides from the ratios alone, any Wan can run them).
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ModelLoadError
from pipeline.generator import GeneratorConfig, VideoGenerator
from pipeline.options import QUALITIES, GenerationOptions, OptionOverrides, resolve_options
from pipeline.presets import apply_overrides
from pipeline.progress import GenerationCancelled, Progress, Stage
from pipeline.quality import BUILTIN_DATA, FAST_SHIFT
from pipeline.speed import fused_lora_transformer, load_fast_transformer

RATIOS = str(Path(__file__).resolve().parents[2] / "pipeline" / "data" / BUILTIN_DATA)
SMALL = {"width": 64, "height": 64, "frames": 9}


@pytest.fixture(scope="module")
def tiered(tiny_wan_dir: Path, tiny_lora_files: dict[str, Path]) -> VideoGenerator:
    torch.set_num_threads(1)
    return VideoGenerator.load(
        GeneratorConfig(
            model=str(tiny_wan_dir),
            device="cpu",
            fast_lora=str(tiny_lora_files["original"]),
            cache_ratios=RATIOS,
        )
    )


def job(gen: VideoGenerator, quality: str, seed: int = 1, **kw) -> GenerationOptions:
    """Options of a ``quality`` job the way the bot and the CLI build them."""
    defaults, limits = apply_overrides(gen.defaults, gen.limits, SMALL)
    request = OptionOverrides(seed=seed, **kw)
    overrides = request.merged_over(gen.tier_overrides(quality, defaults, limits))
    return resolve_options("a cat plays the piano", overrides, defaults, limits)


def counter(module: torch.nn.Module) -> list[int]:
    """Counts real computations of ``module``'s last block (skipped steps never reach its ffn)."""
    calls: list[int] = []
    module.blocks[-1].ffn.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_each_tier_repeats_its_seed_and_tiers_differ(tiered: VideoGenerator) -> None:
    first = {q: tiered.generate(job(tiered, q, steps=None)).frames for q in QUALITIES}
    for quality in ("fast", "best", "balanced", "fast", "balanced", "best"):  # switching back
        again = tiered.generate(job(tiered, quality)).frames
        assert np.array_equal(again, first[quality]), quality
    assert not np.array_equal(first["best"], first["balanced"])  # the cache skipped steps
    assert not np.array_equal(first["best"], first["fast"])
    assert not np.array_equal(
        tiered.generate(job(tiered, "balanced", seed=2)).frames, first["balanced"]
    )


def test_what_each_tier_runs(tiered: VideoGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    base, fast = tiered.switch.base, tiered.switch.fast
    assert fast is not None and fast is not base
    base_calls, fast_calls = counter(base), counter(fast)
    seen: list[dict] = []
    real = type(tiered.pipe).__call__

    def spy(pipe, **kwargs):
        seen.append({"transformer": pipe.transformer, "scheduler": pipe.scheduler, **kwargs})
        return real(pipe, **kwargs)

    monkeypatch.setattr(type(tiered.pipe), "__call__", spy)

    tiered.generate(job(tiered, "best", steps=10))
    assert len(base_calls) == 20 and not fast_calls  # 10 steps x (conditional + unconditional)
    assert type(seen[-1]["scheduler"]).__name__ == "UniPCMultistepScheduler"
    assert not base.is_cache_enabled

    base_calls.clear()
    options = job(tiered, "balanced", steps=10)
    tiered.generate(options)
    assert len(base_calls) == 2 * sum(tiered.tiers.cache.schedule(10)) < 20
    assert seen[-1]["transformer"] is base and base.is_cache_enabled

    base_calls.clear()
    options = job(tiered, "fast")
    assert (options.steps, options.guidance, options.negative_prompt) == (4, 1.0, "")
    tiered.generate(options)
    call = seen[-1]
    assert call["transformer"] is fast and len(fast_calls) == 4 and not base_calls  # no CFG
    assert type(call["scheduler"]).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert call["scheduler"].config.shift == FAST_SHIFT
    assert call["guidance_scale"] == 1.0 and "negative_prompt" not in call
    assert call["num_inference_steps"] == 4

    tiered.generate(job(tiered, "best", steps=2))  # the base transformer and sampler come back
    assert seen[-1]["transformer"] is base and tiered.pipe.transformer is base
    assert type(tiered.pipe.scheduler).__name__ == "UniPCMultistepScheduler"


def test_a_cancelled_cached_job_leaves_no_trace(tiered: VideoGenerator) -> None:
    clean = tiered.generate(job(tiered, "balanced", steps=10)).frames
    cancel = threading.Event()

    def on_progress(p: Progress) -> None:
        if p.stage is Stage.DENOISE and p.step == 4:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        tiered.generate(job(tiered, "balanced", steps=10), on_progress=on_progress, cancel=cancel)
    assert np.array_equal(tiered.generate(job(tiered, "balanced", steps=10)).frames, clean)


@pytest.mark.parametrize("naming", ["diffusers", "original"])
def test_fast_lora_loads_fuses_changes_the_output_and_unloads(
    naming: str, tiny_wan_dir: Path, tiny_lora_files: dict[str, Path]
) -> None:
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    before = copy.deepcopy(pipe.transformer.state_dict())
    fast = fused_lora_transformer(pipe, str(tiny_lora_files[naming]))
    # unloaded: plain layers, no adapter left behind, on the copy or on the pipeline
    assert not any("lora" in name for name, _ in fast.named_modules())
    assert not getattr(fast, "peft_config", None) and not pipe.get_list_adapters()
    # fused: exactly the adapted layers of both blocks changed, the base model did not
    changed = {k for k, v in fast.state_dict().items() if not torch.equal(v, before[k])}
    assert len(changed) == 2 * 10 and all(k.startswith("blocks.") for k in changed)
    assert all(torch.equal(v, before[k]) for k, v in pipe.transformer.state_dict().items())
    # and it changes what the transformer computes
    torch.manual_seed(0)
    x = torch.randn(1, 16, 3, 8, 8)
    t = torch.tensor([500])
    text = torch.randn(1, 12, 32)
    with torch.no_grad():
        plain = pipe.transformer(x, t, text, return_dict=False)[0]
        fused = fast(x, t, text, return_dict=False)[0]
    assert not torch.allclose(plain, fused)


def test_both_lora_namings_fuse_to_the_same_weights(
    tiny_wan_dir: Path, tiny_lora_files: dict[str, Path]
) -> None:
    from diffusers import WanPipeline

    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    a = fused_lora_transformer(pipe, str(tiny_lora_files["diffusers"])).state_dict()
    b = fused_lora_transformer(pipe, str(tiny_lora_files["original"])).state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_fast_transformer_from_a_directory_or_a_file(
    tiny_wan_dir: Path, tiny_distilled_dir: Path, tmp_path: Path
) -> None:
    from diffusers import WanPipeline
    from safetensors.torch import save_file

    pipe = WanPipeline.from_pretrained(tiny_wan_dir)
    from_dir = load_fast_transformer(pipe, str(tiny_distilled_dir), str(tiny_wan_dir))
    file = tmp_path / "distilled.safetensors"
    save_file({k: v.contiguous() for k, v in from_dir.state_dict().items()}, str(file))
    from_file = load_fast_transformer(pipe, str(file), str(tiny_wan_dir))
    assert all(torch.equal(v, from_dir.state_dict()[k]) for k, v in from_file.state_dict().items())
    assert not torch.equal(
        from_dir.blocks[0].ffn.net[2].weight, pipe.transformer.blocks[0].ffn.net[2].weight
    )

    gen = VideoGenerator.load(
        GeneratorConfig(
            model=str(tiny_wan_dir), device="cpu", fast_transformer=str(tiny_distilled_dir)
        )
    )
    assert gen.tiers.distilled and gen.tier_plan("fast").steps == 4
    fast = gen.generate(job(gen, "fast")).frames
    assert np.array_equal(fast, gen.generate(job(gen, "fast")).frames)
    assert not np.array_equal(fast, gen.generate(job(gen, "best", steps=4, guidance=1.0)).frames)


def test_without_fast_weights_fast_runs_fewer_base_steps_and_says_so(
    tiny_wan_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.generator"):
        gen = VideoGenerator.load(GeneratorConfig(model=str(tiny_wan_dir), device="cpu"))
    assert "quality fast: no FAST_LORA or FAST_TRANSFORMER" in caplog.text
    assert "quality balanced: no MagCache data" in caplog.text  # not Wan 2.1 1.3B
    assert not gen.tiers.distilled and gen.tiers.cache is None
    options = job(gen, "fast")
    assert (options.steps, options.guidance) == (25, 5.0)
    assert gen.switch.fast is None
    calls = counter(gen.pipe.transformer)
    gen.generate(job(gen, "fast", steps=3))
    assert len(calls) == 6  # the base transformer, with guidance
    assert type(gen.pipe.scheduler).__name__ == "UniPCMultistepScheduler"


def test_bad_fast_settings_are_one_line_load_errors(
    tiny_wan_dir: Path, tiny_lora_files: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="not both"):
        VideoGenerator.load(
            GeneratorConfig(
                model=str(tiny_wan_dir), device="cpu", fast_lora="a", fast_transformer="b"
            )
        )
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="cannot load FAST_LORA") as info:
        VideoGenerator.load(
            GeneratorConfig(model=str(tiny_wan_dir), device="cpu", fast_lora=str(garbage))
        )
    assert "\n" not in str(info.value)
