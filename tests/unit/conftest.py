"""Fixtures of the quality-tier tests: tiny step-distilled weights for the tiny Wan."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_lora_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same random LoRA in both key namings: ``diffusers`` and ``original`` (Wan)."""
    from tests.fakes.tiny_loras import build_diffusers_lora, build_original_wan_lora

    root = tmp_path_factory.mktemp("loras")
    return {
        "diffusers": build_diffusers_lora(root / "fast-diffusers.safetensors"),
        "original": build_original_wan_lora(root / "fast-original.safetensors"),
    }


@pytest.fixture(scope="session")
def tiny_distilled_dir(tiny_wan_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fakes.tiny_loras import build_distilled_transformer

    return build_distilled_transformer(tiny_wan_dir, tmp_path_factory.mktemp("distilled") / "dit")
