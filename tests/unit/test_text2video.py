"""TextToVideo: translation only where needed, stages in order, a playable MP4 and its facts."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pipeline.errors import VideoTooLarge
from pipeline.generator import GeneratorConfig
from pipeline.options import GenerationOptions, OptionOverrides, resolve_options
from pipeline.presets import apply_overrides
from pipeline.progress import GenerationCancelled, Progress, Stage
from pipeline.text2video import TextToVideo

SMALL = {"width": 64, "height": 64, "frames": 9, "steps": 2}


@pytest.fixture(scope="module")
def t2v(tiny_wan_dir: Path, tiny_marian_dir: Path) -> TextToVideo:
    torch.set_num_threads(1)  # tiny models gain nothing from threads; a busy CPU makes them crawl
    config = GeneratorConfig(model=str(tiny_wan_dir), device="cpu")
    return TextToVideo.load(config, translator_model=str(tiny_marian_dir))


@pytest.fixture
def spy(t2v: TextToVideo, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Texts that reached the translation model (cache misses included, hits excluded)."""
    seen: list[str] = []
    real = t2v.translator.translate

    def translate(text: str) -> str:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(t2v.translator, "translate", translate)
    return seen


def opts(t2v: TextToVideo, prompt: str) -> GenerationOptions:
    defaults, limits = apply_overrides(t2v.defaults, t2v.limits, SMALL)
    return resolve_options(prompt, OptionOverrides(seed=3), defaults, limits)


def test_cyrillic_run_translates_and_reports_every_stage(
    t2v: TextToVideo, spy: list[str], tmp_path: Path
) -> None:
    reports: list[Progress] = []
    result = t2v.run(
        opts(t2v, "кот играет на пианино"), tmp_path / "cat.mp4", on_progress=reports.append
    )
    assert spy == ["кот играет на пианино"]
    assert result.prompt_en and result.seed == 3
    assert (result.video.frames, result.video.width, result.video.height) == (9, 64, 64)
    assert result.video.has_audio and result.video.path.exists() and result.video.thumbnail.exists()
    assert set(result.timings) == {
        "translate", "encode_text", "denoise", "decode", "encode_video", "total",
    }  # fmt: skip
    stages = [r.stage for r in reports]
    order = [Stage.TRANSLATE, Stage.ENCODE_TEXT, Stage.DENOISE, Stage.DECODE, Stage.ENCODE_VIDEO]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == order
    translated = [r for r in reports if r.stage is Stage.TRANSLATE and r.step == 1]
    assert translated[0].detail == result.prompt_en
    denoise = [r.step for r in reports if r.stage is Stage.DENOISE]
    assert denoise == [0, 1, 2]
    elapsed = [r.elapsed for r in reports]
    assert elapsed == sorted(elapsed)  # one clock from the start of the run
    assert reports[-1].stage is Stage.ENCODE_VIDEO and reports[-1].fraction == 1.0


def test_english_is_not_translated(t2v: TextToVideo, spy: list[str], tmp_path: Path) -> None:
    calls: list[list[str]] = []
    t2v.translator._translate_pieces = lambda pieces: calls.append(pieces) or ["x"]  # type: ignore[method-assign]
    try:
        result = t2v.run(opts(t2v, "a cat plays the piano"), tmp_path / "en.mp4")
    finally:
        del t2v.translator._translate_pieces
    assert result.prompt_en == "a cat plays the piano"
    assert calls == []


def test_translation_can_be_skipped(t2v: TextToVideo, spy: list[str], tmp_path: Path) -> None:
    result = t2v.run(opts(t2v, "кот"), tmp_path / "a.mp4", translate=False)
    assert result.prompt_en == "кот" and spy == []
    result = t2v.run(opts(t2v, "кот"), tmp_path / "b.mp4", prompt_en="a cat")
    assert result.prompt_en == "a cat" and spy == []


def test_model_that_reads_russian_gets_russian(
    t2v: TextToVideo, spy: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(t2v.generator, "preset", replace(t2v.preset, reads_russian=True))
    assert t2v.reads_russian
    assert t2v.prompt_for_model("кот играет") == "кот играет"
    assert spy == []


def test_prompt_for_model(t2v: TextToVideo, spy: list[str]) -> None:
    assert t2v.prompt_for_model("a dog") == "a dog"
    assert t2v.prompt_for_model("собака", translate=False) == "собака"
    assert spy == []
    assert t2v.prompt_for_model("собака") != "собака"
    assert spy == ["собака"]


def test_cancel_before_generation(t2v: TextToVideo, tmp_path: Path, monkeypatch) -> None:
    cancel = threading.Event()
    cancel.set()
    monkeypatch.setattr(t2v.generator, "generate", lambda *a, **k: pytest.fail("generated"))
    with pytest.raises(GenerationCancelled):
        t2v.run(opts(t2v, "a cat"), tmp_path / "c.mp4", cancel=cancel)
    assert not (tmp_path / "c.mp4").exists()


def test_byte_cap_is_passed_to_export(t2v: TextToVideo, tmp_path: Path) -> None:
    with pytest.raises(VideoTooLarge):
        t2v.run(opts(t2v, "a cat"), tmp_path / "d.mp4", max_bytes=1_000)


def test_facts_for_the_bot(t2v: TextToVideo) -> None:
    assert t2v.device_info() == "CPU"
    assert (t2v.defaults.frames, t2v.limits.frame_multiple, t2v.preset.family) == (81, 4, "wan")
