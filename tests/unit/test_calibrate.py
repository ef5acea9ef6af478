"""``python -m pipeline calibrate-cache``: MagCache ratios for models without built-in data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.calibrate import calibrate
from pipeline.generator import GeneratorConfig, VideoGenerator
from pipeline.quality import load_cache_data

SMALL = ["--size", "64x64", "--frames", "9", "--device", "cpu"]


def test_calibrate_cache_writes_a_data_file_the_balanced_tier_uses(
    tiny_wan_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ratios.json"
    code = main(
        ["calibrate-cache", "--model", str(tiny_wan_dir), "-o", str(out), "--steps", "8", *SMALL]
    )
    assert code == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert f"saved: {out} (8 ratios" in stdout and "skips" in stdout
    assert "Calibration Complete" not in stdout  # diffusers' own print is swallowed
    data = json.loads(out.read_text("utf-8"))
    ratios, uncond = data["mag_ratios"], data["mag_ratios_unconditional"]
    assert len(ratios) == len(uncond) == 8 and ratios[0] == 1.0
    assert all(r > 0 for r in ratios) and ratios != uncond  # two passes, two series
    assert data["calibration"]["pipeline"] == "WanPipeline"
    assert data["calibration"]["size"] == "64x64" and data["calibration"]["steps"] == 8
    assert "calibrate-cache" in data["source"]

    cache = load_cache_data(out)
    assert cache.mag_ratios == tuple(ratios) and cache.threshold == 0.12
    gen = VideoGenerator.load(
        GeneratorConfig(model=str(tiny_wan_dir), device="cpu", cache_ratios=str(out))
    )
    assert gen.tiers.cache == cache and gen.tier_plan("balanced").cache


def test_without_guidance_there_is_one_series(tiny_wan_dir: Path) -> None:
    gen = VideoGenerator.load(GeneratorConfig(model=str(tiny_wan_dir), device="cpu"))
    cond, uncond = calibrate(gen, steps=5, width=64, height=64, frames=5, guidance=1.0)
    assert len(cond) == 5 and uncond is None
    assert not gen.pipe.transformer.is_cache_enabled  # calibration mode is switched off again


def test_calibrate_cache_errors_are_one_line(tmp_path: Path, capsys) -> None:
    code = main(["calibrate-cache", "--model", str(tmp_path / "none"), "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "not found" in err
    assert not (tmp_path / "x").exists()
