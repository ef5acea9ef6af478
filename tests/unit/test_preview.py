"""The live preview on the tiny Wan checkpoint: the callback yields decodable JPEGs of the
expected size, from the clean estimate, through the projection or the VAE fallback; PREVIEW=off
yields none."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from pipeline.generator import GeneratorConfig, VideoGenerator
from pipeline.options import GenerationOptions, OptionOverrides, resolve_options
from pipeline.presets import apply_overrides
from pipeline.preview import MAX_SIDE, LatentPreview, fit_size, is_flow_matching
from pipeline.progress import Progress, Stage

SMALL = {"width": 96, "height": 64, "frames": 9, "steps": 6}


@pytest.fixture(scope="module")
def generator(tiny_wan_dir: Path) -> VideoGenerator:
    torch.set_num_threads(1)
    config = GeneratorConfig(model=str(tiny_wan_dir), device="cpu", preview_interval=0.0)
    return VideoGenerator.load(config)


def options(gen: VideoGenerator) -> GenerationOptions:
    defaults, limits = apply_overrides(gen.defaults, gen.limits, SMALL)
    return resolve_options("a cat plays the piano", OptionOverrides(seed=3), defaults, limits)


def previews_of(reports: list[Progress]) -> list[Progress]:
    return [r for r in reports if r.preview is not None]


def test_denoising_reports_carry_decodable_jpegs(generator: VideoGenerator) -> None:
    reports: list[Progress] = []
    generator.generate(options(generator), on_progress=reports.append)
    shown = previews_of(reports)
    # Never at step 1 (nothing formed yet) nor at the last (the video follows); 3 steps apart.
    assert [r.step for r in shown] == [2, 5]
    for report in shown:
        assert report.stage == Stage.DENOISE and report.preview is not None
        image = Image.open(io.BytesIO(report.preview.jpeg))
        assert image.format == "JPEG"
        # The video's aspect (96x64 = 3:2), its longest side MAX_SIDE.
        assert image.size == (MAX_SIDE, 213) == (report.preview.width, report.preview.height)
        assert len(report.preview.jpeg) < 200_000


def test_preview_off_yields_none(tiny_wan_dir: Path) -> None:
    config = GeneratorConfig(model=str(tiny_wan_dir), device="cpu", preview=False)
    gen = VideoGenerator.load(config)
    reports: list[Progress] = []
    gen.generate(options(gen), on_progress=reports.append)
    assert not previews_of(reports)
    assert [r.step for r in reports if r.stage == Stage.DENOISE][-1] == 6


def _steps(gen: VideoGenerator, preview: LatentPreview) -> list[bytes]:
    """Run the pipeline with ``preview`` in its callback; the JPEGs it made."""
    made: list[bytes] = []

    def on_step_end(pipe, i, t, tensors):
        image = preview.step(i, pipe.num_timesteps, tensors["latents"])
        if image is not None:
            made.append(image.jpeg)
        return {}

    gen.pipe(
        prompt="a dog",
        height=64,
        width=96,
        num_frames=9,
        num_inference_steps=6,
        generator=torch.Generator().manual_seed(1),
        output_type="pt",
        callback_on_step_end=on_step_end,
    )
    return made


def test_vae_fallback_for_unknown_families(generator: VideoGenerator) -> None:
    preview = LatentPreview(generator.pipe, "unknown", size=(96, 64), min_interval=0, min_steps=2)
    made = _steps(generator, preview)
    assert preview.method(16) == "vae" and not preview.disabled
    assert len(made) == 2  # steps 2 and 4
    assert Image.open(io.BytesIO(made[0])).size == fit_size(96, 64)


def test_clean_estimate_differs_from_the_noisy_latent(generator: VideoGenerator) -> None:
    """With flow matching the preview shows x0 = x_t - sigma_t * v, not the noise itself."""
    assert is_flow_matching(generator.pipe.scheduler)
    flow = LatentPreview(generator.pipe, "wan", size=(96, 64), min_interval=0)
    raw = LatentPreview(generator.pipe, "wan", size=(96, 64), min_interval=0)
    raw.flow = False
    assert _steps(generator, flow) != _steps(generator, raw)


def test_a_failing_preview_never_fails_the_run(generator: VideoGenerator) -> None:
    preview = LatentPreview(generator.pipe, "wan", size=(96, 64), min_interval=0)
    assert preview.step(1, 6, torch.zeros(1, 16, 10)) is None  # packed latents: not sliceable
    assert preview.disabled
    assert preview.step(2, 6, torch.zeros(1, 16, 3, 8, 12)) is None
