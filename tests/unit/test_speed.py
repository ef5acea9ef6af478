"""Output-neutral speed settings: COMPILE (regional, warm-up, on-disk cache), QUANTIZE, attention."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import ModelLoadError
from pipeline.generator import GeneratorConfig, VideoGenerator
from pipeline.options import OptionOverrides, resolve_options
from pipeline.presets import apply_overrides
from pipeline.quality import BUILTIN_DATA, load_cache_data
from pipeline.speed import (
    check_quantize,
    compile_blocks,
    compile_enabled,
    fp8_config,
    quantize,
    use_compile_cache,
)

RATIOS = str(Path(__file__).resolve().parents[2] / "pipeline" / "data" / BUILTIN_DATA)
SMALL = {"width": 64, "height": 64, "frames": 9, "steps": 3}


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [
        ("auto", "cuda", True),
        ("auto", "cuda:1", True),
        ("auto", "cpu", False),
        (None, "cpu", False),
        ("on", "cpu", True),
        ("true", "cuda", True),
        (True, "cpu", True),
        ("off", "cuda", False),
        ("0", "cuda", False),
    ],
)
def test_compile_setting(setting, device: str, expected: bool) -> None:
    assert compile_enabled(setting, device) is expected


def test_unknown_compile_setting() -> None:
    with pytest.raises(ValueError, match="COMPILE"):
        compile_enabled("sometimes", "cuda")


def test_compile_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert use_compile_cache(tmp_path / "cc") == (tmp_path / "cc").resolve()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "cc").resolve())
    assert (tmp_path / "cc").is_dir()
    # torch writes its default into the variable once it has used it: ours replaces that
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert use_compile_cache(tmp_path / "data") == (tmp_path / "data").resolve()
    # an operator's own choice wins
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache(tmp_path / "data") == tmp_path / "mine"


def _compiled_graphs(pipe, compile_step) -> int:
    """Dynamo graphs compiled in one MagCache run of ``pipe`` after ``compile_step``."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compile_step(pipe.transformer)
    pipe.transformer.enable_cache(load_cache_data(RATIOS).config(4))
    pipe(
        "a cat", height=64, width=64, num_frames=5, num_inference_steps=4,
        generator=torch.Generator().manual_seed(0), output_type="latent",
    )  # fmt: skip
    return counters["stats"]["unique_graphs"]


def test_regional_compile_stays_compiled_under_the_step_cache(tiny_wan_dir: Path) -> None:
    """Why compile_blocks exists: diffusers' compile_repeated_blocks compiles each block's
    ``__call__``, and MagCache's hooks (``torch.compiler.disable``) bypass it, so the balanced
    tier would run eager; compiling the blocks' ``forward`` first keeps them compiled."""
    from diffusers import WanPipeline

    def fresh() -> WanPipeline:
        pipe = WanPipeline.from_pretrained(tiny_wan_dir)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    ours = _compiled_graphs(fresh(), lambda m: compile_blocks(m, backend="eager"))
    theirs = _compiled_graphs(fresh(), lambda m: m.compile_repeated_blocks(backend="eager"))
    assert ours >= 1 and theirs == 0
    torch._dynamo.reset()


@pytest.fixture
def eager_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile with dynamo's eager backend: the real tracing, no C++ build on CPU."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    yield
    torch._dynamo.reset()


def test_compile_on_warms_up_every_transformer_and_keeps_the_output(
    tiny_wan_dir: Path,
    tiny_lora_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    eager_compile: None,
) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    config = GeneratorConfig(
        model=str(tiny_wan_dir),
        device="cpu",
        fast_lora=str(tiny_lora_files["diffusers"]),
        cache_ratios=RATIOS,
    )
    plain = VideoGenerator.load(config)
    compiled = VideoGenerator.load(
        GeneratorConfig(**{**vars(config), "compile": "on", "compile_cache_dir": str(tmp_path)})
    )
    assert "compile" not in " ".join(plain.speed_applied)  # auto: off on CPU
    assert compiled.speed_applied[0] == "compile=regional"
    assert f"compile_cache={tmp_path.resolve()}" in compiled.speed_applied
    for model in (compiled.switch.base, compiled.switch.fast):
        assert all(hasattr(block.forward, "_torchdynamo_orig_callable") for block in model.blocks)

    defaults, limits = apply_overrides(compiled.defaults, compiled.limits, SMALL)
    with caplog.at_level(logging.INFO, logger="pipeline.generator"):
        seconds = compiled.warm_up(defaults)
    assert set(seconds) == {"balanced", "fast"} and all(s > 0 for s in seconds.values())
    assert "warm-up at 64x64x9" in caplog.text

    for quality in ("best", "balanced", "fast"):
        overrides = OptionOverrides(seed=4).merged_over(
            plain.tier_overrides(quality, defaults, limits)
        )
        options = resolve_options("a cat", overrides, defaults, limits)
        assert np.array_equal(compiled.generate(options).frames, plain.generate(options).frames), (
            quality
        )


def test_fp8_is_refused_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_quantize(None, "cpu") is None and check_quantize("none", "cuda") is None
    with pytest.raises(ValueError, match="needs an NVIDIA GPU"):
        check_quantize("fp8", "cpu")
    with pytest.raises(ValueError, match="allowed: none, fp8"):
        check_quantize("int3", "cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    with pytest.raises(ValueError, match=r"8\.9 or newer .*A100 has 8\.0"):
        check_quantize("fp8", "cuda")
    monkeypatch.setitem(sys.modules, "torchao", None)  # not installed
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    with pytest.raises(ValueError, match=r"torchao.*pip install"):
        check_quantize("fp8", "cuda")


def test_fp8_on_cpu_is_a_one_line_load_error(tiny_wan_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="QUANTIZE=fp8") as info:
        VideoGenerator.load(GeneratorConfig(model=str(tiny_wan_dir), device="cpu", quantize="fp8"))
    assert "\n" not in str(info.value)


def test_fp8_config_is_torchao_float8_through_diffusers() -> None:
    pytest.importorskip("torchao")
    from diffusers import TorchAoConfig

    config = fp8_config()
    assert isinstance(config, TorchAoConfig)
    assert type(config.quant_type).__name__ == "Float8DynamicActivationFloat8WeightConfig"


def test_quantize_touches_the_block_linears_only(
    tiny_wan_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which layers FP8 reaches (torchao's quantize_ is replaced by a recorder: CPU has no FP8)."""
    import types

    from diffusers import WanTransformer3DModel

    chosen: list[str] = []

    def quantize_(model, config, filter_fn):
        chosen.extend(fqn for fqn, module in model.named_modules() if filter_fn(module, fqn))

    fake = types.ModuleType("torchao.quantization")
    fake.quantize_ = quantize_
    monkeypatch.setitem(sys.modules, "torchao", types.ModuleType("torchao"))
    monkeypatch.setitem(sys.modules, "torchao.quantization", fake)
    model = WanTransformer3DModel.from_pretrained(tiny_wan_dir, subfolder="transformer")
    quantize(model, types.SimpleNamespace(quant_type="fp8"))
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert chosen and set(chosen) < set(linears)
    assert all(name.startswith("blocks.") for name in chosen)
    assert len(chosen) == len([n for n in linears if n.startswith("blocks.")])


def test_attention_backend_setting(tiny_wan_dir: Path) -> None:
    gen = VideoGenerator.load(
        GeneratorConfig(model=str(tiny_wan_dir), device="cpu", attention_backend="native")
    )
    assert "attention=native" in gen.speed_applied
    defaults, limits = apply_overrides(gen.defaults, gen.limits, SMALL)
    options = resolve_options("a cat", OptionOverrides(seed=1, quality="best"), defaults, limits)
    assert gen.generate(options).frames.shape == (9, 64, 64, 3)
