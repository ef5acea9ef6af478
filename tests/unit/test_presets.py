"""Presets: signature defaults plus what each family lacks; operator overrides; family lookup."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.errors import ModelLoadError
from pipeline.presets import (
    GENERIC,
    apply_overrides,
    defaults_and_limits,
    preset_for,
    read_class_name,
    signature_defaults,
)


class FakeLTX:
    vae_scale_factor_spatial = 32
    transformer = SimpleNamespace(config=SimpleNamespace(patch_size=1))

    def __call__(self, prompt=None, height: int = 512, width: int = 704, num_frames: int = 161,
                 frame_rate: int = 25, num_inference_steps: int = 50, guidance_scale: float = 3,
                 max_sequence_length: int = 128):  # fmt: skip
        raise AssertionError("not called")


class FakeCogVideoX:
    vae_scale_factor_spatial = 8
    transformer = SimpleNamespace(
        config=SimpleNamespace(patch_size=2, sample_width=90, sample_height=60, sample_frames=49)
    )

    def __call__(self, prompt=None, height=None, width=None, num_frames=None,
                 num_inference_steps: int = 50, guidance_scale: float = 6,
                 max_sequence_length: int = 226):  # fmt: skip
        raise AssertionError("not called")


class FakeWan22:  # Wan 2.2 TI2V-5B: VAE factor 16 x patch 2 → sides multiple of 32
    vae_scale_factor_spatial = 16
    transformer = SimpleNamespace(config=SimpleNamespace(patch_size=(1, 2, 2)))

    def __call__(self, prompt=None, height: int = 704, width: int = 1280, num_frames: int = 121,
                 num_inference_steps: int = 50, guidance_scale: float = 5.0):  # fmt: skip
        raise AssertionError("not called")


def test_known_families() -> None:
    wan = preset_for("WanPipeline")
    assert (wan.fps, wan.frame_multiple, wan.frame_remainder, wan.side_multiple) == (16, 4, 1, 16)
    assert not wan.reads_russian and "overexposed" in wan.negative_prompt
    ltx = preset_for("LTXPipeline")
    assert (ltx.frame_multiple, ltx.side_multiple, ltx.reads_russian) == (8, 32, False)
    cog = preset_for("CogVideoXPipeline")
    assert (cog.fps, cog.reads_russian) == (8, False)
    assert preset_for("Kandinsky5T2VPipeline").reads_russian
    assert preset_for("SomeFuturePipeline") is GENERIC


def test_signature_defaults_read_from_call() -> None:
    assert signature_defaults(FakeLTX()) == {
        "height": 512, "width": 704, "num_frames": 161, "num_inference_steps": 50,
        "guidance_scale": 3, "max_sequence_length": 128, "frame_rate": 25,
    }  # fmt: skip


def test_ltx_defaults_and_limits() -> None:
    defaults, limits = defaults_and_limits(FakeLTX(), preset_for("LTXPipeline"))
    assert (defaults.width, defaults.height, defaults.frames, defaults.steps) == (704, 512, 161, 50)
    assert defaults.fps == 25  # LTX states its frame rate in the signature
    assert (limits.frame_multiple, limits.side_multiple, limits.max_frames) == (8, 32, 161)


def test_cogvideox_none_defaults_come_from_transformer_config() -> None:
    defaults, limits = defaults_and_limits(FakeCogVideoX(), preset_for("CogVideoXPipeline"))
    assert (defaults.width, defaults.height, defaults.frames, defaults.fps) == (720, 480, 49, 8)
    assert limits.valid_frames(49)


def test_side_multiple_follows_vae_and_patch() -> None:
    _, limits = defaults_and_limits(FakeWan22(), preset_for("WanPipeline"))
    assert limits.side_multiple == 32


def test_generic_pipeline_uses_signature_defaults() -> None:
    defaults, limits = defaults_and_limits(FakeWan22(), GENERIC)
    assert (defaults.width, defaults.height, defaults.frames, defaults.fps) == (1280, 704, 121, 16)
    assert limits.frame_multiple == 1


def test_operator_overrides() -> None:
    defaults, limits = apply_overrides(
        *defaults_and_limits(FakeLTX(), preset_for("LTXPipeline")),
        defaults_override={"steps": 20, "fps": 24, "guidance": None},
        limits_override={"max_frames": 97, "max_steps": 40},
    )
    assert (defaults.steps, defaults.fps, defaults.guidance) == (20, 24, 3.0)
    assert limits.max_frames == 97 and limits.max_steps == 40
    assert defaults.frames == 97  # the model default shrinks to the operator's bound


def test_model_defaults_shrink_to_operator_pixels() -> None:
    defaults, _ = apply_overrides(
        *defaults_and_limits(FakeLTX(), preset_for("LTXPipeline")),
        limits_override={"max_pixels": 320 * 256},
    )
    assert defaults.width * defaults.height <= 320 * 256
    assert defaults.width % 32 == 0 and defaults.height % 32 == 0


def test_operator_defaults_that_do_not_fit_are_refused() -> None:
    defaults, limits = defaults_and_limits(FakeLTX(), preset_for("LTXPipeline"))
    with pytest.raises(ValueError, match="frames"):
        apply_overrides(defaults, limits, {"frames": 100})
    with pytest.raises(ValueError, match="unknown"):
        apply_overrides(defaults, limits, {"stepz": 3})


def test_read_class_name(tmp_path: Path, tiny_wan_dir: Path) -> None:
    assert read_class_name(str(tiny_wan_dir)) == "WanPipeline"
    with pytest.raises(ModelLoadError, match="not found"):
        read_class_name(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match=r"model_index\.json"):
        read_class_name(str(tmp_path))
    (tmp_path / "model_index.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="unreadable"):
        read_class_name(str(tmp_path))
    (tmp_path / "model_index.json").write_text(json.dumps({"vae": []}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="names no pipeline"):
        read_class_name(str(tmp_path))


def test_uncached_hub_id_is_a_one_line_load_error() -> None:
    with pytest.raises(ModelLoadError) as info:
        read_class_name("nobody-here/no-such-model-xyz")
    assert "\n" not in str(info.value)
