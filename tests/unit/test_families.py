"""LTX-Video, CogVideoX and Kandinsky 5 end to end: tiny checkpoints in their Hub layouts, loaded
through the project's loader and rendered to MP4 by the CLI (Wan has its own tests)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from pipeline.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "кот играет на пианино в космосе"


@dataclass(frozen=True)
class Family:
    fixture: str
    pipeline: str
    family: str
    fps: int  # what the MP4 plays at by default
    frames: int  # a small frame count the family accepts
    frame_rule: tuple[int, int]  # (multiple, remainder)
    side_multiple: int
    reads_russian: bool


FAMILIES = {
    # LTX states its own frame rate in __call__ (frame_rate=25); its VAE packs 32 px and 8 frames.
    "ltx": Family("tiny_ltx_dir", "LTXPipeline", "ltx", 25, 9, (8, 1), 32, False),
    "cogvideox": Family(
        "tiny_cogvideox_dir", "CogVideoXPipeline", "cogvideox", 8, 9, (4, 1), 16, False
    ),
    "kandinsky5": Family(
        "tiny_kandinsky5_dir", "Kandinsky5T2VPipeline", "kandinsky5", 24, 5, (4, 1), 16, True
    ),
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def decode(path: Path) -> tuple[int, tuple[int, int], float, list[str]]:
    """Frame count, (width, height), frame rate and codec names, read back with PyAV."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        codecs = [s.codec_context.name for s in container.streams]
        rate = float(video.average_rate)
        frames = [f for f in container.decode(video=0)]
    return len(frames), (frames[0].width, frames[0].height), rate, codecs


@pytest.mark.parametrize("name", list(FAMILIES))
def test_the_cli_renders_each_family_to_mp4(
    name: str, request: pytest.FixtureRequest, tiny_marian_dir: Path, tmp_path: Path
) -> None:
    family = FAMILIES[name]
    model = request.getfixturevalue(family.fixture)
    out = tmp_path / f"{name}.mp4"
    # A model that reads Russian must never load the translator: give it one that cannot load.
    translator = str(tmp_path / "no-translator") if family.reads_russian else str(tiny_marian_dir)
    proc = run_cli(
        PROMPT, "-o", str(out), "--model", str(model), "--translator", translator,
        "--device", "cpu", "--size", "64x64", "--frames", str(family.frames), "--steps", "2",
        "--seed", "7",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    prompt_line = proc.stdout.splitlines()[0]
    if family.reads_russian:
        assert prompt_line == f"prompt: {PROMPT}"  # untranslated
    else:
        assert prompt_line.startswith("prompt: ") and prompt_line != f"prompt: {PROMPT}"
    assert "2/2" in proc.stderr  # every denoising step was reported
    frames, size, rate, codecs = decode(out)
    assert (frames, size) == (family.frames, (64, 64))
    assert rate == pytest.approx(family.fps)
    assert codecs == ["h264", "aac"]
    assert f"{family.fps} fps" in proc.stdout and out.with_suffix(".jpg").is_file()


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_loads_with_its_preset(name: str, request: pytest.FixtureRequest) -> None:
    from pipeline.generator import GeneratorConfig, VideoGenerator

    family = FAMILIES[name]
    model = request.getfixturevalue(family.fixture)
    generator = VideoGenerator.load(GeneratorConfig(model=str(model), device="cpu"))
    assert type(generator.pipe).__name__ == family.pipeline
    assert generator.preset.family == family.family
    assert generator.preset.reads_russian is family.reads_russian
    limits = generator.limits
    assert (limits.frame_multiple, limits.frame_remainder) == family.frame_rule
    assert limits.side_multiple == family.side_multiple
    assert generator.defaults.fps == family.fps


def test_cogvideox_defaults_come_from_the_transformer_config(tiny_cogvideox_dir: Path) -> None:
    """CogVideoX's __call__ says None for height, width and frames: the sample_* config decides."""
    from pipeline.generator import GeneratorConfig, VideoGenerator

    generator = VideoGenerator.load(GeneratorConfig(model=str(tiny_cogvideox_dir), device="cpu"))
    d = generator.defaults
    assert (d.width, d.height, d.frames, d.guidance) == (720, 480, 49, 6.0)


def test_kandinsky_tokenizer_folder_is_a_processor_and_loads_without_torchvision(
    tiny_kandinsky5_dir: Path,
) -> None:
    """The Hub layout names a Qwen2VLProcessor, which diffusers cannot build here; ours loads."""
    import importlib.util
    import json

    from diffusers import DiffusionPipeline

    from pipeline.families import load_pipeline

    index = json.loads((tiny_kandinsky5_dir / "model_index.json").read_text())
    assert index["tokenizer"] == ["transformers", "Qwen2VLProcessor"]
    assert (tiny_kandinsky5_dir / "tokenizer" / "preprocessor_config.json").is_file()
    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(Exception, match=r"(?i)torchvision"):
            DiffusionPipeline.from_pretrained(tiny_kandinsky5_dir)
    pipe = load_pipeline(str(tiny_kandinsky5_dir), "Kandinsky5T2VPipeline")
    assert pipe.tokenizer.num_special_tokens_to_add() == 0  # a tokenizer, not a processor
    assert pipe.tokenizer.tokenize("кот") != [pipe.tokenizer.unk_token]


def test_kandinsky_long_prompt_is_cut_to_its_sequence_length(tiny_kandinsky5_dir: Path) -> None:
    from pipeline.generator import GeneratorConfig, VideoGenerator

    generator = VideoGenerator.load(GeneratorConfig(model=str(tiny_kandinsky5_dir), device="cpu"))
    long_prompt = " ".join(["кот играет на пианино в космосе"] * 200)
    cut = generator.cut_prompt(long_prompt)
    tokens = generator.pipe.tokenizer(cut, add_special_tokens=False)["input_ids"]
    assert 0 < len(tokens) <= generator.max_sequence_length == 512
    assert long_prompt.startswith(cut) and len(cut) < len(long_prompt)


def test_kandinsky_text_encoder_receives_the_russian_prompt(
    tiny_kandinsky5_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusers import Kandinsky5T2VPipeline

    from pipeline import translate

    def no_translation(*args, **kwargs):
        pytest.fail("a model that reads Russian must not be given a translator")

    monkeypatch.setattr(translate.Translator, "load", no_translation)
    monkeypatch.setattr(translate.Translator, "translate", no_translation)
    encoded: list[str] = []
    original = Kandinsky5T2VPipeline._encode_prompt_qwen

    @functools.wraps(original)
    def spy(self, prompt, *args, **kwargs):
        encoded.extend(prompt)
        return original(self, prompt, *args, **kwargs)

    monkeypatch.setattr(Kandinsky5T2VPipeline, "_encode_prompt_qwen", spy)
    out = tmp_path / "k.mp4"
    code = main(
        [
            PROMPT, "-o", str(out), "--model", str(tiny_kandinsky5_dir), "--device", "cpu",
            "--size", "64x64", "--frames", "5", "--steps", "2", "-q",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert encoded[0] == PROMPT  # the Qwen text encoder got the Cyrillic text itself
    assert f"prompt: {PROMPT}" in capsys.readouterr().out
    assert decode(out)[0] == 5
