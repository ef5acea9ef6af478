"""The picture metrics of bench/quality.py (PSNR, SSIM) on clips whose answer is known."""

from __future__ import annotations

import math

import numpy as np

from bench.quality import psnr, ssim


def test_identical_clips() -> None:
    clip = np.random.default_rng(0).integers(0, 256, (3, 32, 40, 3), dtype=np.uint8)
    assert psnr(clip, clip) == math.inf
    assert ssim(clip, clip) == 1.0


def test_psnr_of_a_known_error() -> None:
    a = np.full((2, 16, 16, 3), 100, dtype=np.uint8)
    b = a + 5  # MSE 25 everywhere
    assert math.isclose(psnr(a, b), 10 * math.log10(255**2 / 25))


def test_ssim_falls_with_noise_and_structure_loss() -> None:
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    slight = np.clip(clip + rng.normal(0, 5, clip.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(clip + rng.normal(0, 60, clip.shape), 0, 255).astype(np.uint8)
    flat = np.full_like(clip, 128)
    assert 1.0 > ssim(slight, clip) > ssim(heavy, clip) > ssim(flat, clip)
    assert math.isclose(ssim(slight, clip), ssim(clip, slight))  # symmetric
